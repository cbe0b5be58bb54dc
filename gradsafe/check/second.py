"""`--order 2`: sweep the second derivative f'' with the framework's own double backward.

The target's first derivative f' is built as a function the framework differentiates again
(backends/derivative.py); sweeping it on the same probe plan gives f' and f'' at every
probe. A second-order finding is a point where f' is finite, f'' is not, and the float64
f'' of the same code is finite and representable in the dtype under test (the one rule of
DESIGN.md). The float64 f'' is computed only at the suspicious points, so the rule costs
little. Like forward overflows (analyse._forward_runs), a run of proven points continues
through points where float64 overflowed as well: the float64 double backward of
`mish` is NaN from x = 709.78 on, although the true f'' is 0 there.

Runs inside a worker; returns model data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from gradsafe.backends.base import WIDTH, Backend, Fn, TargetError
from gradsafe.backends.derivative import derivative, not_twice
from gradsafe.check.analyse import (
    Counter,
    _boundary,
    bisect_edge,
    classify,
)
from gradsafe.check.analyse import Sample as Sample1
from gradsafe.check.common import explain
from gradsafe.check.exhaustive import Tick, probe_plan
from gradsafe.model.codes import NO_GRADIENT
from gradsafe.model.types import (
    CUSTOM_KINDS,
    DTypeName,
    Finding,
    Location,
    Options,
    Range,
    Severity,
    Target,
)
from gradsafe.numerics.examples import readable
from gradsafe.numerics.floats import (
    F64,
    DTypeInfo,
    describe_range,
    display,
    info,
    keys_to_values,
    nonfinite_name,
    round_to,
)
from gradsafe.numerics.probes import ProbePlan
from gradsafe.numerics.runs import runs_of

BoolArray = npt.NDArray[np.bool_]
MAX_RANGES = 8  # per dtype, as for order 1
STEP = float(np.cbrt(np.finfo(np.float64).eps))  # central differences: ~6e-6 relative
ORDER = 2

# dtype -> (the callable for that dtype, the vector length multiple it needs)
Build = Callable[[str], "tuple[Fn, int]"]


@dataclass(frozen=True)
class Sample2:
    x: F64
    first: F64  # f' in the dtype
    second: F64  # f'' in the dtype (0 where the framework says f' does not depend on x)
    reference: F64  # float64 f'' where `second` is not finite (elsewhere 0: not needed)
    disconnected: bool = False  # the framework returned no f'' at all


class Probe2:
    """f' and f'' in one dtype, with the float64 f'' at the points that need it."""

    def __init__(self, backend: Backend, d: Fn, d64: Fn, dtype: DTypeName,
                 multiple: int) -> None:
        self.backend, self.d, self.d64 = backend, d, d64
        self.dtype, self.multiple = dtype, multiple

    def __call__(self, xs: F64) -> Sample2:
        ev = self.backend.evaluate(self.d, xs, self.dtype, multiple=self.multiple)
        disconnected = ev.gradient is None
        second = np.zeros(xs.size) if ev.gradient is None else ev.gradient
        ref = np.zeros(xs.size)
        suspect = _suspect(xs, ev.forward, second)
        if self.dtype == "float64":
            ref = second.copy()
        elif suspect.any():
            ev64 = self.backend.evaluate(self.d64, xs[suspect], "float64",
                                         multiple=self.multiple)
            ref[suspect] = (np.zeros(int(suspect.sum())) if ev64.gradient is None
                            else ev64.gradient)
            # where float64 autodiff fails as well (the same 0 * inf: relu(x)**1.5 at
            # x < 0), the float64 f' itself may still tell the true f''
            unknown = suspect & ~np.isfinite(ref)
            if unknown.any():
                ref[unknown] = self.numeric(xs[unknown])
        return Sample2(xs, ev.forward, second, ref, disconnected)

    def numeric(self, xs: F64) -> F64:
        """f'' by central differences of the float64 f' with steps h and h/2; NaN where
        the two disagree (a kink, a singularity) or f' is not finite around x."""
        h = STEP * np.maximum(np.abs(xs), 1.0)
        with np.errstate(over="ignore", invalid="ignore"):
            pts = np.concatenate([xs + h, xs - h, xs + h / 2, xs - h / 2])
            f1 = self.backend.evaluate(self.d64, pts, "float64", grad=False,
                                       multiple=self.multiple).forward
            a, b, c, e = np.split(f1, 4)
            wide = (a - b) / (2 * h)
            narrow = (c - e) / h
            agree = np.abs(wide - narrow) <= 1e-3 * np.maximum(np.abs(narrow), 1.0)
        return np.where(np.isfinite(wide) & np.isfinite(narrow) & agree, narrow, np.nan)


