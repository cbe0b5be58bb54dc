"""`tf.custom_gradient` functions: the undecorated function returns (y, grad_fn); grad_fn is
called directly, and a GradientTape over the undecorated forward gives the autodiff
reference."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import tensorflow as tf

from gradsafe.backends.base import TargetError
from gradsafe.backends.custom import (
    Adapter,
    BackwardCall,
    BackwardError,
    shape_problem,
    unpack,
)
from gradsafe.numerics.floats import F64

_DTYPES = {"float16": tf.float16, "bfloat16": tf.bfloat16,
           "float32": tf.float32, "float64": tf.float64}


def _np(t: Any) -> F64:
    return np.asarray(tf.cast(t, tf.float64).numpy(), dtype=np.float64)


class CustomGradient(Adapter):
    framework = "tensorflow"

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        raw = getattr(fn, "__wrapped__", None)
        if raw is None:
            raise TargetError("cannot reach the function under tf.custom_gradient")
        self.raw: Callable[..., Any] = raw
        self.grad_fn: Callable[..., Any] | None = None

    def _raw(self, x: Any) -> tuple[Any, Callable[..., Any]]:
        res = self.raw(x)
        if not (isinstance(res, (tuple, list)) and len(res) == 2 and callable(res[1])):
            raise TargetError("a tf.custom_gradient function must return (y, grad_fn)")
        self.grad_fn = res[1]
        return res[0], res[1]

    def forward64(self, x: F64, labels: F64 | None = None) -> F64:
        return _np(self.fn(tf.constant(np.asarray(x, np.float64), dtype=tf.float64)))

    def backward(self, x: F64, cotangent: F64, dtype: str,
                 labels: F64 | None = None) -> BackwardCall:
        xt = tf.cast(tf.constant(np.asarray(x, np.float64)), _DTYPES[dtype])
        y, grad_fn = self._raw(xt)
        y = tf.convert_to_tensor(y)
        forward = _np(y)
        v = tf.cast(tf.constant(np.asarray(cotangent, np.float64)), y.dtype)
        try:
            out = grad_fn(v)
        except Exception as exc:
            raise BackwardError(str(exc)) from exc
        g, problem = unpack(out, "grad_fn")
        if problem:
            return BackwardCall(forward, None, problem, None, None)
        try:
            g = tf.convert_to_tensor(g)
        except (TypeError, ValueError):
            return BackwardCall(forward, None, f"grad_fn returned {type(g).__name__} instead "
                                               "of a tensor", None, None)
        if not g.dtype.is_floating:
            return BackwardCall(forward, None, f"grad_fn returned a {g.dtype.name} tensor",
                                None, None)
        problem = shape_problem(tuple(g.shape), tuple(xt.shape), "grad_fn")
        if problem:
            return BackwardCall(forward, None, problem, g.dtype.name, None)
        return BackwardCall(forward, _np(g), None, g.dtype.name, None)

    def autodiff64(self, x: F64, cotangent: F64) -> F64 | None:
        xt = tf.constant(np.asarray(x, np.float64), dtype=tf.float64)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y, _ = self._raw(xt)
        g = tape.gradient(y, xt, output_gradients=tf.constant(cotangent, dtype=y.dtype))
        return None if g is None else _np(g)

    def rule(self) -> Callable[..., Any] | None:
        if self.grad_fn is None:
            self._raw(tf.constant([1.0], dtype=tf.float32))
        return self.grad_fn


def make(obj: Any, kind: str) -> Adapter:
    return CustomGradient(obj)
