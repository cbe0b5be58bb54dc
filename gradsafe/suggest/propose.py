"""Suggest a rewrite for a target with findings, and prove it by re-sweeping (worker side).

Candidates are combinations of the libcst transforms in `gradsafe.suggest.rewrite`, tried in order
of preference. Each is written to a copy of the file and checked again by the same backend
with the same probes, dtypes and variant; it is *verified* when that re-sweep has no
findings at warning or error level and its forward agrees with the original wherever the
original's forward was finite (`rewrite/verify.py`). The first candidate that is clean
wins. A candidate that is not verified is never offered as a rewrite: the suggestion is then
a hint with an empty diff saying what was tried and what is still wrong, as it is advice
when no transform applies.
"""

from __future__ import annotations

import atexit
import dataclasses
import hashlib
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from gradsafe.backends.base import Backend
from gradsafe.check.common import resolve
from gradsafe.check.function import check
from gradsafe.discover.load import register_copy
from gradsafe.model.codes import ADVICE, REWRITE_CODES
from gradsafe.model.types import (
    Finding,
    Options,
    Severity,
    Suggestion,
    Target,
    TargetResult,
)
from gradsafe.numerics.floats import F64, display
from gradsafe.numerics.probes import plan
from gradsafe.suggest import rewrite
from gradsafe.suggest.policy import SUGGEST_BUDGET, wanted
from gradsafe.suggest.rewrite.verify import Agreement, agree, disagree

# dtype -> (probe inputs, forward values, float64 forward values or None)
Forwards = dict[str, tuple[F64, F64, F64 | None]]

MAX_VERIFIED = 4  # candidates re-swept per target at most (narrow and full guards count apart)
GUARD = ("guard_where",)
CANDIDATES: tuple[tuple[str, ...], ...] = (
    (*rewrite.FORMULAS, "mask_where", *GUARD),
    GUARD,
    ("mask_where",),
    ("mask_zero", *rewrite.FORMULAS),
    rewrite.FORMULAS,
    ("clamp_arg",),
    ("mask_exp",),
    ("safe_sqrt", *rewrite.FORMULAS, *GUARD),
    ("sinc",),
    # last: float32 inside, for what only the dtype breaks (an eps that is 0 in float16, a
    # square that overflows, a built-in's own kernel); the re-sweep decides, as for the rest
    ("widen",),
)

_TMP: list[str] = []


def _tmpdir() -> Path:
    if not _TMP:
        _TMP.append(tempfile.mkdtemp(prefix="gradsafe-suggest-"))
        atexit.register(shutil.rmtree, _TMP[0], True)
    return Path(_TMP[0])


@dataclasses.dataclass(frozen=True)
class Verdict:
    transforms: tuple[str, ...]
    source: str
    findings: tuple[Finding, ...]
    error: str | None
    agreements: tuple[Agreement, ...]
    fail_on: Severity = "error"

    @property
    def verified(self) -> bool:
        """Clean as `check` judges it (nothing at or above --fail-on), and the same values."""
        return self.error is None and all(a.ok for a in self.agreements) and not any(
            f.fails(self.fail_on) for f in self.findings)

    @property
    def rank(self) -> tuple[int, int]:
        return (0 if self.verified else 1, len(self.findings))


def candidates(source: str, framework: str, target: str
               ) -> Iterator[tuple[tuple[str, ...], str]]:
    """(transforms that applied, new source) in order of preference, without duplicates;
    made one at a time, since the first usually verifies (raises rewrite.RewriteError when
    the source cannot be parsed or lacks the target)."""
    seen: set[str] = {source}
    for combo in CANDIDATES:
        # the narrow guard first: the same fix in fewer words, when it verifies
        variants = [(*combo, rewrite.NARROW), combo] if rewrite.GUARDING & set(combo) \
            else [combo]
        for names in variants:
            new, used = rewrite.apply(source, framework, names, target)
            if used and new not in seen:
                seen.add(new)
                yield used, new


def forwards(backend: Backend, target: Target, options: Options,
             dtypes: tuple[str, ...]) -> Forwards:
    """Forward values at each dtype's probe plan (dtypes that cannot run are left out)."""
    obj = resolve(target, backend)
    v = target.variant
    constants = target.constants
    if v is not None:
        constants = tuple(sorted({*target.constants, *(
            abs(float(x)) for _, x in v.params if x and np.isfinite(float(x)))}))
    out: Forwards = {}
    for dtype in dtypes:
        xs = plan(dtype, constants, options.operating_range, options.seed).values
        try:
            if v is not None:
                inst = backend.build(obj, target.kind, dtype, v)
                ev = backend.evaluate(inst.fn, xs, dtype, grad=False, multiple=inst.multiple)
            else:
                fn, _ = backend.instantiate(obj, target.kind, dtype)
                ev = backend.evaluate(fn, xs, dtype, grad=False)
        except Exception:
            continue
        out[dtype] = (xs, ev.forward, None)
    return out


