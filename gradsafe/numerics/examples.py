"""Picking the example input of a finding: one rule for every analyser.

The most readable value wins: inside the operating range if any is (`within`), then the
shortest repr in the dtype (0.0, 1.0 rather than 1.4e-45), then the smallest |x|, then the
smaller x. So a finding's `example_input` does not depend on which analyser made it."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from gradsafe.numerics.floats import F64, shortest_repr


def _pool(values: F64, within: float | None) -> npt.NDArray[np.intp]:
    if within is not None:
        inside = np.flatnonzero(np.abs(values) <= within)
        if inside.size:
            return inside
    return np.arange(values.size)


def _key(x: float, dtype: str) -> tuple[float, float, float]:
    return (float(len(shortest_repr(x, dtype))), abs(x), x)


def readable(values: F64, dtype: str, within: float | None = None) -> int:
    """Index of the example among `values` (non-empty)."""
    pool = _pool(values, within)
    # Branch and bound on the key: visit candidates in order of a cheap lower bound of their
    # repr length and stop once no later one can beat the best, instead of formatting tens
    # of thousands of values (16-bit ranges hold that many).
    v = values[pool]
    mag = np.abs(v)
    with np.errstate(divide="ignore"):
        int_digits = np.where(mag >= 1, np.floor(np.log10(np.maximum(mag, 1))) + 1, 1)
    # "d.0" needs int_digits + 2 characters, scientific "d.0e+XX" at least 7; plus a sign
    # (inf and nan need 3)
    bound = np.where(np.isfinite(v), np.minimum(int_digits + 2, 7), 3) \
        + (np.signbit(v)).astype(np.int64)
    order = np.lexsort((v, mag, bound))
    best: tuple[float, float, float] | None = None
    best_i = int(pool[order[0]])
    for j in order.tolist():
        x = float(v[j])
        if best is not None and (float(bound[j]), abs(x), x) > best:
            break
        key = _key(x, dtype)
        if best is None or key < best:
            best, best_i = key, int(pool[j])
    return best_i


def readable_order(values: F64, dtype: str, within: float | None = None) -> list[int]:
    """Indexes of `values` from the most readable on, by the same rule (for an analyser
    that tries a few candidates in turn); only those inside `within` when any is."""
    pool = _pool(values, within).tolist()
    return sorted(pool, key=lambda i: _key(float(values[i]), dtype))
