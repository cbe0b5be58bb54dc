"""NumPy layers with hand-written `forward`/`backward` methods (seed 004)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from gradsafe.backends.base import TargetError
from gradsafe.backends.custom import Adapter, BackwardCall, BackwardError, shape_problem, unpack
from gradsafe.backends.numpy_backend import to_dtype
from gradsafe.numerics.floats import F64


def _required(fn: Any) -> list[inspect.Parameter]:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return []
    return [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


class NumpyLayer(Adapter):
    framework = "numpy"
    dtypes = ("float16", "float32", "float64")

    def __init__(self, cls: Any) -> None:
        if not isinstance(cls, type):
            raise TargetError("expected a class with forward/backward methods")
        self.cls: Any = cls
        fwd = [p for p in _required(getattr(cls, "forward", None))[1:] if p.default is p.empty]
        if len(fwd) not in (1, 2):
            raise TargetError(f"forward takes {len(fwd)} arguments; expected forward(x) or "
                              "forward(x, t) for a loss layer")
        self.needs_labels = len(fwd) == 2
        bwd = _required(getattr(cls, "backward", None))[1:]
        # a loss layer is the last one: backward(dout=1) is called with its default
        self.default_dout = not bwd or bwd[0].default is not bwd[0].empty

    def _new(self) -> Any:
        try:
            return self.cls()
        except TypeError as exc:
            raise TargetError(f"cannot create {self.cls.__name__}() without arguments: "
                              f"{exc}") from None

    def _forward(self, layer: Any, x: Any, labels: Any) -> Any:
        y = layer.forward(x, labels) if self.needs_labels else layer.forward(x)
        if y is None:
            raise TargetError("forward returned None instead of its output")
        return np.asarray(y)

    def forward64(self, x: F64, labels: F64 | None = None) -> F64:
        y = self._forward(self._new(), np.asarray(x, dtype=np.float64), labels)
        return np.asarray(y, dtype=np.float64)

    def backward(self, x: F64, cotangent: F64, dtype: str,
                 labels: F64 | None = None) -> BackwardCall:
        xd = to_dtype(x, dtype)
        layer = self._new()
        y = self._forward(layer, xd, None if labels is None else to_dtype(labels, dtype))
        forward = np.asarray(y, dtype=np.float64)
        incoming: Any = None
        try:
            if self.needs_labels and self.default_dout:
                out = layer.backward()
            elif self.needs_labels:
                out = layer.backward(np.asarray(1.0, dtype=xd.dtype))
            else:
                incoming = to_dtype(cotangent, dtype)
                keep = incoming.copy()
                out = layer.backward(incoming)
        except Exception as exc:
            raise BackwardError(str(exc)) from exc
        after = None
        if incoming is not None and not np.array_equal(incoming, keep, equal_nan=True):
            after = np.asarray(incoming, dtype=np.float64)
        g, problem = unpack(out, "backward")
        if problem:
            return BackwardCall(forward, None, problem, None, after)
        if not isinstance(g, np.ndarray) or g.dtype.kind != "f":
            kind = type(g).__name__ if not isinstance(g, np.ndarray) else f"{g.dtype} array"
            return BackwardCall(forward, None, f"backward returned {kind} instead of a "
                                               "floating-point array", None, after)
        problem = shape_problem(g.shape, xd.shape, "backward")
        if problem:
            return BackwardCall(forward, None, problem, str(g.dtype), after)
        return BackwardCall(forward, g.astype(np.float64), None, str(g.dtype), after)

    def before_forward(self, x: F64, cotangent: F64, dtype: str) -> BaseException | None:
        layer = self._new()
        try:
            if self.needs_labels and self.default_dout:
                layer.backward()
            elif self.needs_labels:
                layer.backward(np.asarray(1.0, dtype=to_dtype(x, dtype).dtype))
            else:
                layer.backward(to_dtype(cotangent, dtype))
        except Exception as exc:
            return exc
        return None

    def rule(self) -> Callable[..., Any] | None:
        fn: Callable[..., Any] = self.cls.backward
        return fn


def make(obj: Any, kind: str) -> Adapter:
    return NumpyLayer(obj)
