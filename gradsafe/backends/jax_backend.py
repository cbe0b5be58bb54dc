"""JAX backend: eager forward and `jax.vjp` per chunk; float64 under `jax.enable_x64`."""

from __future__ import annotations

import contextlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradsafe.backends.base import Backend, Evaluation, Fn, TargetError, check_output
from gradsafe.floats import F64

_DTYPES = {"float16": jnp.float16, "bfloat16": jnp.bfloat16,
           "float32": jnp.float32, "float64": jnp.float64}


class JaxBackend(Backend):
    name = "jax"

    def version(self) -> str:
        return str(jax.__version__)

    def instantiate(self, obj: Any, kind: str, dtype: str) -> tuple[Fn, str | None]:
        return obj, None

    def run_chunk(self, fn: Fn, xs: F64, dtype: str, grad: bool) -> Evaluation:
        # x64 only for float64 sweeps: enabling it globally would change the dtype of
        # constants such as jnp.array(0.5) in the user's float32 code.
        ctx = jax.enable_x64(True) if dtype == "float64" else contextlib.nullcontext()
        with ctx:
            x = jnp.asarray(xs, dtype=_DTYPES[dtype])
            if not grad:
                y = fn(x)
                return Evaluation(_to_np(y, x), None)
            try:
                y, vjp = jax.vjp(fn, x)
            except TypeError as exc:
                if "integer" in str(exc) or "bool" in str(exc):
                    return Evaluation(_to_np(fn(x), x), None)
                raise
            forward = _to_np(y, x)
            if not jnp.issubdtype(y.dtype, jnp.floating):
                return Evaluation(forward, None)
            (g,) = vjp(jnp.ones_like(y))
            return Evaluation(forward, np.asarray(g.astype(jnp.float64) if dtype == "float64"
                                                  else g.astype(jnp.float32), dtype=np.float64))


def _to_np(y: Any, x: Any) -> F64:
    if y is None:
        raise TargetError("returned None instead of an array")
    if not hasattr(y, "shape"):
        raise TargetError(f"returned {type(y).__name__} instead of an array")
    check_output(tuple(y.shape), tuple(x.shape), y)
    return np.asarray(jnp.asarray(y).astype(jnp.float32) if y.dtype != jnp.float64 else y,
                      dtype=np.float64)


BACKEND = JaxBackend()
