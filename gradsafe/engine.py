"""The public API: run the pipeline and return a Report. Never prints."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from gradsafe import pool, variants
from gradsafe.discover import discover
from gradsafe.model import FRAMEWORKS, SEVERITIES, Options, Report, Target, TargetResult

FRAMEWORK_ORDER: dict[str, int] = {fw: i for i, fw in enumerate((*FRAMEWORKS, "numpy"))}


def plan_jobs(targets: Iterable[Target], options: Options) -> tuple[list[pool.Job],
                                                                    list[TargetResult]]:
    """Pair each target with the frameworks to check it on; unresolvable ones become errors."""
    jobs: list[pool.Job] = []
    errors: list[TargetResult] = []
    wanted = set(options.targets)
    for t in targets:
        if wanted and t.name not in wanted and t.error is None:
            continue
        if t.error is not None:
            errors.append(TargetResult(t.name, t.file, t.line, None, "error", t.error))
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
            errors.append(TargetResult(
                t.name, t.file, t.line, None, "error",
                f"cannot infer the framework of '{t.name}' (it uses {uses}); "
                "pass --framework torch|tensorflow|jax"))
            continue
        for fw in chosen:
            jobs.append(pool.Job(len(jobs), t, fw))
    return jobs, errors


def sort_key(r: TargetResult) -> tuple[str, int, str, int]:
    return (r.file or "", r.line or 0, r.name, FRAMEWORK_ORDER.get(r.framework or "", 99))


def check(paths: Iterable[str], options: Options,
          progress: Callable[[pool.Job], None] | None = None) -> Report:
    targets = discover(paths)
    variants.check_param_names(targets, options)
    targets = [v for t in targets for v in variants.expand(t, options)]
    jobs, errors = plan_jobs(targets, options)
    results, _versions = pool.run(jobs, options, progress)
    ordered = sorted([*errors, *results.values()], key=sort_key)
    return Report(tuple(ordered), options.dtypes, options.operating_range, options.fail_on)


def exit_code(report: Report) -> int:
    """Bit 1: findings at or above fail_on. Bit 2: something could not be checked."""
    limit = SEVERITIES.index(report.fail_on)
    code = 0
    for t in report.targets:
        if t.status == "error":
            code |= 2
        if any(SEVERITIES.index(f.severity) <= limit for f in t.findings):
            code |= 1
    return code