def _copy(original: str, source: str) -> str:
    digest = hashlib.sha1(source.encode()).hexdigest()[:12]
    path = _tmpdir() / f"{Path(original).stem}_{digest}.py"
    if not path.exists():
        path.write_text(rewrite.importable(source), encoding="utf-8")
    register_copy(str(path), original)  # imported into the original's package
    return str(path)


def verify(backend: Backend, target: Target, options: Options, transforms: tuple[str, ...],
           source: str, before: Forwards) -> Verdict:
    """Re-sweep the rewritten copy; its forwards come from that same sweep."""
    assert target.file is not None
    copy = dataclasses.replace(target, file=_copy(target.file, source))
    after: Forwards = {}
    try:
        res = check(backend, copy, options, seen=after)
    except Exception as exc:
        return Verdict(transforms, source, (), f"{type(exc).__name__}: {exc}", ())
    if res.status == "error":
        return Verdict(transforms, source, (), res.error or "the rewritten code fails", ())
    agreements = []
    for dtype, (xs, fwd, ref64) in before.items():
        if dtype not in after:
            return Verdict(transforms, source, res.findings, f"{dtype} does not run", ())
        a = agree(dtype, xs, fwd, after[dtype][1])
        if not a.ok:  # is the rewrite closer to the float64 value than the original was?
            # the sweep's own float64 values of the function it swept (for a row-wise
            # target, the derived one), else the original's, computed here
            a = agree(dtype, xs, fwd, after[dtype][1], ref64 if ref64 is not None else
                      _reference(backend, target, xs, fwd, after[dtype][1], dtype))
        agreements.append(a)
    return Verdict(transforms, source, res.findings, None, tuple(agreements), options.fail_on)


def _reference(backend: Backend, target: Target, xs: F64, old: F64, new: F64,
               dtype: str) -> F64:
    """The original's float64 forward where the two forwards disagree (NaN elsewhere)."""
    ref = np.full(xs.shape, np.nan)
    idx = np.flatnonzero(disagree(dtype, xs, old, new))
    if idx.size:
        try:
            ref[idx] = _forward_at(backend, target, "float64", xs[idx])
        except Exception:
            pass
    return ref


def at_infinity(backend: Backend, target: Target, options: Options, source: str,
                dtype: str) -> list[tuple[float, float, float]]:
    """(x, original, new) at x = ±inf where a candidate changes the original's value."""
    assert target.file is not None
    copy = dataclasses.replace(target, file=_copy(target.file, source))
    xs = np.array([np.inf, -np.inf])
    try:
        old = _forward_at(backend, target, dtype, xs)
        new = _forward_at(backend, copy, dtype, xs)
    except Exception:
        return []
    return [(float(x), float(a), float(b)) for x, a, b in zip(xs, old, new, strict=True)
            if not (np.isnan(a) and np.isnan(b)) and a != b]


def _forward_at(backend: Backend, target: Target, dtype: str, xs: F64) -> F64:
    obj = resolve(target, backend)
    if target.variant is not None:
        inst = backend.build(obj, target.kind, dtype, target.variant)
        return backend.evaluate(inst.fn, xs, dtype, grad=False, multiple=inst.multiple).forward
    fn, _ = backend.instantiate(obj, target.kind, dtype)
    return backend.evaluate(fn, xs, dtype, grad=False).forward


def title(v: Verdict) -> str:
    names = [rewrite.TRANSFORMS[t].title for t in v.transforms if t != rewrite.NARROW]
    main = next((rewrite.TRANSFORMS[t].title for t in v.transforms
                 if t in ("guard_where", "mask_where", "mask_exp", "clamp_arg", "safe_sqrt",
                          "sinc", "widen")), None)
    rest = [n for n in names if n != main]
    text = main or rest.pop(0)
    if rest:
        text += f"; also {'; '.join(rest)}"
    return text


# (dtypes, a suggestion verified in those dtypes only)
Partial = tuple[tuple[str, ...], Suggestion]


def clean_dtypes(v: Verdict, result: TargetResult) -> tuple[str, ...]:
    """The dtypes of the original's findings in which a candidate that is not verified as a
    whole is: its re-sweep has nothing at or above --fail-on there and its forward agrees
    (widen fixes float16 and bfloat16, and cannot touch a float32 finding)."""
    if v.error is not None:
        return ()
    left = {f.dtype for f in v.findings if f.fails(v.fail_on)}
    agreed = {a.dtype for a in v.agreements if a.ok}
    had = dict.fromkeys(f.dtype for f in result.findings
                        if f.code in ADVICE and f.fails(v.fail_on))
    return tuple(d for d in had if d in agreed and d not in left)


