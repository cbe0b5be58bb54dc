"""What the checks of a target share: resolving it, its location, sampling it against the
float64 reference, sweeping every dtype, the gates that say it is a float function of x,
pointing findings at their culprit (locate), and the result.

Runs inside a worker (it touches the framework through a Backend); returns model data.
`sweep.py` dispatches to the checks built on it (function, rows, param_sweep, second,
gradcheck), which import this module and never each other's callers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from gradsafe.backends.base import (
    WIDTH,
    Backend,
    Fn,
    NotATarget,
    TargetError,
    bind_namespace,
    resolve_dotted,
)
from gradsafe.check import calls
from gradsafe.check.analyse import Context, Counter, Sample, analyse
from gradsafe.check.exhaustive import Tick, probe_plan
from gradsafe.discover.load import LoadError, load_target, one_line
from gradsafe.locate import trace as locate
from gradsafe.locate.backward import point_into_backward
from gradsafe.model.codes import NO_GRADIENT
from gradsafe.model.types import (
    CUSTOM_KINDS,
    DTypeName,
    Finding,
    Location,
    Options,
    Range,
    Target,
    TargetKind,
    TargetResult,
)
from gradsafe.numerics.floats import F64, info


def resolve(target: Target, backend: Backend | None = None) -> Any:
    reduce = backend.sum_trailing if backend is not None and not _custom(target) else None
    fill = backend.constant if backend is not None else None
    stack = backend.rows if backend is not None else None
    if target.kind == TargetKind.BUILTIN:
        return calls.bind(resolve_dotted(target.name), target.kind, target.args, reduce,
                          target.sweep, fill, stack)
    assert target.file is not None
    obj = calls.bind(load_target(target.file, target.name), target.kind, target.args, reduce,
                     target.sweep, fill, stack)
    if target.kind == TargetKind.ARRAY_API and backend is not None:
        return bind_namespace(obj, backend.array_namespace())
    return obj


def target_location(target: Target) -> Location | None:
    if target.file is None or target.line is None:
        return None
    line = Path(target.file).read_text(encoding="utf-8").splitlines()[target.line - 1]
    col = line.find(target.name) + 1 if target.name in line else 1
    return Location(target.file, target.line, col, target.line, col + len(target.name))


class Sampler:
    """Evaluates a target in one dtype, adding the float64 reference where needed."""

    def __init__(self, backend: Backend, fn: Fn, fn64: Fn, dtype: DTypeName) -> None:
        self.backend, self.fn, self.fn64, self.dtype = backend, fn, fn64, dtype

    def __call__(self, xs: F64) -> Sample:
        ev = self.backend.evaluate(self.fn, xs, self.dtype)
        if self.dtype == "float64":
            return Sample(xs, ev.forward, ev.gradient, ev.forward.copy())
        # the float64 forward everywhere: non-finite values and lost digits (GS203) both
        # need it, and a forward-only pass costs a fraction of the swept VJP
        ref = self.backend.evaluate(self.fn64, xs, "float64", grad=False).forward
        return Sample(xs, ev.forward, ev.gradient, ref, exact=True,
                      grad_reference=grad_reference(self.backend, self.fn64, xs, ev.forward,
                                                    ev.gradient))


def grad_reference(backend: Backend, fn64: Fn, xs: F64, forward: F64, gradient: F64 | None,
                   multiple: int = WIDTH) -> F64 | None:
    """The float64 gradient where the gradient is non-finite at a finite input with a finite
    forward (NaN elsewhere): it tells an honest overflow of the true derivative from a bug."""
    if gradient is None:
        return None
    out = np.full(xs.shape, np.nan)
    need = np.isfinite(xs) & np.isfinite(forward) & ~np.isfinite(gradient)
    if need.any():
        g = backend.evaluate(fn64, xs[need], "float64", multiple=multiple).gradient
        if g is not None:
            out[need] = g
    return out


# dtype -> (probe inputs, forward values): what a sweep saw, kept for suggestion checks
# (and the float64 forward of the same function at them, when the sweep computed it: the
# truth a rewrite's changed values are held against)
Forwards = dict[str, tuple[F64, F64, F64 | None]]


def sweep_dtypes(backend: Backend, target: Target, options: Options,
                 build: Callable[[str], tuple[Fn, str | None]], fn64: Fn,
                 counter: Counter | None = None, tick: Tick | None = None,
                 seen: Forwards | None = None) -> tuple[list[Finding], list[str]]:
    """Sweep one elementwise function (built per dtype) over every dtype's probe plan."""
    location = target_location(target)
    findings: list[Finding] = []
    notes: list[str] = []
    for dtype in options.dtypes:
        fn, note = build(dtype)
        if note:
            notes.append(f"{dtype}: {note}")
        sampler = Sampler(backend, fn, fn64, dtype)
        probes, swept = probe_plan(backend, fn, dtype, target.constants, options, tick)
        if swept:
            notes.append(swept)
        sample = sampler(probes.values)
        if seen is not None:
            seen[dtype] = (probes.values, sample.forward,
                           sample.reference if sample.exact else None)
        if sample.gradient is None:
            findings.append(no_gradient(target, backend.name, dtype, location))
            continue
        ctx = Context(dtype, backend.name, options.operating_range, location, target.features)
        findings.extend(analyse(probes, sample, sampler, ctx, counter, notes))
    return findings, notes


