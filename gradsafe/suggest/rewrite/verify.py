"""Does a rewritten function compute the same values? Forward agreement per dtype.

The rewrite must agree with the original wherever the original's forward was finite, within
the dtype's tolerance, or be at least as close to the float64 value as the original was (a
rewrite may fix cancellation: expm1 where exp(x) - 1 gave 0). Where the original was not
finite the rewrite is free: that is what it fixes. Pure NumPy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gradsafe.numerics.floats import F64, info


@dataclass(frozen=True)
class Agreement:
    dtype: str
    ok: bool
    worst: float  # largest |new - original| among the points that disagree (0 if none)
    at: float  # the input where it happens
    inf_changes: tuple[tuple[float, float, float], ...] = ()  # (x, original, new) at x = ±inf


def tolerance(dtype: str) -> tuple[float, float]:
    """(relative, absolute): a few ulps, and a few epsilons for cancellation near 0."""
    eps = info(dtype).eps
    return 16 * eps, 4 * eps


def disagree(dtype: str, x: F64, original: F64, new: F64) -> npt.NDArray[np.bool_]:
    """Finite inputs where the original is finite and the rewrite is not within tolerance."""
    rtol, atol = tolerance(dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        close = np.abs(new - original) <= rtol * np.maximum(
            np.abs(original), np.abs(np.where(np.isfinite(new), new, 0.0))) + atol
    return np.isfinite(x) & np.isfinite(original) & ~close


def agree(dtype: str, x: F64, original: F64, new: F64, reference: F64 | None = None
          ) -> Agreement:
    """Compare forwards at the same inputs; `reference` is the float64 value of the original
    (NaN where unknown)."""
    rtol, atol = tolerance(dtype)
    finite_x = np.isfinite(x)
    check = finite_x & np.isfinite(original)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(new - original)
        scale = np.maximum(np.abs(original), np.abs(np.where(np.isfinite(new), new, 0.0)))
        close = diff <= rtol * scale + atol
        if reference is not None:
            better = np.abs(new - reference) <= np.abs(original - reference) + rtol * np.abs(
                reference) + atol
            close |= np.isfinite(reference) & better
    bad = check & ~close
    worst, at = 0.0, float("nan")
    if bad.any():
        d = np.where(bad, np.nan_to_num(diff, nan=np.inf), -1.0)
        i = int(np.argmax(d))
        worst, at = float(d[i]), float(x[i])
    changes = tuple((float(a), float(b), float(c)) for a, b, c in zip(
        x[~finite_x & ~np.isnan(x)], original[~finite_x & ~np.isnan(x)],
        new[~finite_x & ~np.isnan(x)], strict=True)
        if not (np.isnan(b) and np.isnan(c)) and b != c)
    return Agreement(dtype, not bad.any(), worst, at, changes)
