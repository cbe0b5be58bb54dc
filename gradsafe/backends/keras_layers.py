"""Keras 3 layers written with `keras.ops`, built under the torch or JAX Keras backend.

The worker sets KERAS_BACKEND to its own framework, so the layer's weights are torch
Parameters or JAX arrays and its call runs on that framework's kernels. TensorFlow keeps its
own path (tensorflow_backend.py). Only called from inside a worker; keras loads lazily.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gradsafe.backends.base import TargetError, check_output, layout_multiple, layout_shape
from gradsafe.model.types import Variant


@dataclass
class KerasLayer:
    layer: Any
    note: str
    call: Callable[[Any], Any]  # flat tensor -> flat tensor, in the variant's layout
    multiple: int
    kwargs: dict[str, Any]  # training=True/False for mode-dependent layers


def is_keras_layer(obj: Any) -> bool:
    mro = obj.__mro__ if isinstance(obj, type) else type(obj).__mro__
    return any(c.__name__ == "Layer" and c.__module__.startswith("keras") for c in mro)


def _takes(obj: Any, name: str) -> bool:
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD
                                 for p in params.values())


def construct(obj: Any, dtype: str, kwargs: dict[str, Any]) -> tuple[Any, str]:
    """The layer with the dtype under test, and a note saying which dtype policy it has. A
    Keras layer casts inputs to its compute dtype (float32 by default), which would hide
    float16 overflows; one that takes no dtype argument keeps the default policy. The one
    dtype-policy rule of every backend (TensorFlow's too)."""
    if _takes(obj, "dtype"):
        return obj(dtype=dtype, **kwargs), f"keras dtype policy {dtype}"
    return obj(**kwargs), "keras default dtype policy (the layer takes no dtype argument)"


def build(obj: Any, dtype: str, variant: Variant | None, zeros: Callable[[int], Any]
          ) -> KerasLayer:
    """The layer with the dtype under test (see construct), built by one call on zeros."""
    import keras

    v = variant or Variant()
    if v.seed is not None:
        keras.utils.set_random_seed(v.seed)
    kwargs = dict(v.params)
    if isinstance(obj, type):
        layer, note = construct(obj, dtype, kwargs)
    else:
        layer, note = obj, "keras layer instance as given"
    kw: dict[str, Any] = {}
    if v.mode is not None and _takes(getattr(layer, "call", None), "training"):
        kw["training"] = v.mode == "train"
    ops = keras.ops

    def call(x: Any) -> Any:
        shaped = ops.reshape(x, layout_shape(v, int(ops.size(x))))
        y = layer(shaped, **kw)
        if y is None or not hasattr(y, "shape"):
            raise TargetError(f"returned {type(y).__name__} instead of a tensor")
        check_output(tuple(y.shape), tuple(shaped.shape), y, v.layout)
        return ops.reshape(y, (-1,))

    multiple = layout_multiple(v)
    call(zeros(multiple))  # creates the weights
    return KerasLayer(layer, note, call, multiple, kw)
