"""NumPy backend: no autodiff, no ML framework import.

NumPy has no autodiff, so a plain NumPy function has no gradient (GS104). A NumPy layer
with `forward`/`backward` methods (seed 004) is evaluated through its own backward with a
ones cotangent; its hand-written gradient is checked by `gradsafe.check.gradcheck`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gradsafe.backends.base import Backend, Evaluation, Fn, TargetError, check_output
from gradsafe.model.types import TargetKind
from gradsafe.numerics.floats import F64

DTYPES = {"float16": np.float16, "float32": np.float32, "float64": np.float64}


def to_dtype(xs: F64, dtype: str) -> Any:
    if dtype not in DTYPES:
        raise TargetError(f"NumPy has no {dtype}")
    return np.asarray(xs, dtype=np.float64).astype(DTYPES[dtype])


class _Layer:
    """forward/backward of a fresh layer instance as one callable with a `.backward`."""

    def __init__(self, cls: type) -> None:
        self.cls = cls

    def __call__(self, x: Any) -> Any:
        self.layer = self.cls()
        return self.layer.forward(x)


class NumpyBackend(Backend):
    name = "numpy"

    def version(self) -> str:
        return str(np.__version__)

    def instantiate(self, obj: Any, kind: str, dtype: str) -> tuple[Fn, str | None]:
        if kind == TargetKind.NUMPY_LAYER:
            return _Layer(obj), None
        return obj, None

    def run_chunk(self, fn: Fn, xs: F64, dtype: str, grad: bool) -> Evaluation:
        x = to_dtype(xs, dtype)
        y = fn(x)
        if not isinstance(y, np.ndarray):
            raise TargetError(f"returned {type(y).__name__} instead of a numpy array")
        check_output(tuple(y.shape), tuple(x.shape), y)
        forward = y.astype(np.float64)
        if not grad or not isinstance(fn, _Layer):
            return Evaluation(forward, None)
        g = fn.layer.backward(np.ones_like(y))
        if not isinstance(g, np.ndarray):
            raise TargetError(f"backward returned {type(g).__name__} instead of an array")
        return Evaluation(forward, g.astype(np.float64))


BACKEND = NumpyBackend()