def _suspect(x: F64, first: F64, second: F64) -> BoolArray:
    return ~np.isnan(x) & np.isfinite(first) & ~np.isfinite(second)


def masks(s: Sample2, dtype: DTypeName) -> tuple[BoolArray, BoolArray]:
    """(proven, loose): f'' non-finite where f' is finite and the float64 f'' is finite and
    representable in the dtype; loose also counts points where the float64 f'' is not
    finite (the truth is unknown there). In float64 itself there is no reference: a NaN
    f'' where f' is finite counts (an infinite one may be the true value)."""
    suspect = _suspect(s.x, s.first, s.second)
    if dtype == "float64":
        proven = suspect & np.isnan(s.second)
        return proven, proven
    with np.errstate(over="ignore", invalid="ignore"):
        representable = np.isfinite(round_to(s.reference, dtype))
    unknown = ~np.isfinite(s.reference)
    return suspect & representable, suspect & (representable | unknown)


def check_order2(backend: Backend, target: Target, build: Build, options: Options,
                 location: Location | None, counter: Counter | None = None,
                 tick: Tick | None = None,
                 constants: tuple[float, ...] | None = None) -> tuple[list[Finding], list[str]]:
    """Second-order findings and notes of one target on one framework, every dtype."""
    counter = counter or Counter()
    findings: list[Finding] = []
    notes: list[str] = []
    for dtype in options.dtypes:
        try:
            fn, multiple = build(dtype)
            d = derivative(backend, fn)
            d64 = derivative(backend, build("float64")[0])
            probes, swept = probe_plan(backend, d, dtype, constants or target.constants,
                                       options, tick, multiple)
            if swept:
                notes.append(f"order 2: {swept}")
            probe = Probe2(backend, d, d64, dtype, multiple)
            sample = probe(probes.values)
            if sample.disconnected and target.kind in CUSTOM_KINDS and _varies(sample):
                findings.append(_not_twice(target, backend.name, dtype, location,
                                           _disconnected_reason(target)))
                continue
            found = analyse2(probes, sample, probe, dtype, backend.name, options, location,
                             target.features, counter)
            if found:
                found = with_forward(backend, fn, dtype, multiple, found)
            findings.extend(found)
        except Exception as exc:
            if isinstance(exc, TargetError) and not not_twice(exc):
                raise
            if not_twice(exc) or _unavailable(exc):
                findings.append(_not_twice(target, backend.name, dtype, location,
                                           _reason(exc)))
            else:
                notes.append(f"order 2: {dtype}: second derivative not checked: "
                             f"{one_line(exc)}")
    return findings, notes


def _disconnected_reason(target: Target) -> str:
    if "once_differentiable" in target.features:
        return ("its backward is marked @once_differentiable, so torch runs it without a "
                "graph: differentiating f' gives 0 (or raises 'element 0 of tensors does not "
                "require grad') although f' changes")
    return ("its hand-written backward returns values the framework cannot differentiate "
            "again (computed outside its graph: NumPy, or detached tensors), so the "
            "framework's f'' is silently 0 although f' changes")


# the note of a row-wise or reduction target under --order 2
NOT_ELEMENTWISE = ("order 2: not checked: second derivatives are swept for elementwise "
                   "functions")

def _varies(s: Sample2) -> bool:
    ok = np.isfinite(s.x) & np.isfinite(s.first)
    vals = s.first[ok]
    return bool(vals.size) and bool(np.ptp(vals) > 0)


def _unavailable(exc: BaseException) -> bool:
    """The framework has no double backward for some operation of the target."""
    text = str(exc).lower()
    return isinstance(exc, (RuntimeError, NotImplementedError, LookupError)) and (
        "not implemented" in text or "no gradient defined" in text
        or "differentiate" in text)


