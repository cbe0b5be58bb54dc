"""`torch.autograd.Function` subclasses: forward through `.apply`, backward called directly.

Calling `Cls.backward(y.grad_fn, v)` runs the user's backward with the real context (its
saved tensors) and returns exactly what it returns: torch's own checks would silently
cast a wrong dtype or turn a None into a zero gradient. Autodiff of the forward's ops is not
reachable through `.apply`, so the reference is the numeric derivative alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from gradsafe.backends.base import TargetError
from gradsafe.backends.custom import Adapter, BackwardCall, BackwardError, shape_problem, unpack
from gradsafe.numerics.floats import F64

_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16,
           "float32": torch.float32, "float64": torch.float64}


def _tensor(y: Any) -> torch.Tensor:
    if isinstance(y, (tuple, list)) and len(y) == 1:
        y = y[0]
    if not isinstance(y, torch.Tensor):
        raise TargetError(f"apply returned {type(y).__name__} instead of a torch.Tensor")
    return y


def _np(t: torch.Tensor) -> F64:
    return np.asarray(t.detach().to(torch.float64).numpy(), dtype=np.float64)


class AutogradFunction(Adapter):
    framework = "torch"

    def __init__(self, cls: Any) -> None:
        if not (isinstance(cls, type) and issubclass(cls, torch.autograd.Function)):
            raise TargetError("expected a torch.autograd.Function subclass")
        self.cls = cls
        self.apply: Callable[..., Any] = cls.apply

    def forward64(self, x: F64, labels: F64 | None = None) -> F64:
        with torch.no_grad():
            return _np(_tensor(self.apply(torch.from_numpy(np.asarray(x, np.float64)))))

    def backward(self, x: F64, cotangent: F64, dtype: str,
                 labels: F64 | None = None) -> BackwardCall:
        xt = torch.tensor(np.asarray(x, np.float64)).to(_DTYPES[dtype]).requires_grad_()
        with torch.enable_grad():
            y = _tensor(self.apply(xt))
        forward = _np(y)
        if y.grad_fn is None:
            return BackwardCall(forward, None, "apply returned an output without a backward "
                                               "(marked non-differentiable?)", None, None)
        # a copy: torch.from_numpy shares memory, and an in-place backward must not reach
        # the caller's array
        v = torch.tensor(np.asarray(cotangent, np.float64)).to(y.dtype)
        keep = v.clone()
        try:
            with torch.no_grad():
                out = self.cls.backward(y.grad_fn, v)
        except Exception as exc:
            raise BackwardError(str(exc)) from exc
        after = None if torch.equal(v, keep) else _np(v)
        g, problem = unpack(out, "backward")
        if problem:
            return BackwardCall(forward, None, problem, None, after)
        if not isinstance(g, torch.Tensor) or not g.is_floating_point():
            what = type(g).__name__ if not isinstance(g, torch.Tensor) else str(g.dtype)
            return BackwardCall(forward, None, f"backward returned {what} instead of a "
                                               "floating-point tensor", None, after)
        gdtype = str(g.dtype).replace("torch.", "")
        problem = shape_problem(tuple(g.shape), tuple(xt.shape), "backward")
        if problem:
            return BackwardCall(forward, None, problem, gdtype, after)
        return BackwardCall(forward, _np(g), None, gdtype, after)

    def rule(self) -> Callable[..., Any] | None:
        fn: Callable[..., Any] = self.cls.backward
        return fn


def make(obj: Any, kind: str) -> Adapter:
    return AutogradFunction(obj)
