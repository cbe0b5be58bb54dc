"""f -> f' as a function the same framework can differentiate again (for --order 2).

Sweeping f' with the ordinary forward + VJP gives f' as the "forward" and f'' as the
"gradient", each computed by the framework's own double backward: torch
`autograd.grad(create_graph=True)`, JAX reverse-over-reverse (a VJP of a VJP: forward mode
cannot enter a `custom_vjp`), TensorFlow a GradientTape nested in the sweep's tape. The
functions are elementwise (sweep.require_elementwise), so the VJP with a ones cotangent is
f'(x_i) at every element and its own VJP is f''(x_i).

Frameworks are imported inside each function: this module is imported by the worker only
once a backend (and so its framework) is loaded.
"""

from __future__ import annotations

from typing import Any

from gradsafe.backends.base import Backend, Fn, TargetError

# what a framework raises when a hand-written backward cannot be differentiated again
# (matched on the message, lower case; see NotTwiceDifferentiable)
_ONCE_MARKERS = ("once_differentiable", "can't call numpy() on tensor that requires grad",
                 "tracerarrayconversionerror", "concrete value", "abstract tracer value",
                 "jvp of pure_callback", "pure_callback", "numpy() is only available")


class NotTwiceDifferentiable(TargetError):
    """The target's first derivative comes from code that cannot be differentiated again
    (a once_differentiable Function, a NumPy backward, a custom_vjp whose bwd leaves JAX)."""


def derivative(backend: Backend, fn: Fn) -> Fn:
    """f' of an elementwise f, differentiable again by the backend's framework."""
    if backend.name == "torch":
        return _torch(fn)
    if backend.name == "jax":
        return _jax(fn)
    if backend.name == "tensorflow":
        return _tensorflow(fn)
    raise TargetError(f"--order 2: the {backend.name} backend has no second derivative "
                      "(hand-written NumPy backward passes are differentiated once)")


def not_twice(exc: BaseException) -> bool:
    """Whether exc says a hand-written backward was differentiated a second time."""
    text = f"{type(exc).__name__}: {exc}".lower()
    return any(m in text for m in _ONCE_MARKERS)


def _torch(fn: Fn) -> Fn:
    import torch

    def first(x: torch.Tensor) -> torch.Tensor:
        # the sweep's x requires grad when it wants f'': keep the graph of the backward
        create = x.requires_grad
        xi = x if create else x.detach().requires_grad_(True)
        with torch.enable_grad():
            y = fn(xi)
            if not isinstance(y, torch.Tensor):
                raise TargetError(f"returned {type(y).__name__} instead of a torch.Tensor")
            if not y.requires_grad or not y.is_floating_point():
                return torch.zeros_like(x)
            (g,) = torch.autograd.grad(y.sum(), xi, create_graph=create, allow_unused=True)
        if g is None:
            return torch.zeros_like(x)
        return g if create else g.detach()

    return first


def _jax(fn: Fn) -> Fn:
    import jax
    import jax.numpy as jnp

    def first(x: Any) -> Any:
        y, vjp = jax.vjp(fn, x)
        if not jnp.issubdtype(y.dtype, jnp.floating):
            return jnp.zeros_like(x)
        (g,) = vjp(jnp.ones_like(y))
        return g

    return first


def _tensorflow(fn: Fn) -> Fn:
    import tensorflow as tf

    def first(x: Any) -> Any:
        # nested in the sweep's own tape, which records this gradient computation too
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
        if y is None or not hasattr(y, "dtype") or not y.dtype.is_floating:
            return tf.zeros_like(x)
        g = tape.gradient(y, x, output_gradients=tf.ones_like(y))
        return tf.zeros_like(x) if g is None else tf.convert_to_tensor(g)

    return first
