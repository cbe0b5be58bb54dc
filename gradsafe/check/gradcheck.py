"""Check hand-written gradients against the truth: GS301, GS302, GS303 (worker side).

The hand-written backward (torch.autograd.Function, tf.custom_gradient, jax.custom_vjp /
custom_jvp, NumPy forward/backward layers) is called directly at every probe point of the
dtype's plan, in one batched call, and compared with

* a numeric derivative of the forward evaluated in float64 (central differences with
  Richardson extrapolation; the step is chosen per point, see `numeric_derivative`), and
* the framework's autodiff of the undecorated forward in float64, where it is reachable
  (tf.custom_gradient, jax.custom_vjp/custom_jvp; not through torch's `.apply`).

The rule for GS301 at a point, with tol = sqrt(eps) of the dtype under test (float32:
3.5e-4, float16: 0.031, bfloat16: 0.088, float64: 1.5e-8):

* the point is checked only when the numeric derivative is trustworthy there: every
  stencil value is finite, the forward and the derivative are representable in the dtype,
  the one-sided slopes agree (else it is a kink such as relu at 0, where any subgradient is
  valid), and the Richardson error estimate is below tol/8;
* it disagrees when |g - ref| > tol * max(1, |ref|) + 4 * (error estimate), a NaN/inf
  gradient included, AND it also disagrees with the autodiff reference where one exists
  (so a point is flagged only when every available reference says it is wrong).

The cotangent is not all ones (2 and -0.5 alternate, exact in every dtype), so a backward
that ignores its incoming gradient is caught, and said so.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from gradsafe.backends.base import Backend, TargetError
from gradsafe.backends.custom import Adapter, BackwardCall, BackwardError, get_adapter
from gradsafe.check import function, second
from gradsafe.check.common import resolve, result, target_location
from gradsafe.discover.load import one_line
from gradsafe.model.codes import BACKWARD_CONTRACT, BACKWARD_MUTATES_INPUT, WRONG_CUSTOM_GRADIENT
from gradsafe.model.types import (
    CUSTOM_KINDS,
    DTypeName,
    Finding,
    Location,
    Options,
    Range,
    Severity,
    Target,
    TargetResult,
)
from gradsafe.numerics.floats import F64, display, info, round_to, shortest_repr
from gradsafe.numerics.probes import plan

Bool = npt.NDArray[np.bool_]
Shape = Literal["elementwise", "rowwise", "loss"]
EPS = float(np.finfo(np.float64).eps)
STEP = float(np.cbrt(EPS))  # ~6.1e-6: balances truncation and roundoff
KINK = 1e-3  # one-sided slopes differing by more than this (relative) mark a kink
CLASSES = 5  # logits per row for non-elementwise targets
COTANGENT = np.array([2.0, -0.5])  # powers of two: exact products in every dtype


def tolerance(dtype: str) -> float:
    return float(2.0 ** (-info(dtype).mantissa_bits / 2))


# --- the numeric reference --------------------------------------------------------------

# phi(offsets) -> values: the scalar function of each point, shifted by its own offset
Phi = Callable[[F64], F64]


@dataclass(frozen=True)
class Numeric:
    value: F64  # Richardson-extrapolated central difference
    error: F64  # estimated error of value
    ok: Bool  # the value can be trusted (finite stencil, no kink, small error)
    kink: Bool


def numeric_derivative(phi: Phi, base: F64, tol: float) -> Numeric:
    """Derivative of phi at offset 0 for every point at once.

    Two step families are tried per point: h = STEP * max(1, |x|) (relative; right where the
    function's scale follows x) and h = STEP (absolute; right for exp-like functions at
    large x). Each gives D(h), D(h/2) and their Richardson extrapolation; the family with
    the smaller error estimate |D(h) - D(h/2)| / 3 wins. Steps are made exactly
    representable ((x + h) - x), so the difference quotient divides by the true step.
    """
    with np.errstate(all="ignore"):
        center = phi(np.zeros_like(base))
        best_val = np.full(base.shape, np.nan)
        best_err = np.full(base.shape, np.inf)
        any_kink = np.zeros(base.shape, dtype=bool)
        for scale in (np.maximum(1.0, np.abs(base)), np.ones_like(base)):
            h = STEP * scale
            hp, hm = (base + h) - base, base - (base - h)
            hp2, hm2 = (base + h / 2) - base, base - (base - h / 2)
            fp, fm, fp2, fm2 = phi(hp), phi(-hm), phi(hp2), phi(-hm2)
            d1 = (fp - fm) / (hp + hm)
            d2 = (fp2 - fm2) / (hp2 + hm2)
            value = d2 + (d2 - d1) / 3
            # truncation (the two steps disagree) plus roundoff of the stencil's values
            fmax = np.maximum.reduce([np.abs(center), np.abs(fp), np.abs(fm), np.abs(fp2),
                                      np.abs(fm2)])
            err = np.abs(d2 - d1) / 3 + 2 * EPS * fmax / np.minimum(hp2, hm2)
            slope_gap = np.abs((fp2 - center) / hp2 - (center - fm2) / hm2)
            finite = np.isfinite(center) & np.isfinite(fp) & np.isfinite(fm) & \
                np.isfinite(fp2) & np.isfinite(fm2) & (hp2 > 0) & (hm2 > 0)
            kink = finite & ~(slope_gap <= KINK * np.maximum(1.0, np.abs(value)))
            any_kink |= kink
            valid = finite & ~kink & np.isfinite(value) & np.isfinite(err)
            better = valid & (err < best_err)
            best_val = np.where(better, value, best_val)
            best_err = np.where(better, err, best_err)
        ok = np.isfinite(best_err) & (best_err <= tol / 8 * np.maximum(1.0, np.abs(best_val)))
    return Numeric(best_val, best_err, ok, any_kink & ~ok)


# --- comparison -------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """The hand-written gradient against the references, element by element."""

    x: F64  # input element of each compared entry
    gradient: F64  # hand-written (per unit cotangent for elementwise targets)
    reference: F64  # numeric derivative (or VJP)
    autodiff: F64 | None
    checked: Bool
    bad: Bool
    rel_error: F64

    @property
    def worst(self) -> int:
        """Index of the largest error (NaN/inf gradients count as infinitely wrong)."""
        return int(np.argmax(np.where(self.bad, self.rel_error, -1.0)))


def compare(x: F64, gradient: F64, num: Numeric, autodiff: F64 | None, dtype: str,
            forward64: F64, cotangent_scale: F64) -> Comparison:
    d, tol = info(dtype), tolerance(dtype)
    ref = num.value
    with np.errstate(all="ignore"):
        scale = np.maximum(1.0, np.abs(ref))
        representable = (np.abs(ref * cotangent_scale) <= d.max) & (np.abs(forward64) <= d.max)
        checked = num.ok & representable
        diff = np.abs(gradient - ref)
        rel = np.where(np.isfinite(gradient), diff / scale, np.inf)
        bad = ~(diff <= tol * scale + 4 * num.error)
        if autodiff is not None:
            bad &= ~(np.abs(gradient - autodiff) <= tol * np.maximum(1.0, np.abs(autodiff)))
    return Comparison(x, gradient, ref, autodiff, checked, bad & checked, rel)


# --- target shapes and probe points ------------------------------------------------------


def target_shape(adapter: Adapter) -> Shape:
    """Elementwise, or row-wise over the last axis (softmax), or a loss layer."""
    if adapter.needs_labels:
        return "loss"
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, CLASSES)) * 3
    y = adapter.forward64(x)
    if y.shape != x.shape:
        raise TargetError(f"returned shape {y.shape} for an input of shape {x.shape}; "
                          "custom gradients are checked for elementwise and per-row "
                          "functions, and loss layers forward(x, t)")
    x2 = x.copy()
    x2[:, 0] += 1.0
    y2 = adapter.forward64(x2)
    if np.array_equal(y2[:, 1:], y[:, 1:], equal_nan=True):
        return "elementwise"
    x3 = x.copy()
    x3[0] += 1.0
    if not np.array_equal(adapter.forward64(x3)[1:], y[1:], equal_nan=True):
        raise TargetError("the output of one row depends on other rows; custom gradients "
                          "are checked for elementwise and per-row functions only")
    return "rowwise"


def logit_rows(dtype: str, seed: int) -> F64:
    """Batches of logit vectors that break softmax-like code: all equal, one huge, large
    spreads, values just past the dtype's exp overflow, near-ties, typical ones."""
    d = info(dtype)
    big = float(np.log(d.max))
    huge = min(1e4, d.max / 8)
    rows = [
        [0.0] * CLASSES, [3.0] * CLASSES, [huge] * CLASSES, [-huge] * CLASSES,
        [1000.0, 0, 0, 0, 0], [0, 0, big + 1, 0, 0], [0, 0, 0, 0, -1000.0],
        list(np.linspace(-100, 100, CLASSES)), list(np.linspace(-huge, huge, CLASSES)),
        [big, -big, 0, big / 2, -big / 2], [1.0, 1.001, 0.999, 1.0, 1.0],
        [1e-3, -2e-3, 0, 5e-4, 1e-4],
    ]
    rng = np.random.default_rng(seed)
    typical = rng.standard_normal((9, CLASSES)) * np.array([1, 1, 1, 3, 3, 10, 10, 30, 30])[:, None]
    out = np.concatenate([np.array(rows, dtype=np.float64), typical])
    return round_to(out, dtype).reshape(out.shape)


