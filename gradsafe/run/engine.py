"""The public API: run the pipeline and return a Report. Never prints."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from gradsafe.discover import selection, variants
from gradsafe.discover.targets import discover
from gradsafe.gate import filters
from gradsafe.model.samples import Group, GroupData
from gradsafe.model.types import (
    FRAMEWORKS,
    Options,
    Report,
    Target,
    TargetKind,
    TargetResult,
    missing_args,
)
from gradsafe.run import cache, pool, shard
from gradsafe.run.interrupt import is_partial
from gradsafe.run.samples import collect, plot_groups, sample_jobs

FRAMEWORK_ORDER: dict[str, int] = {fw: i for i, fw in enumerate((*FRAMEWORKS, "numpy"))}


def plan_jobs(targets: Iterable[Target], options: Options) -> tuple[list[pool.Job],
                                                                    list[TargetResult]]:
    """Pair each target with the frameworks to check it on; the results of targets that
    cannot be checked as they stand (an error when named, skipped otherwise: see
    selection.stopped), such as missing arguments or a framework that cannot be inferred."""
    jobs: list[pool.Job] = []
    errors: list[TargetResult] = []
    for t in targets:
        if t.error is not None:
            errors.append(selection.stopped(t, t.error))
            continue
        missing = missing_args(t)
        if missing:
            errors.append(selection.stopped(t, selection.needs_text(missing)))
            continue
        if t.kind == TargetKind.NUMPY_LAYER:  # runs in a NumPy-only lane, no ML framework imported
            if options.frameworks is None or "numpy" in options.frameworks:
                jobs.append(pool.Job(len(jobs), t, "numpy"))
            continue
        inferred: list[str] = [fw for fw in t.frameworks if fw in FRAMEWORKS]
        if options.frameworks is not None:
            chosen = [fw for fw in options.frameworks if not inferred or fw in inferred]
            if not chosen:
                continue  # the target belongs to a framework that was not selected
        elif inferred:
            chosen = inferred
        else:
            uses = ", ".join(t.frameworks) if t.frameworks else "no torch, tensorflow or jax API"
            errors.append(selection.stopped(
                t, f"cannot infer the framework of '{t.name}' (it uses {uses}); "
                   "pass --framework torch|tensorflow|jax"))
            continue
        for fw in chosen:
            jobs.append(pool.Job(len(jobs), t, fw))
    return jobs, errors


def sort_key(r: TargetResult) -> tuple[str, int, str, int]:
    return (r.file or "", r.line or 0, r.name, FRAMEWORK_ORDER.get(r.framework or "", 99))


def check(paths: Iterable[str], options: Options,
          progress: Callable[[pool.Job], None] | None = None,
          ticks: pool.Ticks | None = None) -> Report:
    """Run the pipeline. progress: called as each job finishes; ticks: (job, done, all)
    while an exhaustive sweep runs."""
    return check_and_plot(paths, options, progress, ticks)[0]


def check_and_plot(paths: Iterable[str], options: Options,
                   progress: Callable[[pool.Job], None] | None = None,
                   ticks: pool.Ticks | None = None,
                   plot_limit: int = 0) -> tuple[Report, list[GroupData], int]:
    """`check`, plus (plot_limit > 0) f and f' of up to plot_limit checked functions on the
    probe plan, sampled by the same workers; and how many functions were not sampled."""
    store = cache.Cache(cache.default_dir()) if options.cache else None
    found = store.discover(tuple(paths)) if store else discover(paths)
    targets = [t for t in found if not filters.excluded(t, options)]
    targets = [selection.bind(t, options) for t in selection.pick(targets, options)]
    targets = [s for t in targets for s in selection.sweeps(t, options)]
    variants.check_param_names(targets, options)
    if options.shard is not None:
        targets = shard.select(targets, options.shard)
    targets = [v for t in targets
               for v in variants.expand(t, selection.options_for(t, options))]
    jobs, errors = plan_jobs(targets, options)
    gs: list[Group] = []
    left_out = 0
    if plot_limit:
        planned = {(j.target.name, j.target.file, j.framework) for j in jobs}
        gs, left_out = plot_groups([t for t in targets if any(
            (t.name, t.file, fw) in planned for fw in FRAMEWORKS)], options, plot_limit)
    sjobs, xs_of = sample_jobs(gs, options, len(jobs))
    raw: dict[int, dict[str, object]] = {}
    results, partial = _run_cached(jobs, options, store, progress, ticks, sjobs, raw)
    samples = [gd for gd, _ in collect(gs, xs_of, raw, results, len(jobs))]
    results = {i: r for i, r in results.items() if i < len(jobs)}
    ordered = sorted(selection.one_per_file(selection.grid_repeats(
        targets, selection.grid_of_skipped(targets, [*errors, *results.values()]),
        options.fail_on)), key=sort_key)
    kept = filters.apply(ordered, options)  # select/ignore, suppressions, baseline
    report = Report(kept.results, options.dtypes, options.operating_range, options.fail_on,
                    suppressed=kept.suppressed, unused_suppressions=kept.unused,
                    root=options.root, partial=partial,
                    shard=options.shard, order=options.order)
    return report, samples, left_out



def _run_cached(jobs: list[pool.Job], options: Options, store: cache.Cache | None,
                progress: Callable[[pool.Job], None] | None, ticks: pool.Ticks | None,
                extra: list[pool.Job] | None = None,
                raw: dict[int, dict[str, object]] | None = None
                ) -> tuple[dict[int, TargetResult], bool]:
    """Serve unchanged targets from the cache; sweep the rest and remember them. `extra`
    jobs (plot samples) run in the same workers, their replies go to `raw`."""
    results: dict[int, TargetResult] = {}
    todo: list[pool.Job] = []
    keys: dict[int, str] = {}
    for job in jobs:
        if store is None:
            todo.append(job)
            continue
        keys[job.index] = cache.key(job.target, job.framework, options)
        hit = store.get(keys[job.index])
        if hit is None:
            todo.append(job)
        else:
            results[job.index] = hit
            if progress:
                progress(job)
    swept, _versions = pool.run([*todo, *(extra or [])], options, progress, ticks, raw)
    partial = any(is_partial(r.error, r.notes) for r in swept.values())
    for index, result in swept.items():
        results[index] = result
        if store is not None and not partial and index in keys:
            store.put(keys[index], result)
    return results, partial


def exit_code(report: Report) -> int:
    """See Report.exit_code (kept for the CLI and the testing API)."""
    return report.exit_code