def _reason(exc: BaseException) -> str:
    text = one_line(exc).split(" See https://")[0]  # JAX appends a link to its docs
    if "once_differentiable" in text.lower():
        return ("its hand-written backward is marked @once_differentiable, so differentiating "
                f"f' raises ({text})")
    if "numpy" in text.lower() or "tracer" in text.lower() or "concrete" in text.lower():
        return ("its hand-written backward leaves the framework (NumPy on the incoming "
                f"gradient), so differentiating f' raises ({text})")
    return f"differentiating f' raises ({text})"


def one_line(exc: BaseException, limit: int = 240) -> str:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _not_twice(target: Target, framework: str, dtype: DTypeName, location: Location | None,
               why: str) -> Finding:
    mx = info(dtype).max
    return Finding(code=NO_GRADIENT, kind="gradient", severity="error", dtype=dtype,
                   framework=framework, example_input=1.0, forward=float("nan"),
                   gradient=float("nan"), range=Range(-mx, mx), boundary=-mx, location=location,
                   message=f"second derivative unavailable in {dtype}: {why}; training on "
                   "derivatives (u_xx in a physics-informed loss, forces from an energy) "
                   "needs it", order=ORDER)


def analyse2(plan: ProbePlan, s: Sample2, probe: Probe2, dtype: DTypeName, framework: str,
             options: Options, location: Location | None, features: frozenset[str],
             counter: Counter) -> list[Finding]:
    d = info(dtype)
    proven, loose = masks(s, dtype)
    finite = np.isfinite(plan.values)
    runs: list[tuple[int, int, bool]] = []  # (lo, hi, widened through unknown points)
    for lo, hi in runs_of(loose & finite, finite):
        if proven[lo:hi + 1].any():
            widened = bool((loose[lo:hi + 1] & ~proven[lo:hi + 1]).any())
            runs.append((lo, hi, widened))
    findings: list[Finding] = []
    for i, (lo, hi, widened) in enumerate(runs[:MAX_RANGES]):
        lo_key = _edge(plan, lo, -1, finite, probe, d, widened, counter)
        hi_key = _edge(plan, hi, +1, finite, probe, d, widened, counter)
        extra = len(runs) - MAX_RANGES if i == MAX_RANGES - 1 else 0
        members = np.arange(lo, hi + 1)
        pool = members[proven[lo:hi + 1]]
        findings.append(_finding(plan, s, pool, lo_key, hi_key, d, framework, options,
                                 location, features, extra))
    for idx in np.flatnonzero(proven & np.isinf(plan.values)):
        key = int(plan.keys[idx])
        findings.append(_finding(plan, s, np.array([idx]), key, key, d, framework, options,
                                 location, features, 0, info_only=True))
    return findings


def _edge(plan: ProbePlan, i: int, step: int, finite: BoolArray, probe: Probe2, d: DTypeInfo,
          loose: bool, counter: Counter) -> int:
    """Exact key of the outermost bad value of the run ending at probe i in direction step
    (k-ary bisection in full-width vectors, as analyse._edge)."""
    return bisect_edge(plan, i, step, finite,
                       lambda xs: masks(probe(xs), d.name)[1 if loose else 0], d, counter)


