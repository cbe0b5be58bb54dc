"""TensorFlow/Keras backend: eager forward under a GradientTape per chunk."""

from __future__ import annotations

import inspect
import os
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import tensorflow as tf

from gradsafe.backends.base import (
    Backend,
    Evaluation,
    Fn,
    TargetError,
    check_output,
)
from gradsafe.floats import F64

_DTYPES = {"float16": tf.float16, "bfloat16": tf.bfloat16,
           "float32": tf.float32, "float64": tf.float64}


class TensorFlowBackend(Backend):
    name = "tensorflow"

    def version(self) -> str:
        return str(tf.__version__)

    def instantiate(self, obj: Any, kind: str, dtype: str) -> tuple[Fn, str | None]:
        if kind != "layer" and not (isinstance(obj, type) and _is_layer(obj)):
            return obj, None
        # A Keras layer casts inputs to its compute dtype (float32 by default), which
        # would hide float16 overflows: build it with the dtype under test.
        try:
            params = inspect.signature(obj).parameters
            takes_dtype = "dtype" in params or any(
                p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        except (TypeError, ValueError):
            takes_dtype = False
        if takes_dtype:
            return obj(dtype=dtype), f"keras dtype policy {dtype}"
        return obj(), "keras default dtype policy (the layer takes no dtype argument)"

    def run_chunk(self, fn: Fn, xs: F64, dtype: str, grad: bool) -> Evaluation:
        x = tf.cast(tf.constant(xs, dtype=tf.float64), _DTYPES[dtype])
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
        if y is None:
            raise TargetError("returned None instead of a tensor")
        if not isinstance(y, (tf.Tensor, tf.Variable)):
            try:
                y = tf.convert_to_tensor(y)
            except (TypeError, ValueError):
                raise TargetError(f"returned {type(y).__name__} instead of a tensor") from None
        check_output(tuple(y.shape), tuple(x.shape), y)
        forward = np.asarray(tf.cast(y, tf.float64).numpy(), dtype=np.float64)
        if not grad or not y.dtype.is_floating:
            return Evaluation(forward, None)
        g = tape.gradient(y, x, output_gradients=tf.ones_like(y))
        if g is None:
            return Evaluation(forward, None)
        return Evaluation(forward, np.asarray(tf.cast(g, tf.float64).numpy(), dtype=np.float64))


def _is_layer(obj: type) -> bool:
    return any(c.__name__ == "Layer" and "keras" in c.__module__ for c in obj.__mro__)


BACKEND = TensorFlowBackend()
