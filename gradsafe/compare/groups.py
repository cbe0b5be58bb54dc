"""`gradsafe compare`: the same probes through two or three definitions, or through one
portable definition on every framework, and where their forward values and gradients agree.

Differences beyond the dtype's tolerance are GS401. Points where the function is not smooth
(the derivative just below and just above differ, the sides agreeing there) and where the
sides pick different values for f'(x) are kink conventions, GS402 (info): every value in
that table is measured, none is written down here. The frameworks run in workers (the
"sample" request); everything here is NumPy on the returned arrays.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from itertools import combinations
from pathlib import Path

import numpy as np
import numpy.typing as npt

from gradsafe.check.common import target_location
from gradsafe.discover.targets import builtin_target, discover_file, looks_dotted
from gradsafe.model.codes import FRAMEWORK_DISAGREEMENT, KINK_CONVENTION
from gradsafe.model.samples import Group, GroupData, SideData
from gradsafe.model.types import (
    FRAMEWORKS,
    PORTABLE_KINDS,
    Comparison,
    Difference,
    DTypeName,
    Finding,
    Kind,
    Kink,
    Location,
    Options,
    PairRow,
    Range,
    Report,
    RowStatus,
    Side,
    Target,
)
from gradsafe.numerics.examples import readable
from gradsafe.numerics.floats import F64, info, keys_to_values, shortest_repr, values_to_keys
from gradsafe.numerics.runs import runs
from gradsafe.run import samples

BoolArray = npt.NDArray[np.bool_]
ULPS_OF_TOLERANCE = {"float16": 8, "bfloat16": 8, "float32": 64, "float64": 1024}
MAX_KINK_RUN = 256  # probes around a kink where the sides may differ (subnormals flushed)
MAX_RUNS_LISTED = 3


class CompareError(Exception):
    """The command line names nothing comparable."""


def tolerance(dtype: DTypeName) -> float:
    """Relative tolerance (absolute below 1): a few ulps, as kernels round differently."""
    return ULPS_OF_TOLERANCE[dtype] * info(dtype).eps


def _targets_of(spec: str) -> list[Target]:
    file, sep, name = spec.partition("::")
    if sep or Path(spec).is_file():
        if not Path(file).is_file():
            raise CompareError(f"no such file: {file}")
        found = discover_file(file)
        broken = [t for t in found if t.error is not None]
        if broken and (not sep or any(t.name in (name, "<module>") for t in broken)):
            raise CompareError(f"{file}: {broken[0].error}")
        if sep:
            found = [t for t in found if t.name == name]
            if not found:
                names = ", ".join(t.name for t in discover_file(file)) or "none"
                raise CompareError(f"'{name}' is not a target in {file} (targets: {names})")
        if not found:
            raise CompareError(f"{file} has no function or class to compare")
        return found
    if looks_dotted(spec) and not spec.endswith(".py"):
        t = builtin_target(spec)
        if t.error is not None:
            raise CompareError(t.error)
        return [t]
    raise CompareError(f"no such file or dotted name: {spec}")


def _frameworks_of(t: Target, options: Options) -> list[str]:
    wanted = options.frameworks
    if t.kind in PORTABLE_KINDS:
        return [fw for fw in FRAMEWORKS if wanted is None or fw in wanted]
    inferred = [fw for fw in t.frameworks if fw in FRAMEWORKS]
    if inferred:
        return inferred
    if wanted:
        return [fw for fw in wanted if fw in FRAMEWORKS]
    raise CompareError(f"cannot infer the framework of '{t.name}'; pass --framework")


def _labels(pairs: list[tuple[Target, str]]) -> list[str]:
    fws = [fw for _, fw in pairs]
    if len(set(fws)) == len(fws):
        return fws
    named = [f"{t.name}[{fw}]" for t, fw in pairs]
    if len(set(named)) == len(named):
        return named
    return [f"{Path(t.file).name if t.file else ''}::{t.name}[{fw}]" for t, fw in pairs]


def groups(specs: Iterable[str], options: Options) -> list[Group]:
    """Files with several targets are matched by name (`compare a_torch.py a_jax.py`
    compares every name they share); `FILE::NAME`, dotted names and files with one target
    take part in every group."""
    per_spec = [_targets_of(s) for s in specs]
    multi = [ts for ts in per_spec if len(ts) > 1]
    if multi:
        names = [t.name for t in multi[0]
                 if all(any(u.name == t.name for u in ts) for ts in multi)]
        if not names:
            raise CompareError("the files share no target name; pick one with FILE::NAME")
        chosen = [[next(u for u in ts if u.name == n) if len(ts) > 1 else ts[0]
                   for ts in per_spec] for n in names]
    else:
        chosen = [[ts[0] for ts in per_spec]]
    out: list[Group] = []
    for targets in chosen:
        pairs = [(t, fw) for t in targets for fw in _frameworks_of(t, options)]
        if len(pairs) < 2:
            raise CompareError(
                f"nothing to compare '{targets[0].name}' with: give two or three targets, or "
                "one portable definition (keras.ops or array-API) to compare its frameworks")
        sides = tuple((Side(label, t.name, t.file, t.line, fw, t.kind), t)
                      for label, (t, fw) in zip(_labels(pairs), pairs, strict=True))
        names_ = list(dict.fromkeys(t.name for t in targets))
        out.append(Group(" vs ".join(names_), sides))
    return out


def compare(specs: Iterable[str], options: Options) -> tuple[Report, list[GroupData]]:
    gs = groups(specs, options)
    sampled = samples.sample_groups(gs, options)
    comparisons = [analyse_group(gd.group, gd.xs, gd.values, errors, options)
                   for gd, errors in sampled]
    report = Report((), options.dtypes, options.operating_range, options.fail_on,
                    comparisons=tuple(comparisons))
    return report, [gd for gd, _ in sampled]


# --- analysis (pure NumPy) ------------------------------------------------------------------

def close(a: F64, b: F64, tol: float) -> BoolArray:
    """Equal within tol relative to max(1, |a|, |b|): what matters to training is the error
    on the scale of the activation, and below 1 the tolerance is absolute (frameworks'
    erf/expm1 tails cancel differently); NaN equals NaN, inf equals inf."""
    with np.errstate(invalid="ignore", over="ignore"):
        scale = np.maximum(1.0, np.maximum(np.abs(a), np.abs(b)))
        near = np.abs(a - b) <= tol * scale
    same = (np.isnan(a) & np.isnan(b)) | (np.isinf(a) & (a == b))
    ok: BoolArray = (np.isfinite(a) & np.isfinite(b) & near) | same
    return ok


def kink_runs(x: F64, ga: F64, gb: F64, grad_ok: BoolArray, fwd_ok: BoolArray,
              dtype: DTypeName) -> list[tuple[int, int, int]]:
    """Windows of gradient disagreement that are kink conventions: (first, last, the point).

    Each run of disagreement is widened to a window of a few ulps around its most readable
    point (around 0 when it is subnormal: some kernels flush subnormals to zero, so 1e-45
    behaves as 0 there). The sides must agree just outside the window, the derivative must
    jump across it (one-sided derivatives differ: not smooth), and every value the sides
    give inside must lie between the two one-sided derivatives."""
    d = info(dtype)
    tol = tolerance(dtype)
    out: list[tuple[int, int, int]] = []
    seen: set[tuple[int, int]] = set()
    for i, j in runs(~grad_ok & fwd_ok):
        if j - i + 1 > MAX_KINK_RUN:
            continue
        mid = i + readable(x[i:j + 1], dtype)
        point = 0.0 if abs(x[mid]) < d.tiny else float(x[mid])
        key = values_to_keys(np.array([abs(point)]), d)
        ulp = float(np.diff(keys_to_values(np.array([key[0], key[0] + 1]), d))[0])
        reach = max(32 * ulp, 4 * d.tiny)
        wi = int(np.searchsorted(x, point - reach, "left"))
        wj = int(np.searchsorted(x, point + reach, "right")) - 1
        lo, hi = wi - 1, wj + 1
        if (wi, wj) in seen or i < wi or j > wj or lo < 0 or hi >= x.size:
            continue
        seen.add((wi, wj))
        if not (grad_ok[lo] and grad_ok[hi] and fwd_ok[wi:wj + 1].all()):
            continue
        left, right = float(ga[lo]), float(ga[hi])
        jump = abs(left - right) / max(1.0, abs(left), abs(right))
        if not (np.isfinite(left) and np.isfinite(right)) or jump <= math.sqrt(tol):
            continue  # smooth there (a jump of rounding noise is not a kink)
        slack = tol * max(1.0, abs(left), abs(right))
        inside = np.concatenate([ga[wi:wj + 1], gb[wi:wj + 1]])
        if not np.all((inside >= min(left, right) - slack) &
                      (inside <= max(left, right) + slack)):
            continue
        at = np.flatnonzero((x[wi:wj + 1] == point) & ~np.signbit(x[wi:wj + 1]))
        rep = wi + int(at[0]) if at.size else mid
        if grad_ok[rep]:  # same f'(point): the sides differ on the subnormals around it
            differ = wi + np.flatnonzero(~grad_ok[wi:wj + 1])
            rep = int(differ[readable(x[differ], dtype)])
        out.append((wi, wj, rep))
    return out


def difference(x: F64, a: F64, b: F64, bad: BoolArray, within: float,
               dtype: DTypeName) -> Difference:
    """The largest difference, looked for inside the operating range first (the most
    readable input among equal ones)."""
    idx = np.flatnonzero(bad)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(a[idx] - b[idx])
    diff[~np.isfinite(diff)] = np.inf
    outside = np.abs(x[idx]) > within
    pool_ = ~outside if (~outside).any() else np.ones(idx.size, dtype=bool)
    top = diff[pool_].max()
    best = np.flatnonzero(pool_ & (diff == top))
    k = int(idx[best][readable(x[idx[best]], dtype)])
    return Difference(int(idx.size), float(x[idx].min()), float(x[idx].max()), float(x[k]),
                      float(a[k]), float(b[k]), float(top))


def analyse_group(g: Group, xs: dict[DTypeName, F64], values: dict[str, dict[DTypeName, SideData]],
                  errors: tuple[tuple[str, str], ...], options: Options) -> Comparison:
    sides = [s for s, _ in g.sides]
    location = _location(g)
    rows: list[PairRow] = []
    findings: list[Finding] = []
    kinks: dict[tuple[DTypeName, float], Kink] = {}
    r = options.operating_range
    for dtype in options.dtypes:
        x = xs[dtype]
        tol = tolerance(dtype)
        for a, b in combinations(sides, 2):
            if a.label not in values or b.label not in values:
                rows.append(PairRow(dtype, a.label, b.label, "error", int(x.size), tol,
                                    None, None, 0))
                continue
            va, vb = values[a.label][dtype], values[b.label][dtype]
            fwd_ok = close(va.forward, vb.forward, tol)
            grad_ok = close(va.gradient, vb.gradient, tol)
            kink_mask = np.zeros(x.size, dtype=bool)
            found = kink_runs(x, va.gradient, vb.gradient, grad_ok, fwd_ok, dtype)
            for i, j, mid in found:
                kink_mask[i:j + 1] = True
                point = float(x[mid])
                if (dtype, point) not in kinks:
                    grads = tuple((s.label, float(values[s.label][dtype].gradient[mid]))
                                  for s in sides if s.label in values)
                    kinks[(dtype, point)] = Kink(dtype, point, float(va.gradient[i - 1]),
                                                 float(va.gradient[j + 1]), grads)
            grad_bad = ~grad_ok & ~kink_mask
            fwd_diff = None if fwd_ok.all() else difference(
                x, va.forward, vb.forward, ~fwd_ok, r, dtype)
            grad_diff = None if not grad_bad.any() else difference(
                x, va.gradient, vb.gradient, grad_bad, r, dtype)
            status: RowStatus = "differ" if fwd_diff or grad_diff else (
                "kink" if found else "agree")
            rows.append(PairRow(dtype, a.label, b.label, status, int(x.size), tol, fwd_diff,
                                grad_diff, len(found)))
            checks: tuple[tuple[Kind, Difference | None, BoolArray], ...] = (
                ("forward", fwd_diff, ~fwd_ok), ("gradient", grad_diff, grad_bad))
            for kind, diff, mask in checks:
                if diff is not None:
                    other = vb.forward if kind == "forward" else vb.gradient
                    mine = va.forward if kind == "forward" else va.gradient
                    findings.append(_disagreement(kind, diff, mask, x, dtype, a, b, va,
                                                  (mine, other), r, location))
    for k in sorted(kinks.values(), key=lambda k: (options.dtypes.index(k.dtype), k.x)):
        findings.append(_convention(k, xs, values, location))
    return Comparison(g.name, tuple(sides), tuple(rows), tuple(sorted(
        kinks.values(), key=lambda k: (options.dtypes.index(k.dtype), k.x))),
        tuple(findings), errors)


def _location(g: Group) -> Location | None:

    for _, t in reversed(g.sides):
        if t.file is not None:
            return target_location(t)
    return None


def _disagreement(kind: Kind, diff: Difference, mask: BoolArray, x: F64, dtype: DTypeName,
                  a: Side, b: Side, va: SideData, pair: tuple[F64, F64], within: float,
                  location: Location | None) -> Finding:
    def show(v: float) -> str:
        return shortest_repr(v, dtype) if np.isfinite(v) else str(v)

    found = runs(mask)
    spans = [show(float(x[i])) if i == j else f"{show(float(x[i]))} .. {show(float(x[j]))}"
             for i, j in found[:MAX_RUNS_LISTED]]
    more = f" and {len(found) - MAX_RUNS_LISTED} more" if len(found) > MAX_RUNS_LISTED else ""
    what = "forward" if kind == "forward" else "gradient"
    idx = np.flatnonzero(mask)
    # an example away from 0, where kernels' subnormal and signed-zero handling differ
    inside = idx[(np.abs(x[idx]) <= within) & (np.abs(x[idx]) >= info(dtype).tiny)]
    pool = inside if inside.size else idx
    e = int(pool[readable(x[pool], dtype)])
    scope = f" within ±{within:g}" if abs(diff.at) <= within else ""
    message = (f"{what} differs between {a.label} and {b.label} on {diff.count} of {x.size} "
               f"{dtype} probes (x in {', '.join(spans)}{more}); e.g. at x = {show(x[e])}: "
               f"{a.label} {show(pair[0][e])}, {b.label} {show(pair[1][e])}; largest "
               f"difference{scope} {show(diff.max_diff)} at x = {show(diff.at)}: "
               f"{a.label} {show(diff.a)}, {b.label} {show(diff.b)}")
    k = int(np.flatnonzero(x == diff.at)[0])
    boundary = diff.low if abs(diff.low) <= abs(diff.high) else diff.high
    # like check: an error where inputs live (|x| <= R), a warning only beyond
    inside_r = bool((np.abs(x[idx]) <= within).any())
    return Finding(code=FRAMEWORK_DISAGREEMENT, kind=kind,
                   severity="error" if inside_r else "warning", dtype=dtype,
                   framework=f"{a.label} vs {b.label}", example_input=diff.at,
                   forward=float(va.forward[k]), gradient=float(va.gradient[k]),
                   range=Range(diff.low, diff.high), boundary=boundary, location=location,
                   message=message)


def _convention(k: Kink, xs: dict[DTypeName, F64],
                values: dict[str, dict[DTypeName, SideData]],
                location: Location | None) -> Finding:
    def show(v: float) -> str:
        return shortest_repr(v, k.dtype) if np.isfinite(v) else str(v)

    picks = ", ".join(f"{label} {show(v)}" for label, v in k.gradients)
    if 0 < abs(k.x) < info(k.dtype).tiny:
        message = (f"next to the kink at x = 0 in {k.dtype} (f' is {show(k.left)} just below, "
                   f"{show(k.right)} just above), subnormal inputs are flushed to zero by some "
                   f"kernels, so the sides differ there: f'({show(k.x)}): {picks}")
    else:
        message = (f"f is not differentiable at x = {show(k.x)} in {k.dtype} (f' is "
                   f"{show(k.left)} just below, {show(k.right)} just above); the sides pick "
                   f"different values for f'({show(k.x)}): {picks}")
    x = xs[k.dtype]
    at = np.flatnonzero((x == k.x) & (np.signbit(x) == np.signbit(k.x)))
    first = k.gradients[0][0]
    fwd = float(values[first][k.dtype].forward[int(at[0])]) if at.size else float("nan")
    return Finding(code=KINK_CONVENTION, kind="gradient", severity="info", dtype=k.dtype,
                   framework=" vs ".join(label for label, _ in k.gradients), example_input=k.x,
                   forward=fwd, gradient=k.gradients[0][1], range=Range(k.x, k.x), boundary=k.x,
                   location=location, message=message)
