"""Runs of bad points: index ranges of consecutive flagged probes (pure NumPy).

Every analyser (first and second order, parameter gradients, the comparison of ports)
groups its bad probes with these two functions."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

BoolArray = npt.NDArray[np.bool_]


def runs(flags: BoolArray | list[bool]) -> list[tuple[int, int]]:
    """Index ranges [lo, hi] of consecutive True values."""
    padded = np.concatenate([[False], np.asarray(flags, dtype=bool), [False]])
    starts = np.flatnonzero(~padded[:-1] & padded[1:])
    ends = np.flatnonzero(padded[:-1] & ~padded[1:]) - 1
    return [(int(s), int(e)) for s, e in zip(starts, ends, strict=True)]


def runs_of(bad: BoolArray, considered: BoolArray) -> list[tuple[int, int]]:
    """Index ranges [lo, hi] of consecutive bad probes among the considered ones (the
    probes left out, e.g. non-finite inputs, neither break nor join a run)."""
    idx = np.flatnonzero(considered)
    return [(int(idx[s]), int(idx[e])) for s, e in runs(bad[idx])]
