"""Bind the call arguments beyond x (--arg, per-target config) to a target's object.

Functions get them as keywords; classes are subclassed so that the method the framework
calls (forward, call, __call__) receives them, which keeps construction, modes, parameters
and dtype policies exactly as for a class without arguments.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from gradsafe.discover.variants import literal
from gradsafe.model.types import TargetKind

_METHODS: dict[str, str] = {TargetKind.MODULE: "forward", TargetKind.LAYER: "call",
                            TargetKind.NNX: "__call__", TargetKind.TRAX: "forward"}


def values(args: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """Literal source -> Python values (inf/nan as words: repr(float('inf')) is 'inf')."""
    return {k: literal(v) for k, v in args}


Reduce = Callable[[Any, int], Any]  # Backend.sum_trailing


def _per_element(y: Any, x: Any, reduce: Reduce | None) -> Any:
    """An output with trailing axes per input element (x (N,) -> (N, K)) summed over them:
    the VJP of a ones cotangent sums them too, so each element keeps its own gradient."""
    if reduce is None:
        return y
    ys, xs = getattr(y, "shape", None), getattr(x, "shape", None)
    if ys is None or xs is None or len(ys) <= len(xs) or tuple(ys[:len(xs)]) != tuple(xs):
        return y
    return reduce(y, len(xs))


def bind(obj: Any, kind: str, args: tuple[tuple[str, str], ...],
         reduce: Reduce | None = None) -> Any:
    """`obj` called with the target's extra arguments; with `reduce`, outputs that add
    trailing axes per element become one value per element."""
    if not args and reduce is None:
        return obj
    given = values(args)
    if isinstance(obj, type):
        if not args and kind not in _METHODS:
            return obj
        method = _METHODS.get(kind) or next(
            (m for m in ("forward", "call", "__call__") if m in vars(obj)), "__call__")
        inner = getattr(obj, method)

        @functools.wraps(inner)  # frameworks read the signature (Keras: training, mask)
        def call(self: Any, x: Any, *rest: Any, **kw: Any) -> Any:
            return _per_element(inner(self, x, *rest, **{**given, **kw}), x, reduce)

        return type(obj.__name__, (obj,), {method: call, "__module__": obj.__module__,
                                           "__qualname__": obj.__qualname__})
    if not callable(obj):
        return obj

    @functools.wraps(obj)
    def bound(x: Any, *rest: Any, **kw: Any) -> Any:
        return _per_element(obj(x, *rest, **{**given, **kw}), x, reduce)

    return bound