def problems(v: Verdict, skip: tuple[str, ...] = ()) -> str:
    """Why a candidate is not verified, briefly (leaving out the dtypes in `skip`)."""
    if v.error is not None:
        return f"the rewritten code fails: {v.error}"
    parts = []
    for a in v.agreements:
        if a.dtype in skip:
            continue
        if not a.ok:
            parts.append(f"changes finite values (largest difference {display(a.worst, a.dtype)}"
                         f" at x = {display(a.at, a.dtype)} in {a.dtype})")
            break
    left = [f for f in v.findings if f.fails(v.fail_on) and f.dtype not in skip]
    if left:
        f = left[0]
        parts.append(f"still {f.code} in {f.dtype}: {f.message}")
    return "; ".join(parts)


def advice(result: TargetResult) -> Suggestion | None:
    codes = [f.code for f in result.findings if f.code in ADVICE]
    if not codes:
        return None
    return Suggestion(f"no automatic rewrite applies: {ADVICE[codes[0]]}", "", False)


def suggest(backend: Backend, target: Target, options: Options, result: TargetResult,
            seen: Forwards | None = None) -> tuple[Suggestion | None, Partial | None]:
    """The suggestion for the target's findings, and, when the best candidate is not verified
    as a whole but is in some dtypes, the verified one for the findings in those."""
    assert target.file is not None
    if not any(f.code in REWRITE_CODES for f in result.findings):
        return advice(result), None
    source = Path(target.file).read_text(encoding="utf-8")
    options = dataclasses.replace(options, suggest=False)
    at_grid = target.grid or (target.variant is not None and target.variant.grid)
    if at_grid and options.fail_on == "error":
        # findings at grid values are warnings: a rewrite for them must remove those too,
        # or every candidate would pass as verified
        options = dataclasses.replace(options, fail_on="warning")
    framework = target.dialect(backend.name)
    before: Forwards | None = seen
    verdicts: list[Verdict] = []
    deadline = time.monotonic() + SUGGEST_BUDGET * options.timeout
    try:
        for transforms, new in candidates(source, framework, target.name):
            if len(verdicts) == MAX_VERIFIED or (verdicts and time.monotonic() > deadline):
                break
            before = before or forwards(backend, target, options, options.dtypes)
            v = verify(backend, target, options, transforms, new, before)
            verdicts.append(v)
            if v.verified:
                break
    except rewrite.RewriteError:
        verdicts = []
    if not verdicts:
        return advice(result), None
    best = min(verdicts, key=lambda v: v.rank)
    if not best.verified:  # a hint, never a diff: what was tried and why it is not enough
        codes = [f.code for f in result.findings if f.code in ADVICE]
        hint = f"; {ADVICE[codes[0]]}" if codes else ""
        # the candidate that fixes the most dtypes gets to be verified there (see attach)
        most = max(verdicts, key=lambda v: len(clean_dtypes(v, result)))
        clean = clean_dtypes(most, result)
        partial: Partial | None = None
        if clean:
            partial = (clean, Suggestion(
                f"{title(most)} (verified in {', '.join(clean)}; not for the other dtypes: "
                f"{problems(most, clean)})",
                rewrite.unified_diff(target.file, source, most.source), True,
                most.transforms))
        return Suggestion(f"no verified rewrite (tried: {title(best)}; not verified: "
                          f"{problems(best)}){hint}", "", False, best.transforms), partial
    text = title(best) + _versus_mask(backend, target, options, source, framework, best)
    return Suggestion(text, rewrite.unified_diff(target.file, source, best.source), True,
                      best.transforms), None


def _versus_mask(backend: Backend, target: Target, options: Options, source: str,
                 framework: str, best: Verdict) -> str:
    """Why the guarded where beats seed 000's mask-inside-exp form, measured at ±inf."""
    if "mask_exp" in best.transforms:
        return ""
    mask, used = rewrite.apply(source, framework, ("mask_exp",), target.name)
    if not used:
        return ""
    dtype = options.dtypes[0]
    changes = at_infinity(backend, target, options, mask, dtype)
    if not changes:
        return ""
    x, old, new = changes[0]
    return (f"; preferred to seed 000's mask-inside-exp form, which gives "
            f"{display(new, dtype)} at x = {display(x, dtype)} where the original gives "
            f"{display(old, dtype)}")


def attach(backend: Backend, target: Target, options: Options, result: TargetResult,
           seen: Forwards | None = None) -> TargetResult:
    """The result with the suggestion on every finding it is for; `seen` holds the forward
    values the check computed, so verification costs one sweep per candidate."""
    if not options.suggest or not wanted(result):
        return result
    s, partial = suggest(backend, target, options, result, seen)
    if s is None:
        return result
    clean, verified = partial or ((), s)
    findings = tuple(dataclasses.replace(f, suggestion=verified if f.dtype in clean else s)
                     if f.code in ADVICE else f for f in result.findings)
    return dataclasses.replace(result, findings=findings)
