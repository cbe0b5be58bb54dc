"""TensorFlow/Keras backend: eager forward under a GradientTape per chunk."""

from __future__ import annotations

import inspect
import os
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import tensorflow as tf

from gradsafe.backends import keras_layers
from gradsafe.backends.base import (
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

_DTYPES = {"float16": tf.float16, "bfloat16": tf.bfloat16,
           "float32": tf.float32, "float64": tf.float64}


class TensorFlowBackend(Backend):
    name = "tensorflow"

    def version(self) -> str:
        return str(tf.__version__)

    def instantiate(self, obj: Any, kind: str, dtype: str) -> tuple[Fn, str | None]:
        if kind != TargetKind.LAYER and not (isinstance(obj, type) and _is_layer(obj)):
            return obj, None
        return keras_layers.construct(obj, dtype, {})

    def rows(self, columns: list[Any]) -> Any:
        return tf.stack(columns, axis=-1)

    def constant(self, x: Any, value: float, track: bool = False) -> Any:
        if track:
            return tf.stop_gradient(x) * tf.constant(value, x.dtype)
        return tf.fill(tf.shape(x), tf.constant(value, x.dtype))

    def sum_trailing(self, y: Any, ndim: int) -> Any:
        return tf.reduce_sum(tf.cast(y, tf.float64), axis=list(range(ndim, len(y.shape))))

    def per_element(self, fn: Fn) -> Fn:
        def mapped(x: Any) -> Any:
            out = tf.vectorized_map(lambda v: tf.reshape(fn(v[None]), []), x,
                                    fallback_to_while_loop=True)
            return tf.reshape(out, tf.concat([tf.shape(out), [1] * (len(x.shape) - 1)], 0))

        return mapped

    def use_device(self, device: str) -> str | None:
        if device == "cpu":
            return None
        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            raise TargetError(f"--device cuda: TensorFlow {tf.__version__} sees no GPU "
                              "(tensorflow-cpu, or no driver)")
        return f"device: cuda ({gpus[0].name})"  # TensorFlow places ops on the GPU itself

    def sweep_masks(self, fn: Fn, dtype: str, count: int) -> MaskFn:
        """tf.function(jit_compile=True) (XLA) of bit patterns -> forward + gradient ->
        masks; plain tf.function, then eager, when XLA cannot compile the target."""
        if dtype != "float32":
            return super().sweep_masks(fn, dtype, count)

        def body(start: Any) -> Any:
            bits = start + tf.range(count, dtype=tf.int64)
            x = tf.bitcast(tf.cast(bits, tf.uint32), tf.float32)
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = fn(x)
            g = tape.gradient(y, x)
            fin = tf.math.is_finite(y)
            grad_bad = (fin & ~tf.math.is_finite(g)) if g is not None else tf.zeros_like(fin)
            return grad_bad, tf.math.is_nan(y), tf.math.is_inf(y)

        for jit in (True, False):
            compiled = tf.function(body, jit_compile=jit, reduce_retracing=True)
            try:
                compiled(tf.constant(0, tf.int64))
            except Exception:
                continue

            def masks(start: int, compiled: Any = compiled) -> Masks:
                grad_bad, nan, inf = compiled(tf.constant(start, tf.int64))
                return grad_bad.numpy(), nan.numpy(), inf.numpy()

            return masks
        return super().sweep_masks(fn, dtype, count)

    def array_namespace(self) -> Any:
        from gradsafe.backends.tf_xp import NAMESPACE  # imports TensorFlow

        return NAMESPACE

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
            return Evaluation(forward, None, floating=bool(y.dtype.is_floating))
        g = tape.gradient(y, x, output_gradients=tf.ones_like(y))
        if g is None:
            return Evaluation(forward, None)
        return Evaluation(forward, np.asarray(tf.cast(g, tf.float64).numpy(), dtype=np.float64))

    def trace(self, fn: Fn, xs: F64, dtype: str, recorder: Recorder,
              grad: bool = True) -> Evaluation:
        x = tf.cast(tf.constant(xs, dtype=tf.float64), _DTYPES[dtype])
        leaves: list[Any] = []
        with tf.GradientTape(persistent=False) as tape:
            tape.watch(x)

            def wrap(v: Any) -> tuple[Any, Any, F64] | None:
                # isinstance, not tf.is_tensor: that probes attributes of any object, and
                # a namespace object (`xp`) may refuse unknown ones
                if not isinstance(v, tf.Tensor) or v.dtype.is_complex or v.dtype == tf.string:
                    return None
                try:
                    flat = np.asarray(tf.cast(v, tf.float64).numpy(), dtype=np.float64).ravel()
                except (AttributeError, TypeError, ValueError):
                    return None  # a symbolic tensor (inside tf.function): no value to show
                if not grad or not v.dtype.is_floating:
                    return v, None, flat
                eps = tf.fill(tf.shape(v), tf.constant(-0.0, v.dtype))
                tape.watch(eps)
                leaves.append(eps)
                return v + eps, eps, flat

            recorder.start(wrap)
            try:
                y = fn(x)
            finally:
                recorder.stop()
        if y is None or not hasattr(y, "dtype"):
            raise TargetError(f"returned {type(y).__name__} instead of a tensor")
        y = tf.convert_to_tensor(y)
        forward = np.asarray(tf.cast(y, tf.float64).numpy(), dtype=np.float64).ravel()
        if not grad or not y.dtype.is_floating:
            return Evaluation(forward, None)
        grads = tape.gradient(y, [x, *leaves], output_gradients=tf.ones_like(y),
                              unconnected_gradients=tf.UnconnectedGradients.ZERO)
        cots = {id(e): g for e, g in zip(leaves, grads[1:], strict=True)}
        for r in recorder.records:
            if r.handle is not None:
                g = cots[id(r.handle)]
                r.cot = np.asarray(tf.cast(g, tf.float64).numpy(), dtype=np.float64).ravel()
        return Evaluation(forward, np.asarray(tf.cast(grads[0], tf.float64).numpy(),
                                              dtype=np.float64).ravel())

    def build(self, obj: Any, kind: str, dtype: str, variant: Variant) -> Instance:
        import keras

        if variant.seed is not None:
            keras.utils.set_random_seed(variant.seed)
        kwargs = dict(variant.params)
        note = None
        if isinstance(obj, type):
            layer, note = keras_layers.construct(obj, dtype, kwargs)
        else:
            layer = obj
        try:
            takes_training = "training" in inspect.signature(layer.call).parameters
        except (AttributeError, TypeError, ValueError):
            takes_training = False
        training = None if variant.mode is None else variant.mode == "train"
        tf_dtype = _DTYPES[dtype]

        def fn(x: Any) -> Any:
            if snapshot:  # random layers: restore the seed generators' state every call
                for var, value in zip(layer.variables, snapshot, strict=True):
                    var.assign(value)
            shaped = tf.reshape(x, layout_shape(variant, int(tf.size(x))))
            if takes_training and training is not None:
                y = layer(shaped, training=training)
            else:
                y = layer(shaped)
            if y is None or not hasattr(y, "shape"):
                raise TargetError(f"returned {type(y).__name__} instead of a tensor")
            check_output(tuple(y.shape), tuple(shaped.shape), y, variant.layout)
            return tf.reshape(y, [-1])

        snapshot: list[Any] = []
        multiple = layout_multiple(variant)
        fn(tf.zeros([multiple], dtype=tf_dtype))  # builds the layer's weights
        if variant.seed is not None:
            snapshot = [tf.identity(v) for v in layer.variables]
        weights = list(layer.trainable_weights)
        names = tuple(str(getattr(w, "path", None) or w.name) for w in weights)

        def by_weights(tape: tf.GradientTape, out: Any) -> dict[str, F64]:
            """The VJP of `out` (recorded on `tape`) with respect to each weight, flattened
            to float64, for a cotangent of cotangent_scale(n) everywhere; zeros for a weight
            it does not depend on, or for no `out` at all."""
            if out is None:
                return {n: np.zeros(int(tf.size(w))) for n, w in zip(names, weights,
                                                                     strict=True)}
            cot = tf.fill(tf.shape(out),
                          tf.constant(cotangent_scale(int(tf.size(out))), out.dtype))
            grads = tape.gradient(out, weights, output_gradients=cot)
            return {n: (np.zeros(int(tf.size(w))) if g is None else
                        np.asarray(tf.cast(tf.convert_to_tensor(g), tf.float64).numpy(),
                                   dtype=np.float64).ravel())
                    for n, w, g in zip(names, weights, grads, strict=True)}

        def param_grad(xs: F64) -> dict[str, F64]:
            x = tf.cast(tf.constant(xs, dtype=tf.float64), tf_dtype)
            with tf.GradientTape() as tape:
                y = fn(x)
            return by_weights(tape, y)

        def mixed_grad(xs: F64) -> dict[str, F64]:
            x = tf.cast(tf.constant(xs, dtype=tf.float64), tf_dtype)
            with tf.GradientTape() as outer:
                with tf.GradientTape() as inner:
                    inner.watch(x)
                    y = fn(x)
                g = inner.gradient(y, x, output_gradients=tf.ones_like(y))
            return by_weights(outer, g)

        return Instance(fn, note, param_grad if weights else None, names, multiple,
                        mixed_grad if weights else None)


def _is_layer(obj: type) -> bool:
    return any(c.__name__ == "Layer" and "keras" in c.__module__ for c in obj.__mro__)


BACKEND = TensorFlowBackend()