def one_hot(rows: int, seed: int) -> F64:
    labels = np.random.default_rng(seed + 1).integers(0, CLASSES, rows)
    return np.eye(CLASSES)[labels]


# --- one dtype ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Ctx:
    target: Target
    framework: str
    dtype: DTypeName
    location: Location | None
    operating_range: float
    user_file: str | None


def _finding(ctx: Ctx, code: str, severity: Severity, x: float, fwd: float, grad: float,
             low: float, high: float, message: str) -> Finding:
    return Finding(code=code, kind="gradient", severity=severity, dtype=ctx.dtype,
                   framework=ctx.framework, example_input=x, forward=fwd, gradient=grad,
                   range=Range(low, high), boundary=x, location=ctx.location, message=message)


def _readable(x: F64, candidates: npt.NDArray[np.intp]) -> int:
    """A short example among candidate indices: the smallest non-zero integer if any."""
    xs = x[candidates]
    whole = np.flatnonzero((xs == np.round(xs)) & (xs != 0) & (np.abs(xs) <= 1e4))
    if whole.size:
        return int(candidates[whole[np.argmin(np.abs(xs[whole]))]])
    return int(candidates[0])


def _contract_findings(ctx: Ctx, call: BackwardCall, x: F64, incoming: F64) -> list[Finding]:
    out: list[Finding] = []
    flat_x, fwd = x.ravel(), call.forward.ravel()
    grad = call.gradient.ravel() if call.gradient is not None else None
    if grad is not None and incoming.size == grad.size:
        grad = grad / incoming.ravel()  # per unit cotangent, as GS301 reports it

    def at(i: int) -> tuple[float, float, float]:
        f = float(fwd[i]) if fwd.size == flat_x.size else float(fwd[0])
        g = float(grad[i]) if grad is not None else float("nan")
        return float(flat_x[i]), f, g

    before = incoming.ravel()
    after = call.incoming_after.ravel() if call.incoming_after is not None else before
    changed = np.flatnonzero(~((before == after) | (np.isnan(before) & np.isnan(after))))
    if changed.size:
        j = _readable(flat_x, changed)
        xj, fj, gj = at(j)
        out.append(_finding(
            ctx, BACKWARD_MUTATES_INPUT, "error", xj, fj, gj, float(flat_x[changed].min()),
            float(flat_x[changed].max()),
            f"backward changes its incoming gradient in place in {ctx.dtype}: "
            f"{changed.size} of {before.size} elements were overwritten (at x = "
            f"{display(xj, ctx.dtype)} it was {display(float(before[j]), ctx.dtype)} and is "
            f"{display(float(after[j]), ctx.dtype)} afterwards); copy it first "
            "(dx = dout.copy()) or use out-of-place ops"))
    i = int(np.argmin(np.abs(flat_x - 1.0)))
    xi, fi, gi = at(i)
    if call.problem:
        out.append(_finding(ctx, BACKWARD_CONTRACT, "error", xi, fi, gi, xi, xi,
                            f"{call.problem} in {ctx.dtype}"))
    elif call.grad_dtype is not None and call.grad_dtype != ctx.dtype:
        out.append(_finding(ctx, BACKWARD_CONTRACT, "warning", xi, fi, gi, xi, xi,
                            f"backward returned a {call.grad_dtype} gradient for a "
                            f"{ctx.dtype} input"))
    return out


