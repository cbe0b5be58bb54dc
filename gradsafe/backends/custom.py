"""The interface to a hand-written gradient, one adapter per framework (lazy imports).

An adapter exposes the pieces `gradsafe.check.gradcheck` compares: the forward in float64 (for the
numeric derivative), the hand-written backward called directly (so its raw return value,
shape and dtype can be checked, and the incoming gradient compared before and after), and,
where the framework can reach the undecorated forward, its autodiff in float64.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gradsafe.numerics.floats import F64

_MODULES = {"torch": "custom_torch", "tensorflow": "custom_tensorflow", "jax": "custom_jax",
            "numpy": "custom_numpy"}


class BackwardError(Exception):
    """The hand-written backward raised; the original exception is the __cause__."""


@dataclass(frozen=True)
class BackwardCall:
    forward: F64  # the forward in the dtype under test, as float64
    gradient: F64 | None  # the hand-written gradient, as float64; None if unusable
    problem: str | None  # how the backward breaks its contract (GS303), if it does
    grad_dtype: str | None  # dtype of the returned gradient
    incoming_after: F64 | None  # the incoming gradient after the call, if it changed (GS302)


class Adapter(ABC):
    framework: str
    dtypes: tuple[str, ...] = ("float16", "bfloat16", "float32", "float64")
    needs_labels = False  # a loss layer: forward(x, t) -> scalar, backward(dout=1)

    @abstractmethod
    def forward64(self, x: F64, labels: F64 | None = None) -> F64:
        """The target's forward in float64 (no gradient)."""

    @abstractmethod
    def backward(self, x: F64, cotangent: F64, dtype: str,
                 labels: F64 | None = None) -> BackwardCall:
        """Forward in dtype, then the hand-written backward called directly."""

    def autodiff64(self, x: F64, cotangent: F64) -> F64 | None:
        """The framework's autodiff of the undecorated forward in float64, if reachable."""
        return None

    def before_forward(self, x: F64, cotangent: F64, dtype: str) -> BaseException | None:
        """What backward raises on a fresh object that never ran forward (NumPy layers)."""
        return None

    @abstractmethod
    def rule(self) -> Callable[..., Any] | None:
        """The hand-written backward/JVP function, to point at its source line."""


def get_adapter(framework: str, obj: Any, kind: str) -> Adapter:
    module = importlib.import_module(f"gradsafe.backends.{_MODULES[framework]}")
    adapter: Adapter = module.make(obj, kind)
    return adapter


def unpack(out: Any, what: str) -> tuple[Any, str | None]:
    """The single gradient out of a backward's return value, or why there is none."""
    if isinstance(out, (tuple, list)):
        if len(out) == 0:
            return None, f"{what} returned an empty {type(out).__name__}"
        extra = [o for o in out[1:] if o is not None]
        if extra:
            return None, f"{what} returned {len(out)} gradients for a function of 1 input"
        out = out[0]
    if out is None:
        return None, f"{what} returned None instead of the gradient"
    return out, None


def shape_problem(got: tuple[int, ...], want: tuple[int, ...], what: str) -> str | None:
    if tuple(got) == tuple(want):
        return None
    return f"{what} returned a gradient of shape {tuple(got)} for an input of shape {tuple(want)}"
