"""`jax.custom_vjp` / `jax.custom_jvp` functions. The vjp `bwd` (or the `jvp` rule) is
called directly for its raw return value; `f.fun`, the undecorated forward, gives the
autodiff reference."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradsafe.backends.base import TargetError
from gradsafe.backends.custom import Adapter, BackwardCall, BackwardError, shape_problem, unpack
from gradsafe.model.types import TargetKind
from gradsafe.numerics.floats import F64

_DTYPES = {"float16": jnp.float16, "bfloat16": jnp.bfloat16,
           "float32": jnp.float32, "float64": jnp.float64}


def _x64(dtype: str) -> contextlib.AbstractContextManager[Any]:
    # x64 only for float64: enabling it globally would change the dtype of constants in
    # the user's float32 code
    return jax.enable_x64(True) if dtype == "float64" else contextlib.nullcontext()


def _np(a: Any) -> F64:
    return np.asarray(jnp.asarray(a).astype(jnp.float32) if jnp.asarray(a).dtype != jnp.float64
                      else a, dtype=np.float64)


class CustomDerivative(Adapter):
    framework = "jax"

    def __init__(self, fn: Any, kind: str) -> None:
        self.fn, self.kind = fn, kind
        attrs = ("fwd", "bwd") if kind == TargetKind.CUSTOM_VJP else ("jvp",)
        if not all(getattr(fn, a, None) is not None for a in (*attrs, "fun")):
            rule = "defvjp(fwd, bwd)" if kind == TargetKind.CUSTOM_VJP else "defjvp(jvp)"
            raise TargetError(f"the {kind} function has no rule: call {rule}")

    def forward64(self, x: F64, labels: F64 | None = None) -> F64:
        with _x64("float64"):
            return _np(self.fn(jnp.asarray(x, dtype=jnp.float64)))

    def backward(self, x: F64, cotangent: F64, dtype: str,
                 labels: F64 | None = None) -> BackwardCall:
        with _x64(dtype):
            xj = jnp.asarray(x, dtype=_DTYPES[dtype])
            if self.kind == TargetKind.CUSTOM_VJP:
                return self._vjp(xj, cotangent)
            return self._jvp(xj, cotangent)

    def _vjp(self, xj: Any, cotangent: F64) -> BackwardCall:
        res = self.fn.fwd(xj)
        if not (isinstance(res, (tuple, list)) and len(res) == 2):
            raise TargetError("the custom_vjp fwd rule must return (y, residuals)")
        y, residuals = res
        forward = _np(y)
        v = jnp.asarray(cotangent, dtype=jnp.asarray(y).dtype)
        try:
            out = self.fn.bwd(residuals, v)
        except Exception as exc:
            raise BackwardError(str(exc)) from exc
        if out is not None and not isinstance(out, (tuple, list)):
            return BackwardCall(forward, None, f"bwd returned {type(out).__name__} instead of "
                                               "a tuple with one cotangent per input (JAX "
                                               "rejects it)", None, None)
        return self._contract(forward, out, xj, "bwd")

    def _jvp(self, xj: Any, cotangent: F64) -> BackwardCall:
        v = jnp.asarray(cotangent, dtype=xj.dtype)
        try:
            out = self.fn.jvp((xj,), (v,))
        except Exception as exc:
            raise BackwardError(str(exc)) from exc
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            what = "None" if out is None else type(out).__name__
            return BackwardCall(_np(self.fn(xj)), None, f"the jvp rule returned {what} "
                                                        "instead of (y, y_dot)", None, None)
        forward = _np(out[0])
        call = self._contract(forward, (out[1],), xj, "the jvp rule")
        if call.problem:
            return call
        # the values: the VJP JAX derives from the hand-written JVP rule (exact transpose)
        _, vjp = jax.vjp(self.fn, xj)
        (g,) = vjp(jnp.asarray(cotangent, dtype=xj.dtype))
        return BackwardCall(forward, _np(g), None, call.grad_dtype, None)

    def _contract(self, forward: F64, out: Any, xj: Any, what: str) -> BackwardCall:
        g, problem = unpack(out, what)
        if problem:
            return BackwardCall(forward, None, problem, None, None)
        if not hasattr(g, "shape") or not hasattr(g, "dtype"):
            return BackwardCall(forward, None, f"{what} returned {type(g).__name__} instead of "
                                               "an array", None, None)
        gdtype = str(jnp.asarray(g).dtype)
        problem = shape_problem(tuple(g.shape), tuple(xj.shape), what)
        if problem:
            return BackwardCall(forward, None, problem, gdtype, None)
        return BackwardCall(forward, _np(g), None, gdtype, None)

    def autodiff64(self, x: F64, cotangent: F64) -> F64 | None:
        with _x64("float64"):
            xj = jnp.asarray(x, dtype=jnp.float64)
            _, vjp = jax.vjp(self.fn.fun, xj)
            (g,) = vjp(jnp.asarray(cotangent, dtype=jnp.float64))
            return _np(g)

    def rule(self) -> Callable[..., Any] | None:
        fn: Callable[..., Any] = self.fn.bwd if self.kind == TargetKind.CUSTOM_VJP else self.fn.jvp
        return fn


def make(obj: Any, kind: str) -> Adapter:
    return CustomDerivative(obj, kind)