def _before_forward(ctx: Ctx, adapter: Adapter, x: F64, v: F64) -> list[Finding]:
    exc = adapter.before_forward(x, v, ctx.dtype)
    if exc is None or "forward" in str(exc).lower():
        return []
    x0 = float(x.ravel()[int(np.argmin(np.abs(x.ravel() - 1.0)))])
    return [_finding(ctx, BACKWARD_CONTRACT, "warning", x0, float("nan"), float("nan"), x0, x0,
                     f"backward needs forward to run first and does not say so: on a new "
                     f"object it raises {one_line(exc, ctx.user_file)}; raise a clear error "
                     "(\"call forward() before backward()\") instead")]


def _diagnosis(cmp: Comparison, raw: F64 | None, tol: float) -> str:
    """Why it is wrong, when the flagged points share a simple pattern."""
    bad = cmp.bad
    g, ref = cmp.gradient[bad], cmp.reference[bad]
    if not np.isfinite(g).any():
        if np.isnan(g).all() and np.all(np.abs(cmp.x[bad]) < 1):
            # exp(-1/x) / (x * x) for tiny x: numerator and denominator both underflow
            return ("; the backward is NaN where the derivative is finite (a 0/0 inside the "
                    "backward formula: its intermediates underflow to 0 at these small inputs)")
        return ("; the backward is NaN/inf where the derivative is finite (an overflow "
                "inside the backward formula)")
    if raw is not None:
        r = raw[bad]
        if np.all(np.abs(r - ref) <= 1e-2 * np.maximum(1.0, np.abs(ref))):
            return ("; it ignores its incoming gradient (returns the derivative instead of "
                    "the incoming gradient times it)")
    nz = np.isfinite(g) & (np.abs(ref) > 1e-6)
    if nz.sum() >= 2:
        ratio = g[nz] / ref[nz]
        k = float(np.median(ratio))
        spread = max(1e-2, 2 * tol) * max(1.0, abs(k))  # 16-bit gradients are coarse
        if abs(k - 1) > spread and np.mean(np.abs(ratio - k) <= spread) >= 0.9:
            if abs(k + 1) <= spread:
                return "; it has the wrong sign"
            return f"; it is off by a constant factor of {k:.4g}"
    return ""


