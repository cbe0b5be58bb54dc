"""JAX backend: eager forward and `jax.vjp` per chunk; float64 under `jax.enable_x64`."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

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

_DTYPES = {"float16": jnp.float16, "bfloat16": jnp.bfloat16,
           "float32": jnp.float32, "float64": jnp.float64}


class JaxBackend(Backend):
    name = "jax"

    def version(self) -> str:
        return str(jax.__version__)

    def use_device(self, device: str) -> str | None:
        if device == "cpu":
            return None
        if jax.default_backend() != "gpu":
            raise TargetError(f"--device cuda: jax {jax.__version__} sees no GPU (install "
                              "jax[cuda12])")
        return f"device: cuda ({jax.devices()[0].device_kind})"

    def instantiate(self, obj: Any, kind: str, dtype: str) -> tuple[Fn, str | None]:
        if kind == TargetKind.LAYER or keras_layers.is_keras_layer(obj):
            with jax.enable_x64(True) if dtype == "float64" else contextlib.nullcontext():
                kl = keras_layers.build(obj, dtype, None,
                                        lambda n: jnp.zeros(n, _DTYPES[dtype]))
            return kl.call, kl.note
        return obj, None

    def rows(self, columns: list[Any]) -> Any:
        return jnp.stack(columns, axis=-1)

    def constant(self, x: Any, value: float, track: bool = False) -> Any:
        if track:
            return jax.lax.stop_gradient(x) * jnp.asarray(value, x.dtype)
        return jnp.full_like(x, value)

    def sum_trailing(self, y: Any, ndim: int) -> Any:
        wide = jnp.result_type(float)  # float64 under x64 (the float64 sweep), else float32
        return jnp.sum(y.astype(wide), axis=tuple(range(ndim, y.ndim)))

    def per_element(self, fn: Fn) -> Fn:
        def mapped(x: Any) -> Any:
            out = jax.vmap(lambda v: jnp.reshape(fn(v[None]), ()))(x)
            return out.reshape(out.shape + (1,) * (x.ndim - 1))

        return mapped

    def array_namespace(self) -> Any:
        return jnp  # jax.numpy implements the array API standard itself

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
                    return Evaluation(_to_np(fn(x), x), None, floating=False)
                raise
            forward = _to_np(y, x)
            if not jnp.issubdtype(y.dtype, jnp.floating):
                return Evaluation(forward, None, floating=False)
            (g,) = vjp(jnp.ones_like(y))
            return Evaluation(forward, np.asarray(g.astype(jnp.float64) if dtype == "float64"
                                                  else g.astype(jnp.float32), dtype=np.float64))

    def trace(self, fn: Fn, xs: F64, dtype: str, recorder: Recorder,
              grad: bool = True) -> Evaluation:
        """Two passes: an eager forward records the values (tracers have none), then a VJP
        with one -0.0 input per recorded floating value, added in the same order."""
        ctx = jax.enable_x64(True) if dtype == "float64" else contextlib.nullcontext()
        with ctx:
            x = jnp.asarray(xs, dtype=_DTYPES[dtype])

            def is_float(v: Any) -> bool:
                return bool(jnp.issubdtype(v.dtype, jnp.floating))

            def record(v: Any) -> tuple[Any, Any, F64] | None:
                if not isinstance(v, jax.Array) or isinstance(v, jax.core.Tracer):
                    return None
                if jnp.issubdtype(v.dtype, jnp.complexfloating):
                    return None
                flat = np.asarray(v).astype(np.float64).ravel()
                return v, ("float" if grad and is_float(v) else None), flat

            recorder.start(record)
            try:
                y = fn(x)
            finally:
                recorder.stop()
            forward = _to_np(y, x).ravel()
            if not grad or not is_float(y):
                return Evaluation(forward, None)
            floats = [r for r in recorder.records if r.handle is not None]
            shapes = [r.value.size for r in floats]

            def wrap(v: Any) -> tuple[Any, Any, F64] | None:
                if not isinstance(v, jax.Array) or jnp.issubdtype(v.dtype,
                                                                   jnp.complexfloating):
                    return None
                if not is_float(v):
                    return v, None, np.zeros(0)
                k = counter[0]
                counter[0] += 1
                if k >= len(eps_in) or int(v.size) != shapes[k]:
                    raise TargetError("the second tracing pass took another path")
                return v + eps_in[k].reshape(v.shape).astype(v.dtype), None, np.zeros(0)

            counter = [0]
            eps_in: list[Any] = []

            def with_eps(x_: Any, eps: list[Any]) -> Any:
                eps_in[:] = eps
                counter[0] = 0
                recorder.start(wrap, replay=True)
                try:
                    return fn(x_)
                finally:
                    recorder.stop()

            zeros = [jnp.full((n,), -0.0, dtype=_DTYPES[dtype]) for n in shapes]
            _, vjp = jax.vjp(with_eps, x, zeros)
            gx, geps = vjp(jnp.ones_like(y))
            for r, g in zip(floats, geps, strict=True):
                r.cot = np.asarray(g).astype(np.float64).ravel()
            return Evaluation(forward, np.asarray(gx).astype(np.float64).ravel())

    def sweep_masks(self, fn: Fn, dtype: str, count: int) -> MaskFn:
        """One jax.jit of bit patterns -> forward + VJP -> masks; eager if it cannot trace
        (Python control flow on values)."""
        if dtype != "float32":
            return super().sweep_masks(fn, dtype, count)

        def body(start: Any) -> Any:
            bits = start + jnp.arange(count, dtype=jnp.uint32)
            x = jax.lax.bitcast_convert_type(bits, jnp.float32)
            y, vjp = jax.vjp(fn, x)
            (g,) = vjp(jnp.ones_like(y))
            fin = jnp.isfinite(y)
            return fin & ~jnp.isfinite(g), jnp.isnan(y), jnp.isinf(y)

        compiled = jax.jit(body)
        try:
            np.asarray(compiled(jnp.uint32(0))[0])  # compile now, fall back on failure
        except Exception:
            return super().sweep_masks(fn, dtype, count)

        def masks(start: int) -> Masks:
            grad_bad, nan, inf = compiled(jnp.uint32(start))
            return np.asarray(grad_bad), np.asarray(nan), np.asarray(inf)

        return masks

    def build(self, obj: Any, kind: str, dtype: str, variant: Variant) -> Instance:
        ctx = jax.enable_x64(True) if dtype == "float64" else contextlib.nullcontext()
        with ctx:
            keras_names: tuple[str, ...] | None = None
            if kind == TargetKind.LAYER or keras_layers.is_keras_layer(obj):
                call, weights, note, keras_names = _keras(obj, dtype, variant)
            elif _is_linen(obj):  # discovery calls every flax Module "nnx"
                call, weights = _linen(obj, dtype, variant)
                note = f"flax linen parameters (init with PRNGKey(0)) cast to {dtype}"
            elif kind == TargetKind.NNX or _is_nnx(obj):
                call, weights = _nnx(obj, dtype, variant)
                note = f"flax nnx parameters cast to {dtype}"
            elif kind == TargetKind.TRAX or hasattr(obj, "forward"):
                call, weights = _trax(obj, dtype, variant)
                note = f"trax-style weights cast to {dtype}"
            else:
                raise TargetError(f"'{getattr(obj, '__name__', obj)}' is not a Flax NNX "
                                  "module or a Trax-style layer")
        jdtype = _DTYPES[dtype]
        paths, treedef = jax.tree_util.tree_flatten_with_path(weights)
        names = tuple(jax.tree_util.keystr(path) or "weights" for path, _ in paths)
        names = keras_names if keras_names is not None else names

        def fn_with(w: Any, x: Any) -> Any:
            shaped = x.reshape(layout_shape(variant, int(x.size)))
            y = call(w, shaped)
            if y is None or not hasattr(y, "shape"):
                raise TargetError(f"returned {type(y).__name__} instead of an array")
            check_output(tuple(y.shape), tuple(shaped.shape), y, variant.layout)
            return y.reshape(-1)

        def fn(x: Any) -> Any:
            return fn_with(weights, x)

        def by_weights(xs: F64, out: Callable[[Any, Any], Any]) -> dict[str, F64]:
            """The VJP of out(weights, x) with respect to the weights, flattened to float64,
            for a cotangent of cotangent_scale(n) everywhere."""
            with jax.enable_x64(True) if dtype == "float64" else contextlib.nullcontext():
                x = jnp.asarray(xs, dtype=jdtype)
                y, vjp = jax.vjp(lambda w: out(w, x), weights)
                (g,) = vjp(jnp.full_like(y, cotangent_scale(int(y.size))))
                leaves = jax.tree_util.tree_leaves(g)
                return {n: np.asarray(jnp.asarray(leaf).astype(
                            jnp.float64 if dtype == "float64" else jnp.float32),
                            dtype=np.float64).ravel()
                        for n, leaf in zip(names, leaves, strict=True)}

        def first(w: Any, x: Any) -> Any:  # f'(x) as a function of the weights
            y, vjp = jax.vjp(lambda x_: fn_with(w, x_), x)
            return vjp(jnp.ones_like(y))[0]

        def param_grad(xs: F64) -> dict[str, F64]:
            return by_weights(xs, fn_with)

        def mixed_grad(xs: F64) -> dict[str, F64]:
            return by_weights(xs, first)

        del treedef
        shown = note if names or keras_names is not None else None  # a Keras dtype policy
        return Instance(fn, shown, param_grad if names else None, names,
                        layout_multiple(variant), mixed_grad if names else None)


def _keras(obj: Any, dtype: str, variant: Variant
           ) -> tuple[Any, Any, str, tuple[str, ...]]:
    """A Keras 3 layer under the JAX Keras backend, as a pure function of its trainable
    variables (`stateless_call`); the rest of its state (seed generators included) is
    passed fresh on every call, so a seeded layer draws the same numbers each time."""
    kl = keras_layers.build(obj, dtype, variant, lambda n: jnp.zeros(n, _DTYPES[dtype]))
    layer = kl.layer
    trainable = [v.value for v in layer.trainable_variables]
    rest = [v.value for v in layer.non_trainable_variables]

    def call(w: Any, x: Any) -> Any:
        y, _ = layer.stateless_call(w, rest, x, **kl.kwargs)
        return y

    names = tuple(str(getattr(v, "path", None) or v.name) for v in layer.trainable_variables)
    return call, trainable, kl.note, names


def _is_nnx(obj: Any) -> bool:
    return any(c.__name__ == "Module" and c.__module__.startswith("flax.nnx")
               for c in getattr(obj, "__mro__", ()))


def _is_linen(obj: Any) -> bool:
    return any(c.__name__ == "Module" and c.__module__.startswith("flax.linen")
               for c in getattr(obj, "__mro__", type(obj).__mro__))


def _linen(obj: Any, dtype: str, variant: Variant) -> tuple[Any, Any]:
    """A Flax linen module: `init` with a fixed key on a vector of the sweep's layout, then
    `apply` as a pure function of its "params" collection (the other collections, such
    as batch statistics, are passed as initialised)."""
    module = obj(**dict(variant.params)) if isinstance(obj, type) else obj
    x0 = jnp.zeros(layout_shape(variant, layout_multiple(variant)), _DTYPES[dtype])
    key = jax.random.PRNGKey(variant.seed if variant.seed is not None else 0)
    variables = dict(module.init(key, x0))
    params = _cast(variables.pop("params", {}), dtype)

    def call(p: Any, x: Any) -> Any:
        return module.apply({"params": p, **variables}, x)

    return call, params


def _ctor_params(cls: type) -> set[str]:
    """Constructor argument names; NNX's metaclass hides them from signature(cls)."""
    try:
        init = cls.__dict__.get("__init__") or getattr(cls, "__init__")  # noqa: B009
        return set(inspect.signature(init).parameters) - {"self"}
    except (TypeError, ValueError):
        return set()


