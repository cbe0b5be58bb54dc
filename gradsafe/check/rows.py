"""Row-wise functions (softmax, log_softmax, GLU/SwiGLU, sparsemax, normalisations) checked
row by row.

A row-wise function mixes the elements of one row (its last axis) and nothing else. gradsafe
checks it through elementwise functions derived from it: in a row of WIDTH elements, the
element at one position takes the swept value x while the others sit at an anchor (0, equal
to x, its negative, a large value) with their gradient stopped; the derived function returns
the output that position feeds (position mod the output width, so GLU's halves pair up). Each
derived function is swept, bisected and explained exactly like an elementwise target.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradsafe.backends.base import WIDTH, Backend, Fn, NotATarget, TargetError
from gradsafe.check.analyse import Counter
from gradsafe.check.common import (
    explain,
    require_elementwise,
    require_float,
    result,
    sweep_dtypes,
)
from gradsafe.check.exhaustive import Tick
from gradsafe.model.types import Finding, Options, Target, TargetResult

ROW = 4  # elements per row: even, so that functions splitting the last axis in two work
LARGE = 30.0  # a large logit: exp(30) is finite in float32 and bfloat16, not in float16
# columns of the rows used to tell a row-wise function from one that mixes rows
_PROBE_COLUMNS = (0.5, -1.25, 2.0, -0.75)


@dataclass(frozen=True)
class Anchor:
    """Where the other elements of the row sit while one element is swept."""

    name: str
    value: float  # a constant, or the sign of x when `track`
    track: bool  # the others follow x (gradient stopped)
    words: str  # for messages


ANCHORS = (Anchor("zero", 0.0, False, "the other elements at 0"),
           Anchor("equal", 1.0, True, "the other elements equal to it"),
           Anchor("negative", -1.0, True, "the other elements at its negative"),
           Anchor("large", LARGE, False, f"the other elements at {LARGE:g}"))


def derive(backend: Backend, fn: Fn, position: int, anchor: Anchor | None) -> Fn:
    """x (n,) -> f(rows)[..., q]: one element of each row swept, the others anchored
    (anchor None: fixed distinct constants, for telling rows apart)."""
    def g(x: Any) -> Any:
        columns = []
        for j in range(ROW):
            if j == position:
                columns.append(x)
            elif anchor is None:
                columns.append(backend.constant(x, _PROBE_COLUMNS[j]))
            else:
                columns.append(backend.constant(x, anchor.value, anchor.track))
        y = fn(backend.rows(columns))
        shape = getattr(y, "shape", None)
        n = int(x.shape[0])
        if shape is not None and len(shape) == 1 and int(shape[0]) % n == 0 \
                and int(shape[0]) > n:  # a class built for rows returns them flattened
            width = int(shape[0]) // n
            return y[(position % width if width != ROW else position)::width]
        if shape is None or len(shape) != 2 or int(shape[0]) != n:
            raise NotATarget(f"returned shape {tuple(shape) if shape is not None else None} "
                             f"for rows of shape ({n}, {ROW}): neither "
                             "elementwise nor row-wise")
        width = int(shape[-1])
        return y[..., position % width if width != ROW else position]

    return g


def numpy_rows(xs: Any, position: int, anchor: Anchor) -> Any:
    """The rows `derive` builds, in NumPy: (n,) -> (n, ROW), for feeding a class's
    parameter gradient (param_sweep), which takes flat NumPy inputs."""
    columns = [xs if j == position else (anchor.value * xs if anchor.track
                                         else np.full(xs.shape, anchor.value))
               for j in range(ROW)]
    return np.stack(columns, axis=-1)


def require_rowwise(backend: Backend, fn64: Fn) -> None:
    """Rows must not mix: with the rest of each row fixed, changing one row's element may
    change that row's output only."""
    try:
        require_elementwise(backend, derive(backend, fn64, 0, None))
    except NotATarget as exc:
        why = str(exc) if "shape" in str(exc) else "changing one element of a row changed " \
            "the outputs of other rows"
        raise NotATarget(f"is neither elementwise nor row-wise ({why})") from None