def _gs301(ctx: Ctx, cmp: Comparison, fwd: F64, raw: F64 | None, context: str) -> Finding:
    i = cmp.worst
    bad = cmp.bad
    xs = cmp.x[bad]
    n, m = int(bad.sum()), int(cmp.checked.sum())
    d = ctx.dtype
    x = float(cmp.x[i])
    g, ref = float(cmp.gradient[i]), float(cmp.reference[i])
    ad = "" if cmp.autodiff is None else \
        f", autodiff of the forward {shortest_repr(float(cmp.autodiff[i]), 'float64')}"
    rel = cmp.rel_error[i]
    err = "inf" if not np.isfinite(rel) else f"{rel:.3g}"
    r = ctx.operating_range
    severity: Severity = "error" if np.any(np.abs(xs) <= r) else "warning"
    msg = (f"hand-written gradient disagrees with the derivative at {n} of {m} checked "
           f"points in {d}; largest error at x = {display(x, d)}{context}: backward gives "
           f"{display(g, d)}, numeric derivative {shortest_repr(ref, 'float64')}{ad} "
           f"(relative error {err}){_diagnosis(cmp, raw, tolerance(d))}")
    return _finding(ctx, WRONG_CUSTOM_GRADIENT, severity, x, float(fwd[i]), g, float(xs.min()),
                    float(xs.max()), msg)


