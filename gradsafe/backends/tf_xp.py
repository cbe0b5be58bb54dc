"""The array-API functions activations use, on TensorFlow tensors, keeping their dtype.

array-api-compat covers torch and JAX but not TensorFlow, and `tf.experimental.numpy` is no
substitute: it fails on bfloat16 unless NumPy behaviour is switched on, and switching it on
promotes float16 to float32 process-wide, which would hide exactly the float16 overflows a
sweep looks for. So `def act(x, xp)` gets this small namespace over `tf.math`: each function
converts Python scalars to the dtype of its tensor arguments, as the standard prescribes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import tensorflow as tf

from gradsafe.backends.base import TargetError

_SAME = ("abs", "acos", "acosh", "add", "asin", "asinh", "atan", "atan2", "atanh", "ceil",
         "cos", "cosh", "equal", "exp", "expm1", "floor", "greater", "greater_equal", "less",
         "less_equal", "log", "log1p", "logical_and", "logical_not", "logical_or", "maximum",
         "minimum", "multiply", "negative", "not_equal", "pow", "round", "sign", "sin", "sinh",
         "sqrt", "square", "subtract", "tan", "tanh")


def _dtype_of(args: tuple[Any, ...]) -> Any:
    for a in args:
        if isinstance(a, (tf.Tensor, tf.Variable)) and a.dtype.is_floating:
            return a.dtype
    for a in args:
        if isinstance(a, (tf.Tensor, tf.Variable)):
            return a.dtype
    return None


def _scalars_to(dtype: Any, args: tuple[Any, ...]) -> list[Any]:
    if dtype is None:
        return list(args)
    return [tf.constant(a, dtype=dtype) if isinstance(a, (int, float)) and
            not isinstance(a, bool) else a for a in args]


def _wrap(op: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        return op(*_scalars_to(_dtype_of(args), args), **kwargs)

    return call


def _where(cond: Any, a: Any, b: Any) -> Any:
    a, b = _scalars_to(_dtype_of((a, b)), (a, b))
    return tf.where(cond, a, b)


def _clip(x: Any, min: Any = None, max: Any = None) -> Any:  # the standard's names
    y = x
    if min is not None:
        y = tf.maximum(y, tf.cast(min, x.dtype))
    if max is not None:
        y = tf.minimum(y, tf.cast(max, x.dtype))
    return y


def _logaddexp(a: Any, b: Any) -> Any:
    a, b = _scalars_to(_dtype_of((a, b)), (a, b))
    m = tf.maximum(a, b)
    return m + tf.math.log1p(tf.exp(-tf.abs(a - b)))


def _asarray(obj: Any, dtype: Any = None, **_: Any) -> Any:
    return tf.convert_to_tensor(obj, dtype=dtype)


def _build() -> dict[str, Any]:
    ns: dict[str, Any] = {name: _wrap(getattr(tf.math, name)) for name in _SAME}
    ns.update({
        "divide": _wrap(tf.math.divide), "positive": tf.identity,
        "log2": lambda x: tf.math.log(x) / tf.constant(math.log(2.0), x.dtype),
        "log10": lambda x: tf.math.log(x) / tf.constant(math.log(10.0), x.dtype),
        "isnan": tf.math.is_nan, "isinf": tf.math.is_inf, "isfinite": tf.math.is_finite,
        "where": _where, "clip": _clip, "logaddexp": _logaddexp, "asarray": _asarray,
        "astype": lambda x, dtype, **_: tf.cast(x, dtype),
        "zeros_like": lambda x, **_: tf.zeros_like(x),
        "ones_like": lambda x, **_: tf.ones_like(x),
        "full_like": lambda x, v, **_: tf.fill(tf.shape(x), tf.constant(v, x.dtype)),
        "e": math.e, "pi": math.pi, "inf": math.inf, "nan": math.nan,
        "float16": tf.float16, "bfloat16": tf.bfloat16, "float32": tf.float32,
        "float64": tf.float64, "bool": tf.bool,
    })
    return ns


class Namespace:
    """Attribute access like a module: `xp.exp`, `xp.where`, `xp.float32`."""

    def __init__(self) -> None:
        self._ns = _build()

    def __getattr__(self, name: str) -> Any:
        try:
            return self._ns[name]
        except KeyError:
            raise TargetError(f"xp.{name} is not in gradsafe's TensorFlow array-API namespace "
                              f"(it has {', '.join(sorted(self._ns))})") from None


NAMESPACE = Namespace()
