"""Check one configuration of a class (worker side): constructor values, mode, seed, layout.

On top of the input sweep of `sweep.py` it reports
- GS502 degenerate-parameter: the configuration is non-finite for (almost) every input;
- GS501 parameter-gradient: the gradient of a learnable parameter is non-finite.

A parameter's gradient is a sum over the batch, so it cannot be read per input from one
backward pass. The probes are tested in blocks instead: a block's values are tiled over a
full-width vector, one backward with a cotangent of 2**-k gives each parameter's summed
gradient, and a block is bad when that sum is non-finite (the scale keeps a sum of finite
terms finite, so only a non-finite term makes it so). Runs of bad blocks become ranges; the
first and last bad probe are found by binary search over block prefixes and suffixes, and
the exact boundary by bisection on the float lattice with single values tiled over a vector.
"""

from __future__ import annotations

import ast
import dataclasses
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from gradsafe.backends.base import (
    ROWS,
    WIDTH,
    Backend,
    Instance,
    TargetError,
    cotangent_scale,
)
from gradsafe.backends.derivative import derivative
from gradsafe.check import cast, rows, second
from gradsafe.check.analyse import Context, Counter, Sample, analyse
from gradsafe.check.common import (
    explain,
    grad_reference,
    no_gradient,
    qualifying,
    require_elementwise,
    require_float,
    resolve,
    result,
    target_location,
)
from gradsafe.check.exhaustive import Tick, probe_plan
from gradsafe.model.codes import DEGENERATE_PARAMETER, PARAMETER_GRADIENT
from gradsafe.model.types import (
    DTypeName,
    Finding,
    Kind,
    Location,
    Options,
    Range,
    Severity,
    Target,
    TargetKind,
    TargetResult,
    Variant,
)
from gradsafe.numerics.examples import readable, readable_order
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
from gradsafe.numerics.runs import runs

DEGENERATE = 0.99  # share of finite inputs in the operating range that must be non-finite
BLOCK = 512
MAX_RANGES = 8
EXAMPLES = 8  # readable candidates tried for the example input of a GS501 range


class LayoutSampler:
    """Evaluates an instance in one dtype (vectors sized for its layout), with the
    float64 reference where the forward is non-finite."""

    def __init__(self, backend: Backend, inst: Instance, inst64: Instance,
                 dtype: DTypeName, exact: bool = False) -> None:
        self.backend, self.inst, self.inst64, self.dtype = backend, inst, inst64, dtype
        self.exact = exact and dtype != "float64"

    def __call__(self, xs: F64) -> Sample:
        ev = self.backend.evaluate(self.inst.fn, xs, self.dtype, multiple=self.inst.multiple)
        if self.dtype == "float64":
            return Sample(xs, ev.forward, ev.gradient, ev.forward.copy())
        g64 = grad_reference(self.backend, self.inst64.fn, xs, ev.forward, ev.gradient,
                             self.inst64.multiple)
        if self.exact:
            ref = self.backend.evaluate(self.inst64.fn, xs, "float64", grad=False,
                                        multiple=self.inst64.multiple).forward
            return Sample(xs, ev.forward, ev.gradient, ref, exact=True, grad_reference=g64)
        ref = ev.forward.copy()
        bad = ~np.isfinite(ref)
        if bad.any():
            ref[bad] = self.backend.evaluate(self.inst64.fn, xs[bad], "float64", grad=False,
                                             multiple=self.inst64.multiple).forward
        return Sample(xs, ev.forward, ev.gradient, ref, grad_reference=g64)


