"""Turn swept values into findings: bad points, ranges on the float lattice, exact
boundaries by bisection, a first classification and a message. Pure NumPy; the framework is
reached only through the `Probe` callback the worker passes in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gradsafe.model.codes import (
    BACKWARD_OVERFLOW,
    BRANCH_LEAK,
    FORWARD_INACCURATE,
    FORWARD_OVERFLOW,
    INFINITE_DERIVATIVE,
    MASK_MULTIPLY,
)
from gradsafe.model.types import DTypeName, Finding, Kind, Location, Range, Severity
from gradsafe.numerics.examples import readable
from gradsafe.numerics.floats import (
    F64,
    I64,
    DTypeInfo,
    describe_range,
    display,
    info,
    keys_to_values,
    nonfinite_name,
    round_to,
    shortest_repr,
)
from gradsafe.numerics.probes import ProbePlan
from gradsafe.numerics.runs import runs_of

BoolArray = npt.NDArray[np.bool_]
MAX_RANGES = 8  # per kind and dtype; more are summarised in the message of the last one
BISECT_WIDTH = 1023  # candidates per bisection step (one full-width vector with its pad)


@dataclass(frozen=True)
class Sample:
    """Forward, gradient and float64 reference forward at a set of inputs."""

    x: F64
    forward: F64
    gradient: F64 | None
    reference: F64  # float64 forward where the forward is non-finite, else the forward
    exact: bool = False  # reference is the float64 forward everywhere (GS203 is checked)
    # float64 gradient where the gradient is non-finite and the forward finite (NaN
    # elsewhere); None: not computed (every non-finite gradient counts)
    grad_reference: F64 | None = None


# evaluates inputs of the plan's dtype and returns the same Sample the sweep produced
Probe = Callable[[F64], Sample]


@dataclass(frozen=True)
class Context:
    dtype: DTypeName
    framework: str
    operating_range: float
    location: Location | None
    features: frozenset[str]


@dataclass
class Counter:
    evaluations: int = 0


# what is checked, and the finding kind it reports: an inaccurate forward is a forward finding
CHECKS: dict[str, Kind] = {"gradient": "gradient", "forward": "forward",
                           "inaccurate": "forward"}
# a finite forward is inaccurate when it is off the float64 value by more than this fraction
# of max(|value|, 1): far beyond rounding (bfloat16's is 2**-9), so only lost digits count
INACCURATE = 0.25
# the forward check widened through points where float64 overflowed too (see _forward_runs)
LOOSE = "forward_loose"
HONEST = "gradient_honest"  # non-finite gradients whose float64 value exceeds the dtype


def bad_masks(s: Sample, d: DTypeInfo) -> dict[str, BoolArray]:
    """Bad points per check, and LOOSE: bad forwards counting also the points where the
    forward is +-inf or NaN and the float64 reference is non-finite too (the truth is
    unknown there; analyse keeps those only next to a proven bad forward, see
    _forward_runs).

    One rule for every quantity: a bad value counts where the float64 value of the same
    quantity is finite (representable, for an inf); where float64 is NaN the input is
    outside the function's domain (log(expm1(x)) for x < 0). A gradient that overflows
    because the true derivative exceeds the dtype's max (log at a subnormal x in float32:
    1/x > 3.4e38) is an honest overflow, not a finding (HONEST marks those points)."""
    finite_x = np.isfinite(s.x)
    fwd_finite = np.isfinite(s.forward)
    # the true value is representable when it rounds to a finite value: anything below
    # max + half an ulp rounds to max (comparing with max itself misses that half ulp)
    representable = np.isfinite(round_to(s.reference, d.name))
    # a finite reference beyond the dtype is an honest overflow; a non-finite one is unknown
    unknown = ~np.isfinite(s.reference)
    # float64 is NaN at a finite input: outside the domain (at +-inf the float64 formula
    # says nothing about the limit, so NaN there stays an info finding as before)
    outside = finite_x & np.isnan(s.reference)
    usable = ~np.isnan(s.x) & (finite_x | np.isnan(s.forward))
    fwd_nan, fwd_inf = np.isnan(s.forward), np.isinf(s.forward)
    fwd_bad = usable & ((fwd_nan & ~outside) | (fwd_inf & representable))
    fwd_loose = usable & (fwd_nan | (fwd_inf & (representable | unknown)))
    honest = np.zeros_like(finite_x)
    if s.gradient is None:
        grad_bad = np.zeros_like(finite_x)
    else:
        grad_bad = ~np.isnan(s.x) & fwd_finite & ~np.isfinite(s.gradient) & ~outside
        if s.grad_reference is not None:
            ref = s.grad_reference
            # an inf of the sign of the true value; a NaN is never honest (inf / inf)
            with np.errstate(invalid="ignore"):
                honest = (grad_bad & finite_x & np.isinf(s.gradient) & np.isfinite(ref)
                          & ~np.isfinite(round_to(ref, d.name))
                          & (np.sign(s.gradient) == np.sign(ref)))
            grad_bad &= ~honest
    off = np.zeros_like(finite_x)
    if s.exact:
        with np.errstate(invalid="ignore", over="ignore"):
            off = finite_x & fwd_finite & representable & (
                np.abs(s.forward - s.reference) > INACCURATE * np.maximum(np.abs(s.reference), 1))
    return {"gradient": grad_bad, "forward": fwd_bad, "inaccurate": off, LOOSE: fwd_loose,
            HONEST: honest}


def _forward_runs(masks: dict[str, BoolArray], values: F64, forward: F64,
                  finite: BoolArray) -> list[tuple[int, int, str]]:
    """Runs of bad forward values, each with the check that found it (LOOSE if widened).

    The float64 reference is the same formula, so it overflows too, later: log(1 + exp(x))
    is inf in float64 from x = 709.78 on although the true value is x. A run of bad forwards
    that holds a point where float64 was finite continues through the points where float64
    overflowed or gave NaN as well; honest overflows (float64 finite but beyond the dtype)
    end it. A run where float64 is NaN throughout is outside the domain and dropped, unless
    it is a single input (+-0 count as one) with a NaN forward: sin(x) / x at 0 is a 0/0 of
    the formula between finite neighbours, not a domain (log(0) = -inf is no finding)."""
    strict = masks["forward"] & finite
    out: list[tuple[int, int, str]] = []
    for lo, hi in runs_of(masks[LOOSE] & finite, finite):
        if strict[lo:hi + 1].any() or (np.unique(values[lo:hi + 1]).size == 1
                                       and np.isnan(forward[lo:hi + 1]).all()):
            out.append((lo, hi, LOOSE))
    return out


def _honest_note(plan: ProbePlan, sample: Sample, honest: BoolArray) -> str:
    idx = np.flatnonzero(honest)
    xs = plan.values[idx]
    i = int(idx[np.argmin(np.abs(xs))])
    ref = sample.grad_reference[i] if sample.grad_reference is not None else float("nan")
    lo, hi = display(float(xs.min()), plan.dtype), display(float(xs.max()), plan.dtype)
    return (f"{plan.dtype}: the gradient is inf at {idx.size} probes between x = {lo} and "
            f"{hi} where the true derivative exceeds the largest {plan.dtype} (at x = "
            f"{display(float(plan.values[i]), plan.dtype)} it is "
            f"{shortest_repr(float(ref), 'float64')} in float64): an honest overflow, not "
            "a finding")


def analyse(plan: ProbePlan, sample: Sample, probe: Probe, ctx: Context,
            counter: Counter | None = None, notes: list[str] | None = None) -> list[Finding]:
    """Findings of one swept dtype; `notes` gets a line about honest gradient overflows."""
    d = info(plan.dtype)
    counter = counter or Counter()
    masks = bad_masks(sample, d)
    if notes is not None and masks[HONEST].any():
        notes.append(_honest_note(plan, sample, masks[HONEST]))
    findings: list[Finding] = []
    finite = np.isfinite(plan.values)
    infinite = np.isinf(plan.values)
    for check in CHECKS:
        bad = masks[check]
        if check == "forward":
            runs = _forward_runs(masks, plan.values, sample.forward, finite)
        else:
            runs = [(lo, hi, check) for lo, hi in runs_of(bad & finite, finite)]
        for i, (lo, hi, found_by) in enumerate(runs[:MAX_RANGES]):
            lo_key = _edge(plan, lo, -1, finite, probe, d, found_by, counter)
            hi_key = _edge(plan, hi, +1, finite, probe, d, found_by, counter)
            extra = len(runs) - MAX_RANGES if i == MAX_RANGES - 1 else 0
            findings.append(_finding(plan, sample, lo, hi, lo_key, hi_key, check, ctx, d,
                                     extra, found_by=found_by))
        for idx in np.flatnonzero(bad & infinite):
            findings.append(_finding(plan, sample, int(idx), int(idx), int(plan.keys[idx]),
                                     int(plan.keys[idx]), check, ctx, d, 0, info_only=True))
    return findings


def _edge(plan: ProbePlan, i: int, step: int, finite: BoolArray, probe: Probe, d: DTypeInfo,
          kind: str, counter: Counter) -> int:
    """Exact key of the outermost bad value of the run ending at probe i in direction step,
    by k-ary bisection between it and the neighbouring good probe."""
    return bisect_edge(plan, i, step, finite, lambda xs: bad_masks(probe(xs), d)[kind], d,
                       counter)


def bisect_edge(plan: ProbePlan, i: int, step: int, finite: BoolArray,
                is_bad: Callable[[F64], BoolArray], d: DTypeInfo, counter: Counter) -> int:
    """The bisection behind _edge (and the second derivative's): `is_bad` evaluates
    candidate values in one full-width vector and says which are bad."""
    j = i + step
    while 0 <= j < plan.values.size and not finite[j]:
        j += step
    bad_key = int(plan.keys[i])
    if not 0 <= j < plan.values.size:
        return bad_key
    good_key = int(plan.keys[j])
    while abs(good_key - bad_key) > 1:
        lo, hi = sorted((good_key, bad_key))
        cand = _candidates(lo, hi)
        counter.evaluations += 1
        sub = is_bad(keys_to_values(cand, d))
        # walk from the good side: the first bad candidate is the new bad end
        order = cand if good_key < bad_key else cand[::-1]
        flags = sub if good_key < bad_key else sub[::-1]
        hit = np.flatnonzero(flags)
        if hit.size == 0:
            good_key = int(order[-1])
        else:
            k = int(hit[0])
            bad_key = int(order[k])
            if k > 0:
                good_key = int(order[k - 1])
    return bad_key


def _candidates(lo: int, hi: int) -> I64:
    """Up to BISECT_WIDTH keys evenly spread strictly between lo and hi."""
    n = min(hi - lo - 1, BISECT_WIDTH)
    if max(abs(lo), abs(hi)) < 1 << 52:  # float arithmetic is exact enough here
        cand = np.unique(np.linspace(lo, hi, n + 2)[1:-1].round().astype(np.int64))
        return cand[(cand > lo) & (cand < hi)]
    # float64 keys span almost 2**64: float or int64 arithmetic on them overflows (the
    # rounded candidates fell outside (lo, hi) and left nothing to evaluate)
    span = hi - lo
    return np.unique(np.array([lo + (i * span) // (n + 1) for i in range(1, n + 1)],
                              dtype=np.int64))


def _finding(plan: ProbePlan, s: Sample, lo: int, hi: int, lo_key: int, hi_key: int,
             check: str, ctx: Context, d: DTypeInfo, extra: int,
             info_only: bool = False, found_by: str | None = None) -> Finding:
    kind = CHECKS[check]
    bounds = keys_to_values(np.array([lo_key, hi_key], dtype=np.int64), d)
    low, high = float(bounds[0]), float(bounds[1])
    members = np.arange(lo, hi + 1)
    masks = bad_masks(_take(s, members), d)
    proven = members[masks[check]]  # the example comes from where float64 is finite
    members = members[masks[found_by or check]]
    pool = proven if proven.size else members
    ex = readable(plan.values[pool], plan.dtype, ctx.operating_range)
    ex_idx = int(pool[ex])
    x = float(plan.values[ex_idx])
    fwd = float(s.forward[ex_idx])
    grad = float(s.gradient[ex_idx]) if s.gradient is not None else float("nan")
    r = ctx.operating_range
    severity: Severity
    if info_only:
        severity = "info"
    else:
        severity = "error" if low <= r and high >= -r else "warning"
    boundary = _boundary(low, high, d)
    code = FORWARD_INACCURATE if check == "inaccurate" else classify(kind, s, members, ctx.features)
    message = _message(check, low, high, d, plan.dtype, x, fwd, grad,
                       float(s.reference[ex_idx]), extra)
    return Finding(code=code, kind=kind, severity=severity, dtype=ctx.dtype,
                   framework=ctx.framework, example_input=x, forward=fwd, gradient=grad,
                   range=Range(low, high), boundary=boundary, location=ctx.location,
                   message=message)


def _take(s: Sample, idx: npt.NDArray[np.int64]) -> Sample:
    return Sample(s.x[idx], s.forward[idx], None if s.gradient is None else s.gradient[idx],
                  s.reference[idx], s.exact,
                  None if s.grad_reference is None else s.grad_reference[idx])


def _boundary(low: float, high: float, d: DTypeInfo) -> float:
    """The edge of the range that is a threshold, not the end of the dtype."""
    low_end, high_end = abs(low) >= d.max, abs(high) >= d.max
    if low_end and not high_end:
        return high
    if high_end and not low_end:
        return low
    return low if abs(low) <= abs(high) else high


def classify(kind: Kind, s: Sample, members: npt.NDArray[np.int64],
             features: frozenset[str]) -> str:
    """A first cause from the values and the source's shape; `locate` refines it."""
    if kind == "forward":
        nan = np.isnan(s.forward[members]).any()
        return MASK_MULTIPLY if nan and "mask_multiply" in features else FORWARD_OVERFLOW
    if "where" in features:
        return BRANCH_LEAK
    grads = s.gradient[members] if s.gradient is not None else np.array([np.nan])
    if np.isinf(grads).all() and members.size <= 4:
        return INFINITE_DERIVATIVE
    return BACKWARD_OVERFLOW




def _message(check: str, low: float, high: float, d: DTypeInfo, dtype: str, x: float,
             fwd: float, grad: float, ref: float, extra: int) -> str:
    where = describe_range(low, high, d, dtype)
    xs, fs, gs = (display(v, dtype) for v in (x, fwd, grad))
    if check == "inaccurate":
        text = (f"forward is {fs} for {where} in {dtype} where the float64 value is "
                f"{shortest_repr(ref, 'float64')} (at x = {xs}): the result lost its digits")
    elif check == "gradient":
        text = (f"gradient is {nonfinite_name(grad)} for {where} in {dtype} while the forward is "
                f"finite (at x = {xs}: forward {fs}, gradient {gs})")
    else:
        text = (f"forward is {nonfinite_name(fwd)} for {where} in {dtype} where the float64 value "
                f"is {shortest_repr(ref, 'float64')} (at x = {xs})")
        if np.isnan(ref) and np.isfinite(x):  # kept only as a single input, see _forward_runs
            text = (f"forward is {nonfinite_name(fwd)} for {where} in {dtype} (at x = {xs}); "
                    "float64 is NaN there too but finite on both sides: a 0/0 of the formula, "
                    "not a point outside the function's domain")
        if np.isinf(x):
            text = f"forward is {nonfinite_name(fwd)} at x = {xs} in {dtype}"
    if extra:
        text += f"; {extra} more bad ranges not listed"
    return text


__all__ = ["I64", "Context", "Counter", "Probe", "Sample", "analyse", "bad_masks"]
