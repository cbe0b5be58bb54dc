"""PyTorch backend: eager forward and one autograd VJP per chunk."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from gradsafe.backends import keras_layers
from gradsafe.backends.base import (
    CAST_NOTE,
    RANDOM_STATE,
    Backend,
    Evaluation,
    Fn,
    Instance,
    MaskFn,
    Masks,
    Recorder,
    TargetError,
    check_output,
    cotangent_scale,
    layout_multiple,
    layout_shape,
)
from gradsafe.model.types import TargetKind, Variant
from gradsafe.numerics.floats import F64

_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16,
           "float32": torch.float32, "float64": torch.float64}


class TorchBackend(Backend):
    name = "torch"

    def version(self) -> str:
        return str(torch.__version__)

    def reseed(self) -> None:
        super().reseed()
        # the CPU generator alone: torch.manual_seed also queues a lazy seeding of every
        # accelerator API (CUDA, XPU), formatting a stack trace each time: 20 ms a call,
        # a fifth of a small target's check
        torch.default_generator.manual_seed(RANDOM_STATE)
        if self.device.type == "cuda":
            torch.cuda.manual_seed_all(RANDOM_STATE)

    device = torch.device("cpu")

    def use_device(self, device: str) -> str | None:
        if device == "cpu":
            self.device = torch.device("cpu")
            return None
        if not torch.cuda.is_available():
            raise TargetError(f"--device cuda: torch {torch.__version__} sees no CUDA GPU "
                              "(a CPU-only build, or no driver)")
        self.device = torch.device("cuda")
        return f"device: cuda ({torch.cuda.get_device_name(0)})"

    def instantiate(self, obj: Any, kind: str, dtype: str) -> tuple[Fn, str | None]:
        if kind == TargetKind.LAYER or keras_layers.is_keras_layer(obj):
            kl = keras_layers.build(obj, dtype, None, lambda n: torch.zeros(
                n, dtype=_DTYPES[dtype], device=self.device))
            return kl.call, kl.note
        if kind == TargetKind.MODULE:
            module = obj() if isinstance(obj, type) else copy.deepcopy(obj)
            note = cast_note(module, _DTYPES[dtype])
            module = module.to(self.device, _DTYPES[dtype])
            module.eval()
            return module, note
        if kind == TargetKind.AUTOGRAD_FUNCTION:  # a Function subclass is called through .apply
            return obj.apply, None
        if isinstance(obj, type) and issubclass(obj, torch.nn.Module):
            return self.instantiate(obj, TargetKind.MODULE, dtype)
        return obj, None

    def rows(self, columns: list[Any]) -> Any:
        return torch.stack(columns, dim=-1)

    def constant(self, x: Any, value: float, track: bool = False) -> Any:
        return x.detach() * value if track else torch.full_like(x, value).detach()

    def sum_trailing(self, y: Any, ndim: int) -> Any:
        return y.to(torch.float64).sum(dim=tuple(range(ndim, y.dim())))

    def per_element(self, fn: Fn) -> Fn:
        def one(v: Any) -> Any:
            return fn(v.unsqueeze(0)).reshape(())

        def mapped(x: Any) -> Any:
            out = torch.func.vmap(one, randomness="same")(x)
            return out.reshape(tuple(out.shape) + (1,) * (x.dim() - 1))

        return mapped

    def array_namespace(self) -> Any:
        try:
            import array_api_compat.torch as xp
        except ImportError:
            raise TargetError("array-API targets need array-api-compat on torch: "
                              "pip install array-api-compat") from None
        return xp

    def run_chunk(self, fn: Fn, xs: F64, dtype: str, grad: bool) -> Evaluation:
        x = torch.from_numpy(xs).to(self.device, _DTYPES[dtype])
        x.requires_grad_(grad)
        with torch.set_grad_enabled(grad):
            y = fn(x)
        if y is None:
            raise TargetError("returned None instead of a tensor")
        if not isinstance(y, torch.Tensor):
            raise TargetError(f"returned {type(y).__name__} instead of a torch.Tensor")
        check_output(tuple(y.shape), tuple(x.shape), y)
        forward = y.detach().to(torch.float64).cpu().numpy()
        if not grad:
            return Evaluation(forward, None)
        if not y.requires_grad or not y.is_floating_point():
            return Evaluation(forward, None, floating=y.is_floating_point())
        # The VJP with a ones cotangent, as the gradient of the sum: an explicit cotangent
        # tensor makes torch import sympy (about 1 s) to compare shapes on the first call.
        (g,) = torch.autograd.grad(y.sum(), x, allow_unused=True)
        if g is None:
            return Evaluation(forward, None)
        return Evaluation(forward, g.to(torch.float64).cpu().numpy().astype(np.float64))

    def trace(self, fn: Fn, xs: F64, dtype: str, recorder: Recorder,
              grad: bool = True) -> Evaluation:
        x = torch.from_numpy(xs).to(self.device, _DTYPES[dtype])
        x.requires_grad_(grad)
        leaves: list[torch.Tensor] = []

        def wrap(v: Any) -> tuple[Any, Any, F64] | None:
            if not isinstance(v, torch.Tensor) or v.is_complex():
                return None
            flat = v.detach().to(torch.float64).reshape(-1).cpu().numpy().copy()
            if not grad or not v.is_floating_point():
                return v, None, flat
            eps = torch.full_like(v.detach(), -0.0).requires_grad_(True)
            leaves.append(eps)
            return v + eps, eps, flat

        recorder.start(wrap)
        try:
            with torch.set_grad_enabled(grad):
                y = fn(x)
        finally:
            recorder.stop()
        if not isinstance(y, torch.Tensor):
            raise TargetError(f"returned {type(y).__name__} instead of a torch.Tensor")
        forward = y.detach().to(torch.float64).reshape(-1).cpu().numpy().copy()
        if not grad or not y.requires_grad or not y.is_floating_point():
            return Evaluation(forward, None)
        # a ones cotangent as the gradient of the sum: no sympy import (see run_chunk)
        grads = torch.autograd.grad(y.sum(), [x, *leaves], allow_unused=True)
        cots = {id(e): g for e, g in zip(leaves, grads[1:], strict=True)}
        for r in recorder.records:
            if r.handle is not None:
                g = cots.get(id(r.handle))
                r.cot = (np.zeros(r.value.size) if g is None
                         else g.to(torch.float64).reshape(-1).cpu().numpy().copy())
        gx = grads[0]
        return Evaluation(forward, None if gx is None
                          else gx.to(torch.float64).reshape(-1).cpu().numpy().copy())

    def sweep_masks(self, fn: Fn, dtype: str, count: int) -> MaskFn:
        """Eager: the bit patterns are made in torch and only masks come back. torch.compile
        did not pay here (measured on a 2-core CPU: 40 s to compile, 10.2 vs 9.6 M values/s)."""
        if dtype != "float32":
            return super().sweep_masks(fn, dtype, count)
        offsets = torch.arange(count, dtype=torch.int32, device=self.device)
        clean = np.zeros(count, dtype=bool)  # shared answer for the (usual) all-finite chunk
        clean.flags.writeable = False

        def masks(start: int) -> Masks:
            # int32 arithmetic wraps, which is exactly the uint32 bit pattern we want
            first = start - (1 << 32) if start >= 1 << 31 else start
            x = (offsets + first).view(torch.float32).requires_grad_(True)
            with torch.enable_grad():
                y = fn(x)
            if not isinstance(y, torch.Tensor):
                raise TargetError(f"returned {type(y).__name__} instead of a torch.Tensor")
            check_output(tuple(y.shape), tuple(x.shape), y)
            g = None
            # a float64 sum of float32 values cannot overflow (2**22 * 3.4e38 < 1.8e308), so
            # it is finite exactly when every term is: one reduction, no temporary, instead
            # of isfinite + all (measured: 48 -> 63 M values/s on one thread)
            total = y.sum(dtype=torch.float64) if y.is_floating_point() else None
            if total is not None and y.requires_grad:
                (g,) = torch.autograd.grad(total, x, allow_unused=True)
            with torch.no_grad():
                if g is not None and total is not None and bool(
                        torch.isfinite(total.detach() + g.sum(dtype=torch.float64))):
                    return clean, clean, clean
                fin = torch.isfinite(y)
                grad_bad = (fin & ~torch.isfinite(g)) if g is not None else torch.zeros_like(fin)
                return (grad_bad.cpu().numpy(), torch.isnan(y).cpu().numpy(),
                        torch.isinf(y).cpu().numpy())

        return masks

    def build(self, obj: Any, kind: str, dtype: str, variant: Variant) -> Instance:
        if kind == TargetKind.LAYER or keras_layers.is_keras_layer(obj):
            return _keras_build(obj, dtype, variant, self.device)
        torch_dtype = _DTYPES[dtype]
        if isinstance(obj, type):
            module = obj(**dict(variant.params))
        else:
            module = copy.deepcopy(obj)
        if not isinstance(module, torch.nn.Module):
            raise TargetError(f"{type(module).__name__} is not a torch.nn.Module")
        note = cast_note(module, torch_dtype)
        module = module.to(self.device, torch_dtype)
        module.train(variant.mode == "train")
        params = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        seed = variant.seed

        def fn(x: torch.Tensor) -> torch.Tensor:
            if seed is not None:
                torch.manual_seed(seed)  # every call draws the same random numbers
            shaped = x.reshape(layout_shape(variant, int(x.numel())))
            y = module(shaped)
            if not isinstance(y, torch.Tensor):
                raise TargetError(f"returned {type(y).__name__} instead of a torch.Tensor")
            check_output(tuple(y.shape), tuple(shaped.shape), y, variant.layout)
            return y.reshape(-1)

        names = tuple(n for n, _ in params)
        tensors = [p for _, p in params]

        def param_grad(xs: F64) -> dict[str, F64]:
            x = torch.from_numpy(xs).to(self.device, torch_dtype)
            with torch.enable_grad():
                return _by_weights(fn(x), names, tensors)

        def mixed_grad(xs: F64) -> dict[str, F64]:
            x = torch.from_numpy(xs).to(self.device, torch_dtype).requires_grad_(True)
            with torch.enable_grad():
                y = fn(x)
                g = None
                if y.requires_grad:  # f'(x), kept differentiable in the weights
                    (g,) = torch.autograd.grad(y.sum(), x, create_graph=True,
                                               allow_unused=True)
                return _by_weights(g, names, tensors)

        return Instance(fn, note, param_grad if params else None, names,
                        layout_multiple(variant), mixed_grad if params else None)


    def uncast(self, obj: Any, kind: str, dtype: str, variant: Variant | None) -> Fn | None:
        if kind == "layer" or keras_layers.is_keras_layer(obj) or (
                kind != "module" and not (isinstance(obj, type)
                                          and issubclass(obj, torch.nn.Module))):
            return None
        params = dict(variant.params) if variant is not None else {}
        module = obj(**params) if isinstance(obj, type) else copy.deepcopy(obj)
        if not isinstance(module, torch.nn.Module) \
                or cast_note(module, _DTYPES[dtype]) is None:
            return None
        module = module.to(self.device)  # the device only: its tensors keep their dtype
        module.train(variant is not None and variant.mode == "train")
        seed = variant.seed if variant is not None else None

        def fn(x: torch.Tensor) -> torch.Tensor:
            if seed is not None:
                torch.manual_seed(seed)
            shaped = x if variant is None else x.reshape(layout_shape(variant, int(x.numel())))
            y: torch.Tensor = module(shaped)
            return y.reshape(-1)

        return fn


def cast_note(module: torch.nn.Module, dtype: torch.dtype) -> str | None:
    """Say that module.to(dtype) changed the module's own floating tensors: a finding may
    come from them (torch.autocast would have kept them in float32)."""
    tensors = [t for t in [*module.parameters(), *module.buffers()]
               if t.is_floating_point() and t.dtype != dtype]
    if not tensors:
        return None
    was = sorted({str(t.dtype).removeprefix("torch.") for t in tensors})
    to = str(dtype).removeprefix("torch.")
    return (f"{CAST_NOTE} .to({to}): {len(tensors)} parameter/buffer "
            f"tensor{'s' * (len(tensors) != 1)} of it ({', '.join(was)}) computed in {to}; "
            "under torch.autocast they would stay float32")


def _keras_build(obj: Any, dtype: str, variant: Variant, device: torch.device) -> Instance:
    """A Keras 3 layer under the torch Keras backend: its weights are torch Parameters."""
    torch_dtype = _DTYPES[dtype]
    kl = keras_layers.build(obj, dtype, variant,
                            lambda n: torch.zeros(n, dtype=torch_dtype, device=device))
    weights = list(kl.layer.trainable_weights)
    params = [w.value for w in weights]
    names = tuple(str(getattr(w, "path", None) or w.name) for w in weights)
    state = list(kl.layer.non_trainable_variables)
    snapshot = [v.value.detach().clone() for v in state] if variant.seed is not None else []

    def fn(x: torch.Tensor) -> torch.Tensor:
        for var, value in zip(state, snapshot, strict=False):
            var.assign(value)  # random layers: the same seed-generator state every call
        y: torch.Tensor = kl.call(x)
        return y

    def param_grad(xs: F64) -> dict[str, F64]:
        x = torch.from_numpy(xs).to(device, torch_dtype)
        with torch.enable_grad():
            return _by_weights(fn(x), names, params)

    return Instance(fn, kl.note, param_grad if params else None, names, kl.multiple)


def _by_weights(out: torch.Tensor | None, names: tuple[str, ...],
                weights: Sequence[torch.Tensor]) -> dict[str, F64]:
    """The VJP of `out` with respect to each weight, flattened to float64, for a cotangent
    of cotangent_scale(n) everywhere (a sum of n finite terms cannot overflow); zeros for
    a weight `out` does not depend on (or for no `out` at all)."""
    zeros = {n: np.zeros(w.numel()) for n, w in zip(names, weights, strict=True)}
    if out is None or not out.requires_grad:
        return zeros
    cot = torch.full_like(out, cotangent_scale(int(out.numel())))
    grads = torch.autograd.grad(out, weights, cot, allow_unused=True)
    return {n: (zeros[n] if g is None else
                g.detach().to(torch.float64).cpu().numpy().ravel().astype(np.float64))
            for n, g in zip(names, grads, strict=True)}


BACKEND = TorchBackend()