def check_variant(backend: Backend, target: Target, options: Options,
                  counter: Counter | None = None, tick: Tick | None = None,
                  seen: dict[str, tuple[F64, F64, F64 | None]] | None = None
                  ) -> TargetResult:
    v = target.variant
    assert v is not None
    obj = resolve(target, backend)
    location = target_location(target) if target.kind != TargetKind.BUILTIN else None
    findings: list[Finding] = []
    notes: list[str] = []
    constants = tuple(sorted({*target.constants, *(
        abs(float(x)) for _, x in v.params if x and np.isfinite(float(x)))}))
    try:
        with qualifying(target) if v.params == v.defaults else nullcontext():
            inst64 = backend.build(obj, target.kind, "float64", v)
            if v.seed is None:  # a random mode draws anew for each call: it would look mixed
                if v.layout == "N" and not rows.elementwise(backend, inst64.fn,
                                                            inst64.multiple):
                    return _row_wise(backend, target, options, obj, counter, tick, seen)
                require_elementwise(backend, inst64.fn, inst64.multiple)
                if not target.explicit:  # named: no gradient is a GS104 finding instead
                    require_float(backend, inst64.fn, inst64.multiple)
        for dtype in options.dtypes:
            try:
                inst = backend.build(obj, target.kind, dtype, v)
                # lost digits (GS203) are judged against the float64 build only when both
                # builds compute the same thing: no random draws, no weights of their own
                # (a random initializer draws other values in float64)
                sampler = LayoutSampler(backend, inst, inst64, dtype,
                                        exact=v.seed is None and inst.param_grad is None)
                probes, swept = probe_plan(backend, inst.fn, dtype, constants, options,
                                           tick, inst.multiple)
                if swept:
                    notes.append(swept)
                sample = sampler(probes.values)
                if seen is not None:  # forward values, for verifying a suggestion
                    seen[dtype] = (probes.values, sample.forward,
                                   sample.reference if sample.exact else None)
            except Exception as exc:
                if not _unsupported(exc):
                    raise
                notes.append(f"{dtype}: not checked: the framework has no {dtype} kernel "
                             f"here ({one_line_error(exc)})")
                continue
            if inst.note:
                notes.append(f"{dtype}: {inst.note}")
            if sample.gradient is None:
                findings.append(no_gradient(target, backend.name, dtype, location))
                continue
            ctx = Context(dtype, backend.name, options.operating_range, location,
                          target.features)
            if v.grid and outside_domain(sample, options.operating_range):
                notes.append(f"{dtype}: {changed(v)} is outside the parameter's domain: the "
                             "float64 forward is NaN for every finite input in the operating "
                             "range (a value of gradsafe's automatic grid; nothing reported)")
                continue
            if target.params:
                degenerate = degenerate_finding(sample, ctx, v)
                if degenerate is not None:
                    findings.append(degenerate)
                    continue
            findings.extend(analyse(probes, sample, sampler, ctx, counter, notes))
            if inst.param_grad is not None:
                findings.extend(param_findings(probes, sample, inst, ctx, inst64, notes))
    except Exception as exc:
        if v.params == v.defaults:
            raise
        note = rejected(target.name, changed(v), one_line_error(exc))
        res = result(target, backend.name, (), (note,), options)
        return dataclasses.replace(res, name=v.label, variant=v)
    def make(o: Any, dt: str) -> tuple[Any, int]:
        inst = backend.build(o, target.kind, dt, v)
        return inst.fn, inst.multiple

    findings = explain(backend, target, obj, findings, make)
    findings = cast.attribute(backend, target, obj, findings, notes, v)
    if options.order == 2:  # f'' of this configuration (see second.py)
        more, extra = second.check_order2(backend, target, lambda dt: make(obj, dt), options,
                                          location, counter, tick, constants)
        findings += second.explain2(backend, target, obj, more, make)
        mixed, extra_mixed = check_mixed(backend, target, obj, v, options, location,
                                                constants)
        findings += mixed
        notes += extra + extra_mixed
    if v.grid:  # values the automatic grid chose: warnings at most, naming the value
        findings = [at_grid_value(f, v) for f in findings]
    if v.mode or v.seed is not None:
        findings = [dataclasses.replace(f, message=f.message + reproduce(v)) for f in findings]
    res = result(target, backend.name, tuple(findings), tuple(notes), options)
    return dataclasses.replace(res, name=v.label, variant=v)


