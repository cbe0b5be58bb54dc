"""Probe plans per dtype (pure NumPy, no framework import).

16-bit dtypes are swept exhaustively. float32/float64 get a dense plan of the points where
things break: zeros, subnormals, every binade edge and points inside it, the overflow and
underflow thresholds of exp/log/pow, the target's own constants, a grid over the operating
range and seeded random bit patterns.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from gradsafe.numerics.floats import F64, I64, DTypeInfo, info, keys_to_values, values_to_keys

ULPS = 4  # neighbours on each side of a threshold or constant
RANDOM_BITS = 16384
RANDOM_IN_RANGE = 16384
GRID = 2001


@dataclass(frozen=True)
class ProbePlan:
    dtype: str
    values: F64  # sorted by key; finite values, then +-inf inside the order, NaN last
    keys: I64  # lattice keys of values (NaN gets the largest int64)

    def __len__(self) -> int:
        return int(self.values.size)


def plan(
    dtype: str,
    constants: Iterable[float] = (),
    operating_range: float = 1e4,
    seed: int = 0,
) -> ProbePlan:
    if info(dtype).bits == 16:
        constants = ()  # the whole lattice: the constants are in it already
    shared = _plan(dtype, tuple(constants), float(operating_range), seed)
    return ProbePlan(dtype, shared.values.copy(), shared.keys.copy())  # callers may write


@lru_cache(maxsize=64)
def _plan(dtype: str, constants: tuple[float, ...], operating_range: float,
          seed: int) -> ProbePlan:
    """Plans are shared by every target with the same constants (all 16-bit plans are one)."""
    d = info(dtype)
    if d.bits == 16:
        keys = np.arange(-d.inf_key - 1, d.inf_key + 1, dtype=np.int64)
    else:
        keys = _dense_keys(d, constants, operating_range, seed)
    keys = np.unique(keys)
    values = keys_to_values(keys, d)
    values = np.concatenate([values, [np.nan]])
    keys = np.concatenate([keys, [np.iinfo(np.int64).max]])
    return ProbePlan(dtype, values, keys)


def _around(d: DTypeInfo, points: Iterable[float], ulps: int = ULPS) -> I64:
    """Keys of points (both signs) and their neighbours on the lattice."""
    pts = np.array([p for p in points if math.isfinite(p)], dtype=np.float64)
    pts = np.concatenate([pts, -pts])
    base = values_to_keys(pts, d)
    offsets = np.arange(-ulps, ulps + 1, dtype=np.int64)
    return (base[:, None] + offsets[None, :]).ravel()


def thresholds(d: DTypeInfo) -> list[float]:
    """Inputs where exp, log, powers and squares cross the dtype's limits."""
    mx, tiny, sub = d.max, d.tiny, d.min_subnormal
    log_max, log_tiny, log_sub = math.log(mx), math.log(tiny), math.log(sub)
    pts = [log_max * k for k in (0.25, 1 / 3, 0.5, 1.0, 2.0)]
    pts += [log_tiny, log_sub, log_tiny / 2, log_sub / 2]
    pts += [mx ** (1 / k) for k in (2, 3, 4)]
    pts += [tiny ** (1 / k) for k in (2, 3)] + [sub ** 0.5]
    pts += [mx, tiny, sub, 1.0, d.eps]
    return pts


def _dense_keys(d: DTypeInfo, constants: tuple[float, ...], rng_: float, seed: int) -> I64:
    parts: list[I64] = []
    max_key, inf_key = d.max_key, d.inf_key
    # zeros, infinities, the largest finite values
    parts.append(np.array([0, -1, inf_key, -inf_key - 1, max_key, -max_key - 1], dtype=np.int64))
    # subnormals: the first few, log-spaced ones, the largest
    first_normal = 1 << d.mantissa_bits
    sub = np.unique(np.concatenate([
        np.arange(1, 9, dtype=np.int64),
        np.unique(np.logspace(0, math.log10(first_normal - 1), 24).astype(np.int64)),
        np.array([first_normal - 1], dtype=np.int64),
    ]))
    parts += [sub, -sub - 1]
    # every binade: its edge, the value below it, and a few points inside
    exps = np.arange(1, (1 << d.exponent_bits) - 1, dtype=np.int64)
    edges = exps << d.mantissa_bits
    frac = np.array([0, 1, 1 << (d.mantissa_bits - 2), 1 << (d.mantissa_bits - 1),
                     3 << (d.mantissa_bits - 2), (1 << d.mantissa_bits) - 1], dtype=np.int64)
    binade = (edges[:, None] + frac[None, :]).ravel()
    binade = np.concatenate([binade, edges - 1])
    parts += [binade, -binade - 1]
    # thresholds of exp/log/pow, the source's constants, round numbers
    round_numbers = [10.0 ** k for k in range(-8, 9)] + [float(i) for i in range(1, 101)]
    round_numbers += [i / 2 for i in range(1, 21)] + [0.1, 0.01, 0.001]
    parts.append(_around(d, thresholds(d)))
    parts.append(_around(d, constants))
    parts.append(_around(d, round_numbers, ulps=1))
    rng = np.random.default_rng(seed)
    # a grid and random points over the operating range, where users' inputs live
    span = min(rng_, d.max)
    grid = np.linspace(-span, span, GRID)
    inside = rng.uniform(-span, span, RANDOM_IN_RANGE)
    small = rng.standard_normal(RANDOM_IN_RANGE) * 8
    parts.append(values_to_keys(np.concatenate([grid, inside, small]), d))
    # random bit patterns over the whole finite lattice
    parts.append(rng.integers(-max_key - 1, max_key + 1, RANDOM_BITS, dtype=np.int64))
    keys = np.concatenate(parts)
    return keys[(keys >= -inf_key - 1) & (keys <= inf_key)]