def require_elementwise(backend: Backend, fn: Fn, multiple: int = WIDTH) -> None:
    """The sweep reads output i as f(x_i): refuse a function whose outputs mix elements
    (softmax, sums, norms), which would otherwise give findings about nothing."""
    x = np.linspace(-2.0, 2.0, 8)
    moved = x.copy()
    moved[0] = 3.0
    a = backend.evaluate(fn, x, "float64", grad=False, multiple=multiple).forward
    b = backend.evaluate(fn, moved, "float64", grad=False, multiple=multiple).forward
    changed = int(np.sum(~((a[1:] == b[1:]) | (np.isnan(a[1:]) & np.isnan(b[1:])))))
    if changed:
        raise NotATarget(
            f"is not elementwise: changing one input element changed {changed} other outputs "
            "(softmax, sums and norms mix elements)")


def _custom(target: Target) -> bool:
    """Hand-written gradients are called as written (gradcheck has its own contract)."""
    return target.kind in CUSTOM_KINDS


@contextmanager
def qualifying(target: Target) -> Iterator[None]:
    """What fails here fails before any sweep: the target is not a float function of x as
    it stands (see NotATarget)."""
    try:
        yield
    except (NotATarget, LoadError):
        raise
    except TargetError as exc:
        raise NotATarget(str(exc)) from None
    except Exception as exc:
        user = os.path.realpath(target.file) if target.file else None
        raise NotATarget(f"raised {one_line(exc, user)} when called on a float vector"
                         ) from None


def require_float(backend: Backend, fn: Fn, multiple: int = WIDTH) -> None:
    """Integer and boolean outputs (masks, counts, indices) are not differentiable functions:
    a helper returning one is not a target; nor is one that detaches its output."""
    x = np.linspace(-1.7, 2.3, 8)
    ev = backend.evaluate(fn, x, "float64", multiple=multiple)
    if ev.floating and ev.gradient is None:
        raise NotATarget("its output does not depend differentiably on x (detached, or "
                         "computed outside autograd)")
    if not ev.floating:
        raise NotATarget("returns integer or boolean values, not a differentiable float "
                         "function of x")


def sample(backend: Backend, target: Target,
           xs: dict[DTypeName, F64]) -> dict[DTypeName, tuple[F64, F64 | None, str | None]]:
    """Forward, gradient (None: not differentiable) and a build note at given inputs."""
    obj = resolve(target, backend)
    out: dict[DTypeName, tuple[F64, F64 | None, str | None]] = {}
    for dtype, values in xs.items():
        fn, note = backend.instantiate(obj, target.kind, dtype)
        ev = backend.evaluate(fn, values, dtype)
        out[dtype] = (ev.forward, ev.gradient, note or ev.note)
    return out


def explain(backend: Backend, target: Target, obj: Any, findings: list[Finding],
            make: Callable[[Any, str], tuple[Any, int]]) -> list[Finding]:
    """Point each finding at the operation that caused it (see locate.py)."""
    if not findings:
        return findings
    traced = locate.instrument(target)
    if traced is not None:
        traced.obj = calls.bind(traced.obj, target.kind, target.args,
                                None if _custom(target) else backend.sum_trailing,
                                target.sweep, backend.constant, backend.rows)
    if traced is not None and target.kind == TargetKind.ARRAY_API:
        traced.obj = bind_namespace(traced.obj, backend.array_namespace())
    found = locate.refine(backend, target, traced, make, findings)
    return point_into_backward(backend, target, obj, found, make)


def no_gradient(target: Target, framework: str, dtype: DTypeName,
                location: Location | None) -> Finding:
    mx = info(dtype).max
    return Finding(code=NO_GRADIENT, kind="gradient", severity="error", dtype=dtype,
                   framework=framework, example_input=1.0, forward=float("nan"),
                   gradient=float("nan"), range=Range(-mx, mx), boundary=-mx, location=location,
                   message=f"the output does not depend differentiably on the input in {dtype} "
                   "(the gradient is None: integer/boolean output or a detached graph)")


def result(target: Target, framework: str, findings: tuple[Finding, ...],
           notes: tuple[str, ...], options: Options) -> TargetResult:
    failing = any(f.fails(options.fail_on) for f in findings)
    return TargetResult(target.label, target.file, target.line, framework,
                        "fail" if failing else "pass", None, findings, notes)