def _note(ctx: Ctx, cmp: Comparison, kinks: int, what: str) -> str:
    ref = "numeric derivative" + (" and autodiff of the forward" if cmp.autodiff is not None
                                  else "")
    skipped = cmp.x.size - int(cmp.checked.sum())
    return (f"{ctx.dtype}: hand-written gradient compared with the float64 {ref} at "
            f"{int(cmp.checked.sum())} {what}; {skipped} skipped ({kinks} kinks, the rest "
            "overflow or an unreliable numeric derivative)")


@dataclass(frozen=True)
class PointCheck:
    call: BackwardCall
    cotangent: F64
    numeric: Numeric | None  # None when the backward broke its contract
    comparison: Comparison | None


def check_points(adapter: Adapter, x: F64, dtype: str) -> PointCheck:
    """An elementwise target at every point of x: one batched backward call, one batched
    stencil of forward calls in float64, one autodiff call (the public entry point the
    benchmark times)."""
    x = round_to(np.asarray(x, dtype=np.float64), dtype)  # compare at the values evaluated
    v = np.resize(COTANGENT, x.size)
    call = adapter.backward(x, v.copy(), dtype)
    if call.gradient is None:
        return PointCheck(call, v, None, None)
    num = numeric_derivative(lambda t: adapter.forward64(x + t), x, tolerance(dtype))
    f64 = adapter.forward64(x)
    autodiff = adapter.autodiff64(x, np.ones_like(x))
    cmp = compare(x, call.gradient / v, num, autodiff, dtype, f64, np.abs(v))
    return PointCheck(call, v, num, cmp)


def check_elementwise(adapter: Adapter, ctx: Ctx, x: F64) -> tuple[list[Finding], str | None]:
    pc = check_points(adapter, x, ctx.dtype)
    findings = _contract_findings(ctx, pc.call, x, pc.cotangent)
    findings += _before_forward(ctx, adapter, x, pc.cotangent)
    if pc.comparison is None or pc.numeric is None:
        return findings, None
    if pc.comparison.bad.any():
        findings.append(_gs301(ctx, pc.comparison, pc.call.forward, pc.call.gradient, ""))
    return findings, _note(ctx, pc.comparison, int(pc.numeric.kink.sum()), "points")


