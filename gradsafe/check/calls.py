"""Bind the call arguments beyond x (--arg, per-target config) to a target's object.

Functions get them as keywords; classes are subclassed so that the method the framework
calls (forward, call, __call__) receives them, which keeps construction, modes, parameters
and dtype policies exactly as for a class without arguments.

With --sweep NAME the swept tensor is passed as NAME (by keyword) and the first parameter
is one of the bound ones. With --sweep NAME[..., C] the target becomes a function of one
vector x (N,): NAME is the (N, K) tensor whose rows are the given row (--arg NAME=[...])
with column C replaced by x, so every elementwise check (and the reductions') applies as is
and the gradient is the one with respect to that coordinate (a box's y2).

A number bound to a parameter that must be a tensor (annotated as one, or rejected as a
Python scalar on the first call) becomes a tensor like the swept one, filled with the
number: same shape and dtype, so shape checks such as `_check_same_shape(preds, target)`
pass; a list of numbers becomes (N, K) rows of it, like x.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from gradsafe.backends.base import TargetError
from gradsafe.discover.variants import is_number, literal
from gradsafe.model.types import TargetKind, column_sweep

_METHODS: dict[str, str] = {TargetKind.MODULE: "forward", TargetKind.LAYER: "call",
                            TargetKind.NNX: "__call__", TargetKind.TRAX: "forward"}


def values(args: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """Literal source -> Python values (inf/nan as words: repr(float('inf')) is 'inf')."""
    return {k: literal(v) for k, v in args}


Reduce = Callable[[Any, int], Any]  # Backend.sum_trailing
Fill = Callable[[Any, float], Any]  # Backend.constant: a tensor like x holding a value
Stack = Callable[[list[Any]], Any]  # Backend.rows: columns stacked along a new last axis
_TENSOR_WORDS = ("Tensor", "Array", "ndarray")  # annotations that ask for a tensor


def _annotated_tensors(fn: Any, names: set[str]) -> set[str]:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return set()
    out = set()
    for name in names:
        p = params.get(name)
        note = "" if p is None or p.annotation is inspect.Parameter.empty else str(p.annotation)
        if any(w in note for w in _TENSOR_WORDS):
            out.add(name)
    return out


def _numeric_defaults(fn: Any) -> set[str]:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return set()
    return {n for n, p in params.items() if is_number(p.default)}


def _optional(fn: Any, given: dict[str, Any]) -> inspect.Signature | None:
    """fn's signature with the bound parameters optional: Keras binds a layer's call
    arguments by signature before calling it, and would ask for them."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    params = [p.replace(default=given[p.name])
              if p.name in given and p.default is inspect.Parameter.empty else p
              for p in sig.parameters.values()]
    # a required parameter may not follow one with a default: those after the first
    # optional one become keyword-only
    out: list[inspect.Parameter] = []
    optional = False
    for p in params:
        positional = p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        if positional and p.default is not inspect.Parameter.empty:
            optional = True
        elif positional and optional:
            p = p.replace(kind=p.KEYWORD_ONLY)
        out.append(p)
    try:
        return sig.replace(parameters=out)
    except ValueError:
        return None


class _Caller:
    """Calls the target with the swept tensor and the bound values, numbers turned into
    tensors where the target needs them (decided on the first call, then kept)."""

    def __init__(self, fn: Any, given: dict[str, Any], sweep: str | None,
                 fill: Fill | None, stack: Stack | None = None) -> None:
        self.given, self.sweep, self.fill, self.stack = given, sweep, fill, stack
        self.column = column_sweep(sweep)
        if self.column is not None and (fill is None or stack is None):
            raise TargetError(f"sweeping {sweep} needs a framework that builds tensors")
        # a parameter whose default is a number (radius=1.0) is an option, not a tensor:
        # a value it rejects (radius=0.0: ZeroDivisionError) is not rescued as a tensor
        options = _numeric_defaults(fn)
        self.numbers = {k for k, v in given.items()
                        if (is_number(v) or (stack is not None and _row(v)))
                        and (self.column is None or k != self.column[0])
                        and k not in options}
        annotated = _annotated_tensors(fn, self.numbers) if fill is not None else set()
        # None: undecided (no annotation says so; try the numbers as given first)
        self.tensors: set[str] | None = annotated or (None if self.numbers else set())

    def __call__(self, call: Callable[..., Any], x: Any, rest: tuple[Any, ...],
                 kw: dict[str, Any]) -> Any:
        if self.tensors is not None or self.fill is None:
            return self._with(call, x, rest, kw, self.tensors or set())
        try:
            y = self._with(call, x, rest, kw, set())
        except Exception:
            y = self._with(call, x, rest, kw, self.numbers)
            self.tensors = set(self.numbers)
            return y
        self.tensors = set()
        return y

    def _with(self, call: Callable[..., Any], x: Any, rest: tuple[Any, ...],
              kw: dict[str, Any], tensors: set[str]) -> Any:
        values = dict(self.given)
        for k in tensors:
            values[k] = self._like(x, self.given[k])
        values.update(kw)
        if self.column is not None:
            name, col = self.column
            row = [self._like(x, v) for v in self.given[name]]
            row[col] = x
            assert self.stack is not None
            return call(*rest, **{**values, name: self.stack(row)})
        if self.sweep is not None:
            return call(*rest, **{self.sweep: x}, **values)
        return call(x, *rest, **values)

    def _like(self, x: Any, value: Any) -> Any:
        """A number as a tensor like x; a row of numbers as (N, K) rows like x's."""
        assert self.fill is not None
        if isinstance(value, (list, tuple)):
            assert self.stack is not None
            return self.stack([self.fill(x, float(v)) for v in value])
        return self.fill(x, float(value))


def _row(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and bool(v) and all(is_number(e) for e in v)


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
         reduce: Reduce | None = None, sweep: str | None = None,
         fill: Fill | None = None, stack: Stack | None = None) -> Any:
    """`obj` called with the target's extra arguments; with `reduce`, outputs that add
    trailing axes per element become one value per element; with `sweep`, x is passed as
    that parameter (or as that column of it); with `fill` (and `stack`), numbers (and rows
    of numbers) become tensors like x where needed."""
    if not args and reduce is None and sweep is None:
        return obj
    given = values(args)
    if isinstance(obj, type):
        if not args and sweep is None and kind not in _METHODS:
            return obj
        method = _METHODS.get(kind) or next(
            (m for m in ("forward", "call", "__call__") if m in vars(obj)), "__call__")
        inner = getattr(obj, method)
        caller = _Caller(inner, given, sweep, fill, stack)

        @functools.wraps(inner)  # frameworks read the signature (Keras: training, mask)
        def call(self: Any, x: Any, *rest: Any, **kw: Any) -> Any:
            return _per_element(caller(functools.partial(inner, self), x, rest, kw), x,
                                reduce)

        call.__signature__ = _optional(inner, given)  # type: ignore[attr-defined]

        return type(obj.__name__, (obj,), {method: call, "__module__": obj.__module__,
                                           "__qualname__": obj.__qualname__})
    if not callable(obj):
        return obj

    caller = _Caller(obj, given, sweep, fill, stack)

    @functools.wraps(obj)
    def bound(x: Any, *rest: Any, **kw: Any) -> Any:
        return _per_element(caller(obj, x, rest, kw), x, reduce)

    return bound
