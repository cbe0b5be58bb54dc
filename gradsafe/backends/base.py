"""The interface every framework backend implements, and the shared chunking around it."""

from __future__ import annotations

import importlib
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from gradsafe.floats import F64, bits_to_values
from gradsafe.model import Variant

# Every evaluation uses vectors whose length is a multiple of WIDTH: CPU kernels take
# different code paths for short tails and vectorized bodies (torch.cosh(89.0) is finite
# in a 16-element tensor and inf in a 64-element one), so sweeps and bisections must see
# every value in the same kind of vector.
WIDTH = 1024
CHUNK = 1 << 16


class TargetError(Exception):
    """The target broke its contract (raised, returned None, wrong shape...)."""


@dataclass(frozen=True)
class Evaluation:
    forward: F64
    gradient: F64 | None  # None: the output does not depend differentiably on the input
    note: str | None = None


Fn = Callable[[Any], Any]
Masks = tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]
MaskFn = Callable[[int], Masks]


def resolve_dotted(dotted: str) -> Any:
    """Import the longest importable prefix of a dotted name, then walk attributes."""
    parts = dotted.split(".")
    if parts[0] == "tf":
        parts[0] = "tensorflow"
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            raise TargetError(f"'{dotted}' has no attribute '{attr}'") from None
        return obj
    raise TargetError(f"cannot import '{dotted}'")


def pad(xs: F64, multiple: int = WIDTH) -> tuple[F64, int]:
    n = int(xs.size)
    width = max(multiple, -(-n // multiple) * multiple)
    if width == n:
        return xs, n
    filler = xs[0] if n else 0.0
    return np.concatenate([xs, np.full(width - n, filler)]), n


class Backend(ABC):
    name: str

    @abstractmethod
    def version(self) -> str:
        """The framework's version string."""

    @abstractmethod
    def instantiate(self, obj: Any, kind: str, dtype: str) -> tuple[Fn, str | None]:
        """A callable for one dtype, and a note on how it was built (e.g. a dtype policy)."""

    @abstractmethod
    def run_chunk(self, fn: Fn, xs: F64, dtype: str, grad: bool) -> Evaluation:
        """Forward (and one VJP with a ones cotangent when grad) of a padded chunk."""

    def sweep_masks(self, fn: Fn, dtype: str, count: int) -> MaskFn:
        """For --exhaustive: a function of a first bit pattern that evaluates the `count`
        values from there and returns (gradient non-finite where the forward is finite,
        forward NaN, forward ±inf). Backends override it with a compiled version."""

        def masks(start: int) -> Masks:
            bits = np.arange(start, start + count, dtype=np.uint64)
            ev = self.run_chunk(fn, bits_to_values(bits, dtype), dtype, True)
            return masks_of(ev.forward, ev.gradient)

        return masks

    def array_namespace(self) -> Any:
        """The array-API namespace handed to `def act(x, xp)` targets."""
        raise TargetError(f"{self.name} has no array-API namespace")

    def build(self, obj: Any, kind: str, dtype: str, variant: Variant) -> Instance:
        """One configuration of a class (constructor values, mode, seed, input layout)."""
        raise TargetError(f"{self.name} cannot check a '{kind}' target with parameters")

    def evaluate(self, fn: Fn, xs: F64, dtype: str, grad: bool = True,
                 multiple: int = WIDTH) -> Evaluation:
        """Forward and gradient at every point, in chunks of full-width vectors."""
        forwards: list[F64] = []
        grads: list[F64] = []
        no_grad = False
        note = None
        for start in range(0, max(int(xs.size), 1), CHUNK):
            chunk, n = pad(xs[start:start + CHUNK], multiple)
            ev = self.run_chunk(fn, chunk, dtype, grad)
            note = note or ev.note
            forwards.append(ev.forward[:n])
            if ev.gradient is None:
                no_grad = True
            else:
                grads.append(ev.gradient[:n])
        forward = np.concatenate(forwards) if forwards else np.zeros(0)
        if not grad or no_grad:
            return Evaluation(forward, None, note)
        return Evaluation(forward, np.concatenate(grads), note)


def masks_of(forward: F64, gradient: F64 | None) -> Masks:
    fin = np.isfinite(forward)
    grad_bad = (fin & ~np.isfinite(gradient) if gradient is not None
                else np.zeros(forward.shape, dtype=bool))
    return grad_bad, np.isnan(forward), np.isinf(forward)

def bind_namespace(fn: Any, xp: Any) -> Fn:
    """`act(x, xp)` as a one-argument function of x."""
    def bound(x: Any) -> Any:
        return fn(x, xp)

    bound.__name__ = getattr(fn, "__name__", "act")
    return bound


def check_output(y_shape: tuple[int, ...], x_shape: tuple[int, ...], y: object) -> None:
    if y is None:
        raise TargetError("returned None instead of a tensor")
    if tuple(y_shape) != tuple(x_shape):
        raise TargetError(f"returned shape {tuple(y_shape)} for an input of shape "
                          f"{tuple(x_shape)} (expected an elementwise function)")


# padded flat inputs -> gradient of each learnable parameter (flattened), computed with a
# cotangent of cotangent_scale(n) on every output so that a sum of finite terms cannot overflow
ParamGrad = Callable[[F64], dict[str, F64]]


@dataclass(frozen=True)
class Instance:
    """A built configuration: `fn` maps a flat vector to a flat vector (reshaping to the
    variant's layout inside), `param_grad` differentiates the learnable parameters."""

    fn: Fn
    note: str | None
    param_grad: ParamGrad | None = None
    param_names: tuple[str, ...] = ()
    multiple: int = WIDTH


def layout_multiple(variant: Variant) -> int:
    """Vector lengths must split into whole (N, C[, H, W]) batches and stay full-width."""
    if variant.layout == "N":
        return WIDTH
    return math.lcm(WIDTH, variant.channels * 4)


def layout_shape(variant: Variant, n: int) -> tuple[int, ...]:
    c = variant.channels
    if variant.layout == "NC":
        return (n // c, c)
    if variant.layout == "NCHW":
        return (n // (4 * c), c, 2, 2)
    if variant.layout == "NHWC":
        return (n // (4 * c), 2, 2, c)
    return (n,)


def cotangent_scale(n: int) -> float:
    """2**-k with 2**k >= n: exact in every dtype, and n finite terms each at most the
    dtype's max times the scale cannot overflow their sum."""
    return 2.0 ** -max(0, math.ceil(math.log2(max(n, 1))))