Make = Callable[[Any, str], tuple[Fn, str | None]]  # (object, dtype) -> function of rows


def check_rows(backend: Backend, target: Target, options: Options, obj: Any,
               counter: Counter | None, tick: Tick | None,
               seen: dict[str, Any] | None,
               wrap: Callable[[Fn], Fn] = lambda fn: fn,
               builder: Make | None = None) -> TargetResult:
    """`wrap` adapts the built function (a reduction: each row alone, see reduction.py);
    `builder` builds it (default: instantiate; a class configuration: param_sweep's build in
    the ROWS layout)."""
    def instantiate(o: Any, dtype: str) -> tuple[Fn, str | None]:
        return backend.instantiate(o, target.kind, dtype)

    made: Make = builder or instantiate

    def build(dtype: str) -> tuple[Fn, str | None]:
        fn, note = made(obj, dtype)
        return wrap(fn), note

    fn64, _ = build("float64")
    require_rowwise(backend, fn64)
    if not target.explicit:
        require_float(backend, derive(backend, fn64, 0, ANCHORS[0]))
    findings: list[Finding] = []
    notes: list[str] = []
    keys: set[tuple[Any, ...]] = set()
    for position in (0, ROW - 1):
        for anchor in ANCHORS:
            def make(dtype: str, p: int = position, a: Anchor = anchor
                     ) -> tuple[Fn, str | None]:
                fn, note = build(dtype)
                return derive(backend, fn, p, a), note

            found, more = sweep_dtypes(backend, target, options, make,
                                       derive(backend, fn64, position, anchor),
                                       counter, tick, seen)
            notes.extend(n for n in more if n not in notes)
            fresh = []
            for f in found:
                key = (f.code, f.kind, f.dtype, f.range)
                if key not in keys:
                    keys.add(key)
                    fresh.append(f)
            explained = explain(backend, target, obj, fresh, _maker(
                backend, made, position, anchor, wrap))
            findings.extend(in_row(f, position, anchor) for f in explained)
    notes.append(f"row-wise: checked in rows of {ROW}, the element at positions 0 and "
                 f"{ROW - 1} swept with the others at 0, equal to it, its negative and "
                 f"{LARGE:g}")
    return result(target, backend.name, tuple(findings), tuple(notes), options)


def _maker(backend: Backend, made: Make, position: int, anchor: Anchor,
           wrap: Callable[[Fn], Fn]) -> Callable[[Any, str], tuple[Any, int]]:
    def make(o: Any, dtype: str) -> tuple[Any, int]:
        fn, _ = made(o, dtype)
        return derive(backend, wrap(fn), position, anchor), WIDTH

    return make


def in_row(f: Finding, position: int, anchor: Anchor) -> Finding:
    where = f" [row-wise: x is element {position} of a row of {ROW}, {anchor.words}]"
    return dataclasses.replace(f, message=f.message + where)


def elementwise(backend: Backend, fn: Fn, multiple: int = WIDTH) -> bool:
    """Output i depends on input i alone, on vectors and on rows alike (Keras's sparsemax
    returns zeros for every 1-D vector, which would pass the vector test: on rows of 4 it
    is a real sparsemax, and differs from itself on a vector)."""
    try:
        require_elementwise(backend, fn, multiple)
    except NotATarget:  # mixes elements
        return False
    except TargetError as exc:
        if "returned shape" in str(exc):  # changes the shape (GLU halves the last axis)
            return False
        raise
    x = np.linspace(-2.0, 2.0, 8)
    try:  # rows [x, 0, 0, 0]: an elementwise function gives f(x) in the first column
        in_rows = backend.evaluate(derive(backend, fn, 0, ANCHORS[0]), x, "float64",
                                   grad=False, multiple=multiple).forward
    except Exception:  # a function of vectors only: judged on vectors
        return True
    flat = backend.evaluate(fn, x, "float64", grad=False, multiple=multiple).forward
    with np.errstate(invalid="ignore"):
        same = np.isclose(in_rows, flat, rtol=1e-9, atol=1e-12, equal_nan=True)
    return bool(np.all(same))
