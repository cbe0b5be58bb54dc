"""`--exhaustive`: every float32 value, in compiled chunks (worker side).

The sweep walks all 2**32 bit patterns in chunks of CHUNK values (a few tens of MB each, so
peak memory stays far below 2 GiB). Each chunk is one compiled forward + VJP that returns
three masks: gradient non-finite where the forward is finite, forward NaN, forward ±inf.
Every run of each mask becomes an interval of lattice keys; the probe plan is then extended
with both ends of every run, their outer neighbours and a few points inside, and the usual
analysis runs on it with the framework's eager evaluation. So gradient and NaN ranges are
exact (every transition of the mask is in the plan) and the example inputs stay readable;
for ±inf forwards, whether the float64 value would fit the dtype is decided at those points
and refined by bisection.

Ctrl-C (SIGINT, forwarded by the pool) stops after the chunk at hand: what has been swept is
analysed and the result carries a note starting with `interrupt.PARTIAL_NOTE`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from gradsafe.backends.base import Backend, Fn
from gradsafe.model.types import Options
from gradsafe.numerics.floats import I64, DTypeInfo, info, keys_to_values
from gradsafe.numerics.probes import ProbePlan, plan
from gradsafe.run import interrupt

CHUNK = 1 << 22  # values per compiled call: 4 Mi float32 = 16 MiB in, 3 x 4 MiB of masks out
MAX_RUNS = 4096  # runs per mask kept for the plan; more are counted, not listed
INSIDE = 16  # points sampled inside each run
TICK_SECONDS = 0.25

Tick = Callable[[int, int], None]
BoolArray = npt.NDArray[np.bool_]


class Runs:
    """Runs of True of one mask, as closed intervals of lattice keys."""

    def __init__(self) -> None:
        self.lo: list[int] = []
        self.hi: list[int] = []
        self.dropped = 0

    def add(self, mask: BoolArray, start_bits: int, d: DTypeInfo) -> None:
        if not mask.any():
            return
        padded = np.concatenate([[False], mask, [False]])
        edges = np.flatnonzero(padded[1:] != padded[:-1])
        starts, ends = edges[0::2], edges[1::2] - 1
        room = MAX_RUNS - len(self.lo)
        if starts.size > room:
            self.dropped += int(starts.size - room)
            starts, ends = starts[:room], ends[:room]
        sign = d.sign_mask
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
            b0, b1 = start_bits + s, start_bits + e
            if b0 >= sign:  # negative half: key = -(bits - sign) - 1, decreasing in bits
                self.lo.append(-(b1 - sign) - 1)
                self.hi.append(-(b0 - sign) - 1)
            else:
                self.lo.append(b0)
                self.hi.append(b1)

    def keys(self, d: DTypeInfo) -> I64:
        """Both ends of every run, their outer neighbours and INSIDE points within."""
        out: list[I64] = []
        for lo, hi in zip(self.lo, self.hi, strict=True):
            inside = np.linspace(lo, hi, INSIDE + 2).round().astype(np.int64)
            out.append(np.concatenate([[lo - 1, lo, hi, hi + 1], inside]).astype(np.int64))
        if not out:
            return np.zeros(0, dtype=np.int64)
        keys = np.concatenate(out)
        return keys[(keys >= -d.max_key - 1) & (keys <= d.max_key)]


def sweep(backend: Backend, fn: Fn, dtype: str, base: ProbePlan, tick: Tick | None = None,
          window: tuple[int, int] | None = None,
          chunk: int = CHUNK) -> tuple[ProbePlan, str | None]:
    """The base plan extended with the transitions of every value's masks, and a note when
    the sweep was interrupted. window: bit patterns [start, stop) instead of all of them
    (multiples of chunk; for tests)."""
    d = info(dtype)
    first, stop = window or (0, 1 << d.bits)
    total = stop - first
    runs = {kind: Runs() for kind in ("gradient", "nan", "inf")}
    masks_of = backend.sweep_masks(fn, dtype, chunk)
    done = 0
    last = 0.0
    note = None
    with interrupt.soft():
        for start in range(first, stop, chunk):
            if interrupt.stop.is_set():
                hexes = d.bits // 4
                swept = (f" (bit patterns 0x{first:0{hexes}x}..0x{first + done - 1:0{hexes}x})"
                         if done else "")
                note = (f"{interrupt.PARTIAL_NOTE} the exhaustive {dtype} sweep was "
                        f"interrupted after {done:,} of {total:,} values{swept}; ranges "
                        "beyond them are from the probe plan only")
                break
            grad_bad, fwd_nan, fwd_inf = masks_of(start)
            runs["gradient"].add(grad_bad, start, d)
            runs["nan"].add(fwd_nan, start, d)
            runs["inf"].add(fwd_inf, start, d)
            done = start + chunk - first
            now = time.monotonic()
            if tick is not None and (now - last >= TICK_SECONDS or done == total):
                tick(done, total)
                last = now
    dropped = sum(r.dropped for r in runs.values())
    if dropped:
        more = f"{dropped:,} runs of bad values beyond the first {MAX_RUNS:,} per kind " \
               "were counted but not analysed"
        note = f"{note}; {more}" if note else f"{dtype}: {more}"
    extra = np.concatenate([r.keys(d) for r in runs.values()])
    finite_base = base.keys[:-1]  # the plan's last entry is NaN, added back below
    keys = np.unique(np.concatenate([finite_base, extra]))
    values = np.concatenate([keys_to_values(keys, d), [np.nan]])
    keys = np.concatenate([keys, [np.iinfo(np.int64).max]])
    return ProbePlan(dtype, values, keys), note


def within(probes: ProbePlan, domain: tuple[float, float] | None) -> ProbePlan:
    """The probes inside --domain LOW,HIGH (NaN is outside every domain)."""
    if domain is None:
        return probes
    keep = (probes.values >= domain[0]) & (probes.values <= domain[1])
    return ProbePlan(probes.dtype, probes.values[keep], probes.keys[keep])


def probe_plan(backend: Backend, fn: Fn, dtype: str, constants: tuple[float, ...],
               options: Options, tick: Tick | None = None,
               multiple: int = 1024) -> tuple[ProbePlan, str | None]:
    """The probe plan of one dtype, extended by the exhaustive sweep when it applies."""
    base = within(plan(dtype, constants, options.operating_range, options.seed),
                  options.domain)
    if not options.exhaustive or info(dtype).bits != 32:
        if options.exhaustive and dtype == "float64":
            return base, ("float64: --exhaustive sweeps every float32 value; float64 (2**64 "
                          "values) uses the probe plan")
        return base, None  # 16-bit dtypes are always swept exhaustively
    if interrupt.stop.is_set():
        return base, (f"{interrupt.PARTIAL_NOTE} the exhaustive {dtype} sweep was not run "
                      "(interrupted); ranges are from the probe plan only")
    if CHUNK % multiple:
        return base, f"{dtype}: not swept exhaustively (the input layout does not tile " \
                     f"{CHUNK} values); ranges are from the probe plan"
    return sweep(backend, fn, dtype, base, tick)