def _row_wise(backend: Backend, target: Target, options: Options, obj: Any,
              counter: Counter | None, tick: Tick | None,
              seen: dict[str, tuple[F64, F64, F64 | None]] | None) -> TargetResult:
    """A row-wise class (nn.Softmax, a Keras Softmax layer): this configuration built in
    rows of rows.ROW and checked like a row-wise function, its learnable parameters'
    gradients (GS501) in the same rows."""
    v = target.variant
    assert v is not None
    in_rows = dataclasses.replace(v, layout=ROWS, channels=rows.ROW)

    def make(o: Any, dtype: str) -> tuple[Any, str | None]:
        inst = backend.build(o, target.kind, dtype, in_rows)
        return inst.fn, inst.note

    res = rows.check_rows(backend, target, options, obj, counter, tick, seen,
                          builder=make)
    more, extra = _row_params(backend, target, options, obj, in_rows, tick)
    findings = [*res.findings, *more]
    res = dataclasses.replace(res, notes=(*res.notes, *extra))
    if v.grid:
        findings = [at_grid_value(f, v) for f in findings]
    if v.mode:
        findings = [dataclasses.replace(f, message=f.message + reproduce(v)) for f in findings]
    notes = (*res.notes, second.NOT_ELEMENTWISE) if options.order == 2 else res.notes
    res = result(target, backend.name, tuple(findings), notes, options)
    return dataclasses.replace(res, name=v.label, variant=v)


def _row_params(backend: Backend, target: Target, options: Options, obj: Any,
                in_rows: Variant, tick: Tick | None) -> tuple[list[Finding], list[str]]:
    """GS501 of a row-wise class: in each of the rows rows.check_rows sweeps (one element
    swept, the others at an anchor), the parameters' gradients probed as param_findings
    does for an elementwise class, the rows built in NumPy for param_grad."""
    inst64 = backend.build(obj, target.kind, "float64", in_rows)
    if inst64.param_grad is None:
        return [], []
    location = target_location(target)
    findings: list[Finding] = []
    notes: list[str] = []
    keys: set[tuple[Any, ...]] = set()
    for dtype in options.dtypes:
        inst = backend.build(obj, target.kind, dtype, in_rows)
        if inst.param_grad is None:
            continue
        ctx = Context(dtype, backend.name, options.operating_range, location, target.features)
        for position in (0, rows.ROW - 1):
            for anchor in rows.ANCHORS:
                one = _one_row(backend, inst, position, anchor)
                one64 = _one_row(backend, inst64, position, anchor)
                probes, _ = probe_plan(backend, one.fn, dtype, target.constants, options, tick)
                ev = backend.evaluate(one.fn, probes.values, dtype)
                ref = backend.evaluate(one64.fn, probes.values, "float64", grad=False).forward
                sample = Sample(probes.values, ev.forward, ev.gradient, ref)
                for f in param_findings(probes, sample, one, ctx, one64, notes):
                    key = (f.dtype, f.range, f.message.split(" is ")[0])
                    if key not in keys:
                        keys.add(key)
                        findings.append(rows.in_row(f, position, anchor))
    return findings, notes


def _one_row(backend: Backend, inst: Instance, position: int, anchor: rows.Anchor
             ) -> Instance:
    """The instance as a function of the element swept in rows with that anchor."""
    grad = inst.param_grad
    assert grad is not None

    def param_grad(xs: F64) -> dict[str, F64]:
        return grad(rows.numpy_rows(xs, position, anchor).ravel())

    return dataclasses.replace(inst, fn=rows.derive(backend, inst.fn, position, anchor),
                               param_grad=param_grad, multiple=WIDTH, mixed_grad=None)