def check_rowwise(adapter: Adapter, ctx: Ctx, rows: F64, seed: int) -> tuple[list[Finding],
                                                                               str | None]:
    """Per-row functions (softmax): VJPs with explicit cotangents, every row at once.

    phi for element (b, j) is <V_b, f(X + t e_j)_b>; all C shifted copies of the batch go
    through the forward as one stacked batch, so no loop runs over points.
    """
    b, c = rows.shape
    v = round_to(np.random.default_rng(seed + 2).standard_normal((b, c)), ctx.dtype)
    v = v.reshape(b, c)
    call = adapter.backward(rows, v.copy(), ctx.dtype)
    findings = _contract_findings(ctx, call, rows, v)
    findings += _before_forward(ctx, adapter, rows, v)
    if call.gradient is None:
        return findings, None
    eye = np.eye(c)

    def phi(t: F64) -> F64:
        # block j: the batch with column j shifted by t[:, j]
        stacked = rows[None, :, :] + t.T[:, :, None] * eye[:, None, :]
        y = adapter.forward64(stacked.reshape(c * b, c)).reshape(c, b, c)
        return np.asarray(np.einsum("jbk,bk->bj", y, v), dtype=np.float64)

    num = numeric_derivative(phi, rows, tolerance(ctx.dtype))
    f64 = adapter.forward64(rows)
    autodiff = adapter.autodiff64(rows, v)
    cmp = compare(rows.ravel(), call.gradient.ravel(), _flat(num), None if autodiff is None
                  else autodiff.ravel(), ctx.dtype, f64.ravel(), np.ones(rows.size))
    if cmp.bad.any():
        row = cmp.worst // c
        context = (f" (element {cmp.worst % c} of logits "
                   f"[{', '.join(display(float(z), ctx.dtype) for z in rows[row])}])")
        findings.append(_gs301(ctx, cmp, call.forward.ravel(), None, context))
    return findings, _note(ctx, cmp, int(num.kink.sum()), "logits")


def check_loss(adapter: Adapter, ctx: Ctx, rows: F64, seed: int) -> tuple[list[Finding],
                                                                           str | None]:
    """Loss layers forward(x, t) -> scalar, with one-hot labels, in batches of 3 rows.

    A scalar loss sums over its batch, so each element's derivative needs its own forward
    call: the loop runs over the elements of a small fixed set of logit batches.
    """
    per = 3
    n = rows.shape[0] // per * per
    batches = rows[:n].reshape(-1, per, CLASSES)
    labels = one_hot(n, seed).reshape(-1, per, CLASSES)
    findings: list[Finding] = []
    grads, refs, errs, oks, kinks, losses, xs = [], [], [], [], [], [], []
    for i, (xb, tb) in enumerate(zip(batches, labels, strict=True)):
        call = adapter.backward(xb, np.ones(()), ctx.dtype, tb)
        if i == 0 or call.problem:  # the contract once, or where it first breaks
            findings += _contract_findings(ctx, call, xb, np.ones(()))
        if i == 0:
            findings += _before_forward(ctx, adapter, xb, np.ones(()))
        if call.gradient is None:
            return findings, None

        def phi(t: F64, xb: F64 = xb, tb: F64 = tb) -> F64:
            out = np.empty(xb.size)
            for k in range(xb.size):
                shifted = xb.ravel().copy()
                shifted[k] += t.ravel()[k]
                out[k] = float(adapter.forward64(shifted.reshape(xb.shape), tb))
            return out.reshape(xb.shape)

        num = numeric_derivative(phi, xb, tolerance(ctx.dtype))
        grads.append(call.gradient.ravel())
        refs.append(num.value.ravel())
        errs.append(num.error.ravel())
        oks.append(num.ok.ravel())
        kinks.append(num.kink.ravel())
        losses.append(np.full(xb.size, float(np.asarray(call.forward).ravel()[0])))
        xs.append(xb.ravel())
    num = Numeric(np.concatenate(refs), np.concatenate(errs), np.concatenate(oks),
                  np.concatenate(kinks))
    x = np.concatenate(xs)
    loss = np.concatenate(losses)
    cmp = compare(x, np.concatenate(grads), num, None, ctx.dtype, loss, np.ones(x.size))
    if cmp.bad.any():
        k = cmp.worst
        flat = batches.reshape(-1, CLASSES)
        row = k // CLASSES
        label = int(np.argmax(labels.reshape(-1, CLASSES)[row]))
        context = (f" (element {k % CLASSES} of logits "
                   f"[{', '.join(display(float(z), ctx.dtype) for z in flat[row])}], "
                   f"label {label}, batch of {per})")
        findings.append(_gs301(ctx, cmp, loss, None, context))
    return findings, _note(ctx, cmp, int(num.kink.sum()), "logits")


