"""PyTorch backend: eager forward and one autograd VJP per chunk."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from gradsafe.backends.base import Backend, Evaluation, Fn, TargetError, check_output
from gradsafe.floats import F64

_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16,
           "float32": torch.float32, "float64": torch.float64}


class TorchBackend(Backend):
    name = "torch"

    def version(self) -> str:
        return str(torch.__version__)

    def instantiate(self, obj: Any, kind: str, dtype: str) -> tuple[Fn, str | None]:
        if kind == "module":
            module = obj() if isinstance(obj, type) else copy.deepcopy(obj)
            module = module.to(_DTYPES[dtype])
            module.eval()
            return module, None
        if kind == "autograd_function":  # a Function subclass is called through .apply
            return obj.apply, None
        if isinstance(obj, type) and issubclass(obj, torch.nn.Module):
            return self.instantiate(obj, "module", dtype)
        return obj, None

    def run_chunk(self, fn: Fn, xs: F64, dtype: str, grad: bool) -> Evaluation:
        x = torch.from_numpy(xs).to(_DTYPES[dtype])
        x.requires_grad_(grad)
        with torch.set_grad_enabled(grad):
            y = fn(x)
        if y is None:
            raise TargetError("returned None instead of a tensor")
        if not isinstance(y, torch.Tensor):
            raise TargetError(f"returned {type(y).__name__} instead of a torch.Tensor")
        check_output(tuple(y.shape), tuple(x.shape), y)
        forward = y.detach().to(torch.float64).numpy()
        if not grad:
            return Evaluation(forward, None)
        if not y.requires_grad or not y.is_floating_point():
            return Evaluation(forward, None)
        (g,) = torch.autograd.grad(y, x, torch.ones_like(y), allow_unused=True)
        if g is None:
            return Evaluation(forward, None)
        return Evaluation(forward, g.to(torch.float64).numpy().astype(np.float64))


BACKEND = TorchBackend()