def outside_domain(s: Sample, operating_range: float) -> bool:
    """The float64 forward is NaN at every finite input in the operating range."""
    with np.errstate(invalid="ignore"):
        inside = np.isfinite(s.x) & (np.abs(s.x) <= operating_range)
    return bool(inside.any()) and bool(np.isnan(s.reference[inside]).all())


def at_grid_value(f: Finding, v: Variant) -> Finding:
    """A finding at a value the user did not ask for: a warning at most, naming the value."""
    values = dict(v.params)
    return at_grid(f, ", ".join(f"{k}={_fmt(values[k])}" for k in v.grid))


def at_grid(f: Finding, which: str) -> Finding:
    """at_grid_value for `which` ("radius=0.0"): a function's keyword, or a constructor's."""
    severity: Severity = "warning" if f.severity == "error" else f.severity
    return dataclasses.replace(f, severity=severity, message=(
        f"{f.message} [at {which}, a value of gradsafe's automatic grid, not one you chose: "
        "a warning at most; pass --param to check it as an error]"))


def _unsupported(exc: Exception) -> bool:
    """A framework kernel missing for one dtype (torch: rrelu "not implemented for 'Half'")."""
    return "not implemented for" in str(exc)


def rejected(name: str, which: str, why: str) -> str:
    """The note for a value of the grid (or of --param) that the target rejects."""
    return f"not checked: {name} rejects {which} ({why})"


def one_line_error(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def reproduce(v: Variant) -> str:
    parts = ([f"mode={v.mode}"] if v.mode else []) + (
        [f"seed={v.seed}"] if v.seed is not None else [])
    return f" [reproduce with {', '.join(parts)}]"


def changed(v: Variant) -> str:
    """The constructor values that differ from the defaults, for messages."""
    defaults = dict(v.defaults)
    diff = [f"{k}={_fmt(x)} (default {_fmt(defaults[k])})" for k, x in v.params
            if k in defaults and (x != defaults[k] or type(x) is not type(defaults[k]))]
    return ", ".join(diff) if diff else "the default arguments"


def _fmt(x: Any) -> str:
    return str(x) if isinstance(x, int) else repr(float(x))


def degenerate_finding(s: Sample, ctx: Context, v: Variant) -> Finding | None:
    """GS502 when (almost) every finite input in the operating range gives a non-finite
    forward or gradient: the constructor values, not an input region, are the problem."""
    d = info(ctx.dtype)
    with np.errstate(invalid="ignore"):
        inside = np.isfinite(s.x) & (np.abs(s.x) <= ctx.operating_range)
    total = int(inside.sum())
    if total < 16 or s.gradient is None:
        return None
    fwd_bad = inside & ~np.isfinite(s.forward)
    grad_bad = inside & np.isfinite(s.forward) & ~np.isfinite(s.gradient)
    bad = fwd_bad | grad_bad
    share = bad.sum() / total
    if share < DEGENERATE:
        return None
    kind: Kind = "forward" if fwd_bad.sum() >= grad_bad.sum() else "gradient"
    if kind == "gradient" and selects_on(ctx.location, v):
        # the code already selects on the parameter (`where(beta != 0, f(x) / beta, g(x))`):
        # at beta = 0 the forward is finite and the gradient leaks the discarded 0/0, a cause
        # like any other (GS101, fixed by the double where on beta): analyse classifies it
        return None
    members = np.flatnonzero(fwd_bad if kind == "forward" else grad_bad)
    i = int(members[readable(s.x[members], ctx.dtype)])
    x, fwd, grad = float(s.x[i]), float(s.forward[i]), float(s.gradient[i])
    what = nonfinite_name(fwd if kind == "forward" else grad)
    msg = (f"{kind} is {what} for {100 * share:.1f}% of the finite inputs with |x| <= "
           f"{ctx.operating_range:g} in {ctx.dtype}: {changed(v)} makes the function "
           f"degenerate (at x = {display(x, ctx.dtype)}: forward {display(fwd, ctx.dtype)}, "
           f"gradient {display(grad, ctx.dtype)})")
    return Finding(code=DEGENERATE_PARAMETER, kind=kind, severity="error", dtype=ctx.dtype,
                   framework=ctx.framework, example_input=x, forward=fwd, gradient=grad,
                   range=Range(-d.max, d.max), boundary=x, location=ctx.location, message=msg)


def selects_on(location: Location | None, v: Variant) -> bool:
    """Does the class's source hold a where whose condition reads a constructor parameter
    and not the input (`where(self.beta != 0, ...)`, not SmeLU's `x <= -beta`)?"""
    if location is None:
        return False
    params = {k for k, _ in v.params}
    try:
        source = Path(location.file).read_text(encoding="utf-8")
        tree = ast.parse(source)
    except (OSError, SyntaxError, ValueError):
        return False
    cls = next((n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)
                and n.lineno <= location.line <= (n.end_lineno or n.lineno)), None)
    if cls is None:
        return False
    for fn in (n for n in cls.body if isinstance(n, ast.FunctionDef)
               and n.name in ("forward", "call", "__call__")):
        inputs = {a.arg for a in fn.args.args[1:2]}
        for call in (n for n in ast.walk(fn) if isinstance(n, ast.Call) and n.args):
            name = call.func.attr if isinstance(call.func, ast.Attribute) else \
                call.func.id if isinstance(call.func, ast.Name) else ""
            if name != "where":
                continue
            read = {n.attr for n in ast.walk(call.args[0]) if isinstance(n, ast.Attribute)} \
                | {n.id for n in ast.walk(call.args[0]) if isinstance(n, ast.Name)}
            if read & params and not read & inputs:
                return True
    return False