def _flat(num: Numeric) -> Numeric:
    return Numeric(num.value.ravel(), num.error.ravel(), num.ok.ravel(), num.kink.ravel())


# --- the target --------------------------------------------------------------------------


def rule_location(fn: Any, target: Target) -> Location | None:
    """Where the hand-written backward is defined, when it is in the target's file."""
    try:
        code = inspect.unwrap(fn).__code__
    except (AttributeError, ValueError):
        return None
    if target.file is None or os.path.realpath(code.co_filename) != \
            os.path.realpath(target.file):
        return None
    lines = Path(target.file).read_text(encoding="utf-8").splitlines()
    name = code.co_name
    pattern = re.compile(rf"\s*(async\s+)?def\s+{re.escape(name)}\b")
    for i in range(code.co_firstlineno - 1, min(len(lines), code.co_firstlineno + 30)):
        if pattern.match(lines[i]):
            col = lines[i].index(name) + 1
            return Location(target.file, i + 1, col, i + 1, col + len(name))
    return None


def check_dtype(adapter: Adapter, shape: Shape, ctx: Ctx,
                options: Options) -> tuple[list[Finding], str | None]:
    try:
        if shape == "elementwise":
            probes = plan(ctx.dtype, ctx.target.constants, options.operating_range,
                          options.seed).values
            return check_elementwise(adapter, ctx, probes[np.isfinite(probes)])
        rows = logit_rows(ctx.dtype, options.seed)
        if shape == "rowwise":
            return check_rowwise(adapter, ctx, rows, options.seed)
        return check_loss(adapter, ctx, rows, options.seed)
    except BackwardError as exc:
        cause = exc.__cause__ or exc
        return [_finding(ctx, BACKWARD_CONTRACT, "error", 1.0, float("nan"), float("nan"), 1.0, 1.0,
                         f"backward raised {one_line(cause, ctx.user_file)} in "
                         f"{ctx.dtype}")], None


def check_custom(backend: Backend, target: Target, options: Options) -> TargetResult:
    obj = resolve(target)
    adapter = get_adapter(backend.name, obj, target.kind)
    user = os.path.realpath(target.file) if target.file else None
    location = rule_location(adapter.rule(), target) or target_location(target)
    shape = target_shape(adapter)
    findings: list[Finding] = []
    notes: list[str] = []
    for dtype in options.dtypes:
        if dtype not in adapter.dtypes:
            notes.append(f"{dtype}: skipped ({backend.name} has no {dtype})")
            continue
        ctx = Ctx(target, backend.name, dtype, location, options.operating_range, user)
        found, note = check_dtype(adapter, shape, ctx, options)
        findings += found
        if note:
            notes.append(note)
    broken = any(f.code == BACKWARD_CONTRACT and f.severity == "error" for f in findings)
    if shape == "elementwise" and backend.name != "numpy" and not broken:
        # the usual NaN/inf sweep through the framework, which runs the custom backward
        try:  # order 2 of a hand-written gradient: second.check_custom below
            swept = function.check(backend, target, dataclasses.replace(options, order=1))
            findings += swept.findings
            notes += swept.notes
        except Exception as exc:
            notes.append(f"NaN/inf sweep not run: {one_line(exc, user)}")
    if options.order == 2:
        more, extra = second.check_custom(backend, target, obj, options, location,
                                          shape == "elementwise")
        findings += more
        notes += extra
    return result(target, backend.name, tuple(findings), tuple(notes), options)


def is_custom(target: Target) -> bool:
    return target.kind in CUSTOM_KINDS