def _cast(tree: Any, dtype: str) -> Any:
    jdtype = _DTYPES[dtype]
    return jax.tree_util.tree_map(
        lambda a: jnp.asarray(a).astype(jdtype)
        if jnp.issubdtype(jnp.asarray(a).dtype, jnp.floating) else a, tree)


def _nnx(obj: Any, dtype: str, variant: Variant) -> tuple[Any, Any]:
    """A Flax NNX module as a pure function of its nnx.Param state. The rest of the state
    (RNG counters included) is merged fresh on every call, so a seeded module draws the same
    numbers each time."""
    from flax import nnx

    kwargs: dict[str, Any] = dict(variant.params)
    if isinstance(obj, type):
        if "rngs" in _ctor_params(obj):
            kwargs["rngs"] = nnx.Rngs(variant.seed if variant.seed is not None else 0)
        module = obj(**kwargs)
    else:
        module = obj
    if variant.mode == "train":
        module.train()
    elif variant.mode == "eval":
        module.eval()
    graphdef, params, rest = tuple(nnx.split(module, nnx.Param, ...))[:3]
    params = _cast(params, dtype)

    def call(p: Any, x: Any) -> Any:
        return nnx.merge(graphdef, p, rest, copy=True)(x)

    return call, params


def _trax(obj: Any, dtype: str, variant: Variant) -> tuple[Any, Any]:
    """A Trax-style layer by its protocol: constructor (with `mode` when it takes one),
    `_mode`, `rng`, `init_weights_and_state(signature)`, `weights`, `forward(x)`."""
    kwargs: dict[str, Any] = dict(variant.params)
    if isinstance(obj, type):
        if "mode" in _ctor_params(obj) and variant.mode:
            kwargs["mode"] = variant.mode
        layer = obj(**kwargs)
    else:
        layer = obj
    if variant.mode:
        layer._mode = variant.mode
    key = jax.random.PRNGKey(variant.seed if variant.seed is not None else 0)
    layer.rng = key
    if hasattr(layer, "init_weights_and_state"):
        n = layout_multiple(variant)
        signature = jax.ShapeDtypeStruct(layout_shape(variant, n), _DTYPES[dtype])  # type: ignore[no-untyped-call]
        layer.init_weights_and_state(signature)
    weights = _cast(getattr(layer, "weights", ()), dtype)

    def call(w: Any, x: Any) -> Any:
        layer.weights, layer.rng = w, key  # the same random draw on every call
        try:
            return layer.forward(x)
        finally:
            layer.weights = weights

    return call, weights


def _to_np(y: Any, x: Any) -> F64:
    if y is None:
        raise TargetError("returned None instead of an array")
    if not hasattr(y, "shape"):
        raise TargetError(f"returned {type(y).__name__} instead of an array")
    check_output(tuple(y.shape), tuple(x.shape), y)
    return np.asarray(jnp.asarray(y).astype(jnp.float32) if y.dtype != jnp.float64 else y,
                      dtype=np.float64)


BACKEND = JaxBackend()