class _ParamProbe:
    """Summed parameter gradients of values tiled over a full-width vector."""

    def __init__(self, inst: Instance) -> None:
        assert inst.param_grad is not None
        self.grad, self.multiple = inst.param_grad, inst.multiple
        self.names = list(inst.param_names)

    def values(self, xs: F64) -> dict[str, F64]:
        n = max(self.multiple, -(-xs.size // self.multiple) * self.multiple)
        return self.grad(np.resize(xs, n))

    def bad(self, xs: F64, name: str) -> bool:
        return not bool(np.isfinite(self.values(xs)[name]).all())


def param_findings(p: ProbePlan, s: Sample, inst: Instance, ctx: Context,
                   inst64: Instance | None = None,
                   notes: list[str] | None = None) -> list[Finding]:
    """GS501 ranges, under the float64 rule: inputs where the float64 forward is NaN are
    outside the domain and not probed; a range whose parameter gradient is inf only because
    the true one exceeds the dtype's max (checked in float64 at its ends and example) is an
    honest overflow, said in a note."""
    probe = _ParamProbe(inst)
    d = info(ctx.dtype)
    with np.errstate(invalid="ignore"):
        inside = ~(np.isnan(s.reference) & np.isfinite(s.x))
    idx = np.flatnonzero(np.isfinite(p.values) & np.isfinite(s.forward) & inside)
    if idx.size == 0:
        return []
    blocks = [idx[i:i + BLOCK] for i in range(0, idx.size, BLOCK)]
    flags: dict[str, list[bool]] = {n: [] for n in inst.param_names}
    for b in blocks:
        grads = probe.values(p.values[b])
        for n in inst.param_names:
            flags[n].append(not bool(np.isfinite(grads[n]).all()))
    findings: list[Finding] = []
    for name in inst.param_names:
        found = runs(flags[name])
        for r, (b0, b1) in enumerate(found[:MAX_RANGES]):
            first = _first_bad(probe, p.values[blocks[b0]], name)
            last = _last_bad(probe, p.values[blocks[b1]], name)
            pos_lo = b0 * BLOCK + first  # positions in idx
            pos_hi = b1 * BLOCK + last
            lo_key = _refine(probe, p, idx, pos_lo, -1, name, d)
            hi_key = _refine(probe, p, idx, pos_hi, +1, name, d)
            extra = len(found) - MAX_RANGES if r == MAX_RANGES - 1 else 0
            f = _finding(probe, p, s, idx[pos_lo:pos_hi + 1], lo_key, hi_key, name, ctx, d,
                         extra)
            true = _honest(probe, inst64, (f.range.low, f.range.high, f.example_input),
                           name, d)
            if true is None:
                findings.append(f)
            elif notes is not None:
                notes.append(
                    f"{ctx.dtype}: the gradient of parameter '{name}' is inf for "
                    f"{describe_range(f.range.low, f.range.high, d, ctx.dtype)} where the true "
                    f"one exceeds the largest {ctx.dtype} (about {true:.3g} at x = "
                    f"{display(f.example_input, ctx.dtype)} in float64): an honest overflow, "
                    "not a finding")
    return findings


def _honest(probe: _ParamProbe, inst64: Instance | None, xs: tuple[float, ...], name: str,
            d: DTypeInfo) -> float | None:
    """The float64 parameter gradient at the example when, at every x of xs, the dtype's is
    +-inf and the float64 one finite beyond the dtype's max; else None.

    The probe sums a tile of n copies with a cotangent 2**-k, so the float64 sum / (n 2**-k)
    is the gradient of one input, or less for per-channel parameters, which see fewer terms:
    what exceeds the max here exceeds it truly."""
    if inst64 is None or inst64.param_grad is None:
        return None
    n = probe.multiple
    per_input = n * cotangent_scale(n)
    true = float("nan")
    for x in xs:
        xv = np.array([x])
        got = probe.values(xv)[name]
        # the float64 build may name its weights otherwise (Keras numbers layers): by position
        ref64 = list(inst64.param_grad(np.resize(xv, n)).values())
        if len(ref64) != len(probe.names):
            return None
        ref = ref64[probe.names.index(name)] / per_input
        bad = ~np.isfinite(got)
        if not bad.any() or not np.isinf(got[bad]).all():
            return None
        over = np.isfinite(ref[bad]) & ~np.isfinite(round_to(ref[bad], d.name))
        if not over.all():
            return None
        true = float(ref[bad][0]) if x == xs[-1] else true
    return true


def _first_bad(probe: _ParamProbe, values: F64, name: str) -> int:
    """Smallest k whose prefix values[:k + 1] is bad (the whole block is)."""
    lo, hi = 0, values.size - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if probe.bad(values[:mid + 1], name):
            hi = mid
        else:
            lo = mid + 1
    return lo


def _last_bad(probe: _ParamProbe, values: F64, name: str) -> int:
    """Largest k whose suffix values[k:] is bad."""
    lo, hi = 0, values.size - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if probe.bad(values[mid:], name):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _refine(probe: _ParamProbe, p: ProbePlan, idx: Any, pos: int, step: int, name: str,
            d: DTypeInfo) -> int:
    """Exact lattice key of the outermost bad value next to the good neighbouring probe."""
    bad_key = int(p.keys[idx[pos]])
    if not 0 <= pos + step < idx.size:
        return bad_key
    good_key = int(p.keys[idx[pos + step]])
    while abs(good_key - bad_key) > 1:
        mid = (good_key + bad_key) // 2
        value = keys_to_values(np.array([mid], dtype=np.int64), d)
        if probe.bad(value, name):
            bad_key = mid
        else:
            good_key = mid
    return bad_key


def _finding(probe: _ParamProbe, p: ProbePlan, s: Sample, members: Any, lo_key: int,
             hi_key: int, name: str, ctx: Context, d: DTypeInfo, extra: int) -> Finding:
    low, high = (float(v) for v in keys_to_values(np.array([lo_key, hi_key]), d))
    values = p.values[members]
    r = ctx.operating_range
    inside = readable_order(values, ctx.dtype, r)
    ex = int(members[inside[0]])
    grad = float("nan")
    for i in inside[:EXAMPLES]:
        g = probe.values(values[i:i + 1])[name]
        if not np.isfinite(g).all():
            ex = int(members[i])
            grad = float(g[~np.isfinite(g)][0])
            break
    x, fwd = float(p.values[ex]), float(s.forward[ex])
    in_grad = float(s.gradient[ex]) if s.gradient is not None else float("nan")
    where = describe_range(low, high, d, ctx.dtype)
    also = ("while the forward and the input gradient are finite" if np.isfinite(in_grad)
            else f"(the input gradient is {nonfinite_name(in_grad)} there too)")
    msg = (f"gradient of parameter '{name}' is {nonfinite_name(grad)} for {where} in {ctx.dtype} "
           f"{also} (at x = {display(x, ctx.dtype)}: forward {display(fwd, ctx.dtype)}, "
           f"input gradient {display(in_grad, ctx.dtype)}, '{name}' gradient "
           f"{display(grad, ctx.dtype)})")
    if extra:
        msg += f"; {extra} more bad ranges not listed"
    severity: Severity = "error" if low <= r and high >= -r else "warning"
    boundary = low if abs(low) <= abs(high) else high
    if abs(low) >= d.max and abs(high) < d.max:
        boundary = high
    elif abs(high) >= d.max and abs(low) < d.max:
        boundary = low
    return Finding(code=PARAMETER_GRADIENT, kind="gradient", severity=severity, dtype=ctx.dtype,
                   framework=ctx.framework, example_input=x, forward=fwd, gradient=grad,
                   range=Range(low, high), boundary=boundary, location=ctx.location, message=msg)


def check_mixed(backend: Backend, target: Target, obj: object, variant: Variant,
                options: Options, location: Location | None,
                constants: tuple[float, ...]) -> tuple[list[Finding], list[str]]:
    """The mixed derivative d/dθ f'(x) of a class's learnable parameters (what training on
    forces differentiates): GS501 findings at order 2, found like first-order ones
    (param_findings) with f' in place of f and d/dθ f' in place of d/dθ f."""
    findings: list[Finding] = []
    notes: list[str] = []
    for dtype in options.dtypes:
        try:
            inst = backend.build(obj, target.kind, dtype, variant)
            if inst.mixed_grad is None:
                continue
            d = derivative(backend, inst.fn)
            probes, _ = probe_plan(backend, d, dtype, constants, options, None, inst.multiple)
            ev = backend.evaluate(d, probes.values, dtype, multiple=inst.multiple)
            sample = Sample(probes.values, ev.forward, ev.gradient, ev.forward)
            ctx = Context(dtype, backend.name, options.operating_range, location,
                          target.features)
            mixed = dataclasses.replace(inst, fn=d, param_grad=inst.mixed_grad)
            found = [dataclasses.replace(f, message=_mixed_message(f.message), order=second.ORDER)
                     for f in param_findings(probes, sample, mixed, ctx)]
            if found:  # the forward field holds f(x), as in every finding
                found = second.with_forward(backend, inst.fn, dtype, inst.multiple, found)
            findings.extend(found)
        except TargetError:
            raise
        except Exception as exc:
            notes.append(f"order 2: {dtype}: mixed derivative not checked: {second.one_line(exc)}")
    return findings, notes


def _mixed_message(text: str) -> str:
    """param_findings' words for f and f', said of f' and f''."""
    for old, new in (("gradient of parameter", "mixed derivative d/dθ f'(x) of parameter"),
                     ("while the forward and the input gradient are finite",
                      "while f' and f'' are finite"),
                     ("the input gradient is", "f'' is"),
                     ("forward ", "f' "), ("input gradient ", "f'' ")):
        text = text.replace(old, new)
    return text