def _finding(plan: ProbePlan, s: Sample2, pool: npt.NDArray[np.int64], lo_key: int,
             hi_key: int, d: DTypeInfo, framework: str, options: Options,
             location: Location | None, features: frozenset[str], extra: int,
             info_only: bool = False) -> Finding:
    dtype = d.name
    bounds = keys_to_values(np.array([lo_key, hi_key], dtype=np.int64), d)
    low, high = float(bounds[0]), float(bounds[1])
    ex = int(pool[readable(plan.values[pool], dtype, options.operating_range)])
    x, first, second = float(plan.values[ex]), float(s.first[ex]), float(s.second[ex])
    r = options.operating_range
    severity: Severity = "info" if info_only else (
        "error" if low <= r and high >= -r else "warning")
    # the order-1 classifier reads the "gradient" of a sample: here that is f''
    as1 = Sample1(s.x[pool], s.first[pool], s.second[pool], s.first[pool])
    code = classify("gradient", as1, np.arange(pool.size), features)
    where = describe_range(low, high, d, dtype)
    ref = float(s.reference[ex])
    truth = (f"; the float64 second derivative is {display(ref, 'float64')}"
             if dtype != "float64" else "")
    text = (f"second derivative is {nonfinite_name(second)} for {where} in {dtype} while the first "
            f"derivative is finite (at x = {display(x, dtype)}: first derivative "
            f"{display(first, dtype)}, second derivative {_num(second, dtype)}{truth})")
    if extra:
        text += f"; {extra} more bad ranges not listed"
    return Finding(code=code, kind="gradient", severity=severity, dtype=dtype, framework=framework,
                   example_input=x, forward=float("nan"), gradient=second, range=Range(low, high),
                   boundary=_boundary(low, high, d), location=location, message=text, order=ORDER)


def with_forward(backend: Backend, fn: Fn, dtype: DTypeName, multiple: int,
                  found: list[Finding]) -> list[Finding]:
    """The forward value f(x) at each finding's example input (one short evaluation)."""
    xs = np.array([f.example_input for f in found], dtype=np.float64)
    fwd = backend.evaluate(fn, xs, dtype, grad=False, multiple=multiple).forward
    return [dataclasses.replace(f, forward=float(v)) for f, v in zip(found, fwd, strict=True)]


def _num(v: float, dtype: str) -> str:
    return "NaN" if np.isnan(v) else display(v, dtype)


def plain_build(backend: Backend, obj: object, kind: str) -> Build:
    def build(dtype: str) -> tuple[Fn, int]:
        return backend.instantiate(obj, kind, dtype)[0], WIDTH

    return build


def explain2(backend: Backend, target: Target, obj: object, findings: list[Finding],
             build: Callable[[Any, str], tuple[Fn, int]] | None = None) -> list[Finding]:
    """Locate second-order findings: the target's operations are traced while the
    framework differentiates f', so the culprit is the operation whose double backward
    turned a finite cotangent into NaN/inf (see locate.py)."""
    located = [f for f in findings if f.code != NO_GRADIENT]
    if not located:
        return findings

    def make(o: object, dt: str) -> tuple[Fn, int]:
        if build is not None:
            fn, multiple = build(o, dt)
            return derivative(backend, fn), multiple
        return derivative(backend, backend.instantiate(o, target.kind, dt)[0]), WIDTH

    done = iter(explain(backend, target, obj, located, make))
    return [f if f.code == NO_GRADIENT else _traced(f, next(done)) for f in findings]


def _traced(before: Finding, after: Finding) -> Finding:
    """Say that the cause locate.py appended was traced through the double backward (its
    sentences speak of 'the derivative' and 'the backward' of f')."""
    head = before.message + ". "
    if after.message.startswith(head) and after.message != before.message:
        rest = after.message[len(head):]
        return dataclasses.replace(after, message=(
            f"{head}Traced through the double backward (the backward of f'): {rest}"))
    return after


def check_custom(backend: Backend, target: Target, obj: object, options: Options,
                 location: Location | None, elementwise: bool) -> tuple[list[Finding],
                                                                         list[str]]:
    """Order 2 of a target with a hand-written gradient (autograd.Function, custom_vjp,
    custom_gradient): the framework differentiates the hand-written backward itself."""
    if backend.name == "numpy":
        return [], ["order 2: not checked: a NumPy forward/backward class has no second "
                    "derivative to take"]
    if not elementwise:
        return [], ["order 2: not checked: second derivatives are swept for elementwise "
                    "functions only"]
    plain = dataclasses.replace(target, variant=None)  # a Function class is not a Module
    backward = getattr(obj, "backward", None)
    code = getattr(backward, "__code__", None)
    if code is not None and code.co_filename.replace("\\", "/").endswith(
            "torch/autograd/function.py"):  # once_differentiable's wrapper
        plain = dataclasses.replace(plain, features=plain.features | {"once_differentiable"})
    found, notes = check_order2(backend, plain, plain_build(backend, obj, target.kind),
                                options, location)
    return explain2(backend, plain, obj, found), notes
