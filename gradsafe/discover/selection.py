"""Which discovered targets get checked, with which call arguments, and which are skipped.

On a real code base most functions are not activations. A target the user named (--target,
config, FILE:NAME, a dotted built-in) must be checked, so what stops it is an error; one that
discovery found on its own and that cannot be checked as it stands is *skipped* with its
reason, which never fails a run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from gradsafe.discover.variants import is_number, literal
from gradsafe.model.types import (
    REPEATS_NOTE,
    Finding,
    Options,
    Status,
    Target,
    TargetResult,
    TargetSettings,
    column_sweep,
    column_text,
    fails,
)

FILE_LEVEL = "<module>"  # discovery's name for errors about a whole file
LOAD_FAILED = "importing "  # how load.py's import errors begin


class SelectionError(Exception):
    """--target names something that does not exist."""


def settings(target: Target, options: Options) -> TargetSettings:
    for name, s in options.per_target:
        if name == target.name:
            return s
    return TargetSettings()


def pick(targets: list[Target], options: Options) -> list[Target]:
    """Keep the targets --target asks for (classes included), marked explicit, and errors
    about whole files; every name asked for must exist."""
    configured = {name for name, _ in options.per_target}
    targets = [dataclasses.replace(t, explicit=True) if t.name in configured else t
               for t in targets]
    wanted = set(options.targets)
    if not wanted:
        return targets
    names = {t.name for t in targets if t.name != FILE_LEVEL}
    missing = sorted(wanted - names)
    if missing:
        known = ", ".join(sorted(names)) or "none"
        raise SelectionError(f"--target {', '.join(missing)}: no such function or class "
                             f"(found: {known})")
    return [dataclasses.replace(t, explicit=True) if t.name in wanted else t
            for t in targets if t.name in wanted or t.name == FILE_LEVEL]


def bind(target: Target, options: Options) -> Target:
    """Attach the call arguments (--arg, then per-target config), the domain, the swept
    parameter and the per-target parameter values."""
    own = settings(target, options)
    args = {k: v for k, v in options.args
            if k in target.accepts or k in target.inputs or "**" in target.accepts}
    args.update(own.args)
    domain = own.domain or options.domain
    bound = dataclasses.replace(target, args=tuple(sorted(args.items())), domain=domain)
    sweep = own.sweep or options.sweep
    column = column_sweep(sweep)
    if column is not None:
        return _column(bound, *column) if column[0] in (*target.inputs, *target.accepts) \
            else swept(bound, None)
    # the first parameter is swept by default; another only where the target has it
    return swept(bound, sweep if sweep in target.inputs[1:] or sweep in target.accepts
                 else None)


def _column(target: Target, name: str, col: int) -> Target:
    """The target with column `col` of `name` swept: the rest of each row is the value
    given for `name` (a list of numbers), which must be there and long enough."""
    where = f"--sweep {column_text(name, col)} ({target.name})"
    given = dict(target.args)
    if name not in given:
        raise SelectionError(f"{where}: needs the rest of the row: pass --arg "
                             f"{name}=[...] (e.g. {name}=[0.0, 0.0, 1.0, 1.0])")
    try:
        row = literal(given[name])
    except ValueError:
        row = None
    if not isinstance(row, (list, tuple)) or not row or not all(is_number(v) for v in row):
        raise SelectionError(f"{where}: {name}={given[name]} is not a list of numbers")
    if not -len(row) <= col < len(row):
        raise SelectionError(f"{where}: index {col} is out of range for a row of "
                             f"{len(row)}")
    col %= len(row)
    return dataclasses.replace(target, sweep=column_text(name, col))


def swept(target: Target, name: str | None) -> Target:
    """The target with `name` swept (None: the first parameter); the swept parameter's own
    value, if one was given, is not passed."""
    name = None if name == "**" or (target.inputs and name == target.inputs[0]) else name
    drop = name if name is not None else (target.inputs[0] if target.inputs else None)
    return dataclasses.replace(target, sweep=name,
                               args=tuple((k, v) for k, v in target.args if k != drop))


def sweeps(target: Target, options: Options) -> list[Target]:
    """--sweep all: the target once per required positional parameter (its tensor
    inputs), each swept in turn with the others at their given values."""
    if (settings(target, options).sweep or options.sweep) != "all" or len(target.inputs) < 2:
        return [target]
    given = tuple(sorted({**dict(target.args), **{k: v for k, v in options.args
                                                   if k == target.inputs[0]},
                          **{k: v for k, v in settings(target, options).args
                             if k == target.inputs[0]}}.items()))
    full = dataclasses.replace(target, args=given)
    return [target, *(swept(full, name) for name in target.inputs[1:])]


def options_for(target: Target, options: Options) -> Options:
    """Options with the target's own parameter values from config replacing --param's."""
    own = settings(target, options)
    if not own.params:
        return options
    merged = dict(options.param_values)
    merged.update(own.params)
    return dataclasses.replace(options, param_values=tuple(merged.items()))


def needs_text(names: Iterable[str]) -> str:
    names = list(names)
    listed = ", ".join(f"`{n}`" for n in names)
    return (f"needs a value for {listed} (pass " +
            " ".join(f"--arg {n}=VALUE" for n in names) + ")")


def stopped(target: Target, why: str) -> TargetResult:
    """A target that cannot be checked as it stands: an error when the user named it (or
    the whole file failed), else skipped with its reason."""
    if target.explicit or target.name == FILE_LEVEL:
        return TargetResult(target.label, target.file, target.line, None, "error", why,
                            variant=target.variant)
    return TargetResult(target.label, target.file, target.line, None, "skipped", None,
                        variant=target.variant, reason=why)


def one_per_file(results: Iterable[TargetResult]) -> list[TargetResult]:
    """A file that cannot be imported is one error, not one per target and framework."""
    out: list[TargetResult] = []
    seen: dict[tuple[str | None, str], int] = {}
    for r in results:
        if r.status != "error" or not (r.error or "").startswith(LOAD_FAILED):
            out.append(r)
            continue
        key = (r.file, r.error or "")
        if key in seen:
            first = out[seen[key]]
            if first.framework != r.framework:
                out[seen[key]] = dataclasses.replace(first, framework=None)
            continue
        seen[key] = len(out)
        out.append(dataclasses.replace(r, name=FILE_LEVEL, line=None, variant=None,
                                       findings=(), notes=()))
    return out


def _function_key(t: Target) -> tuple[str | None, str, str | None]:
    """A function as written, whatever its grid value: file, name and swept argument."""
    return t.file, t.name, t.sweep


def _by_label(targets: Iterable[Target]) -> dict[tuple[str | None, str], Target]:
    return {(t.file, t.label): t for t in targets}


def grid_of_skipped(targets: Iterable[Target],
                    results: Iterable[TargetResult]) -> list[TargetResult]:
    """Results less the automatic-grid settings of a function that is skipped as written
    (a helper that raises on a float vector) or could not be checked (it timed out): it is
    listed once, with its reason, not once more per grid value."""
    by_label = _by_label(targets)
    results = list(results)
    key = _function_key
    # per framework (None: skipped before any worker, for every framework)
    skipped = {(key(t), r.framework) for r in results if r.status in ("skipped", "error")
               and (t := by_label.get((r.file, r.name))) is not None and not t.grid}
    return [r for r in results
            if not ((t := by_label.get((r.file, r.name))) and t.grid and (
                (key(t), r.framework) in skipped or (key(t), None) in skipped))]


def grid_repeats(targets: Iterable[Target], results: Iterable[TargetResult],
                 fail_on: str) -> list[TargetResult]:
    """At a grid value of a function's keyword, the findings its defaults already have
    (same code, kind, dtype and range: `elu(x, alpha)` leaks from x = 88.72284 at every
    alpha) are not repeated; a note says how many were left out. Findings that the value
    changes or brings stay, as warnings naming it."""
    by_label = _by_label(targets)
    results = list(results)
    key = _function_key

    def same(f: Finding) -> tuple[object, ...]:
        return f.code, f.kind, f.dtype, f.range, f.order

    at_defaults: dict[tuple[object, ...], set[tuple[object, ...]]] = {}
    for r in results:
        t = by_label.get((r.file, r.name))
        if t is not None and not t.grid and not t.setting:
            at_defaults[(key(t), r.framework)] = {same(f) for f in r.findings}
    out = []
    for r in results:
        t = by_label.get((r.file, r.name))
        seen = at_defaults.get((key(t), r.framework)) if t is not None and t.grid else None
        if not seen or r.status not in ("pass", "fail"):
            out.append(r)
            continue
        kept = tuple(f for f in r.findings if same(f) not in seen)
        if len(kept) == len(r.findings):
            out.append(r)
            continue
        left = len(r.findings) - len(kept)
        note = f"{left} finding{'s' * (left != 1)} {REPEATS_NOTE}"
        status: Status = "fail" if any(fails(f.severity, fail_on) for f in kept) else "pass"
        out.append(dataclasses.replace(r, findings=kept, notes=(*r.notes, note),
                                       status=status))
    return out
