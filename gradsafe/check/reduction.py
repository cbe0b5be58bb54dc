"""Reductions: losses and metrics that return one number for a batch.

Most losses are a sum or a mean of per-element terms, `mean(log(cosh(preds - target)))`.
Such a function is *separable*: changing one element changes that element's gradient only.
gradsafe tests that, then checks the term of each element as an elementwise function: the
target is called on each element alone, as a batch of one (Backend.per_element, one
vectorized call), so the forward and gradient findings get exact per-element boundaries.
A reduction that mixes elements (softmax cross-entropy over a row) is checked row-wise
(see rows.py), each row alone a batch of one.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from gradsafe.backends.base import WIDTH, Backend, Fn, ShapeError
from gradsafe.check import rows, second
from gradsafe.check.analyse import Counter
from gradsafe.check.common import (
    explain,
    require_float,
    result,
    sweep_dtypes,
    target_location,
)
from gradsafe.check.exhaustive import Tick
from gradsafe.model.types import Options, Target, TargetResult

_SMALL = 8  # elements in the vectors the tests below use
# --order 2 on a reduction that mixes its elements: its second derivatives form a full
# Hessian, not one f'' per element
MIXED_ORDER2 = ("order 2: not checked: this reduction mixes its elements, so its second "
                "derivative is a full Hessian (d2/dx_i dx_j != 0), not one f'' per element; "
                "second derivatives are swept for elementwise functions and separable "
                "reductions")


def reduces(backend: Backend, fn64: Fn) -> bool:
    """The output is one number for a vector of several (a loss's sum or mean)."""
    x = np.linspace(-1.75, 2.25, _SMALL)
    try:
        backend.evaluate(fn64, x, "float64", grad=False, multiple=_SMALL)
    except ShapeError as exc:
        return int(np.prod(exc.shape)) == 1
    except Exception:  # whatever else is wrong, the ordinary checks report it
        return False
    return False


def spread(backend: Backend, fn: Fn) -> Fn:
    """The total on every element: its VJP with a ones cotangent is n times the gradient."""
    def g(x: Any) -> Any:
        return fn(x) + backend.constant(x, 0.0)

    return g


def separable(backend: Backend, fn64: Fn) -> bool:
    """A sum or mean of per-element terms: changing one element leaves the other elements'
    gradients unchanged, and the total is the sum or the mean of the terms."""

    x = np.linspace(-1.75, 2.25, _SMALL)
    moved = x.copy()
    moved[0] = 3.0
    try:
        a = backend.evaluate(spread(backend, fn64), x, "float64", multiple=_SMALL)
        b = backend.evaluate(spread(backend, fn64), moved, "float64", multiple=_SMALL)
        terms = backend.evaluate(backend.per_element(fn64), x, "float64", grad=False,
                                 multiple=_SMALL).forward
    except Exception:
        return False
    if a.gradient is None or b.gradient is None:
        return True  # not differentiable: the elementwise checks say so per element
    with np.errstate(invalid="ignore"):
        same = np.allclose(a.gradient[1:], b.gradient[1:], rtol=1e-9, atol=1e-12,
                           equal_nan=True)
        total = a.forward[0]
        adds_up = bool(np.isclose(total, terms.sum(), rtol=1e-9, atol=1e-12)
                       or np.isclose(total, terms.mean(), rtol=1e-9, atol=1e-12))
    return bool(same) and adds_up


def check_reduction(backend: Backend, target: Target, options: Options, obj: Any,
                    counter: Counter | None, tick: Tick | None,
                    seen: dict[str, Any] | None) -> TargetResult:
    fn64, _ = backend.instantiate(obj, target.kind, "float64")
    if not separable(backend, fn64):
        res = rows.check_rows(backend, target, options, obj, counter, tick, seen,
                              wrap=backend.per_element)
        mixed = ("reduction: it mixes the elements it reduces (not a sum or mean of "
                 f"per-element terms): each row of {rows.ROW} checked alone, as a batch of one")
        order2 = (MIXED_ORDER2,) if options.order == 2 else ()
        return replace(res, notes=(*res.notes, mixed, *order2))

    def build(dtype: str) -> tuple[Fn, str | None]:
        fn, note = backend.instantiate(obj, target.kind, dtype)
        return backend.per_element(fn), note

    mapped64 = backend.per_element(fn64)
    if not target.explicit:
        require_float(backend, mapped64)
    findings, notes = sweep_dtypes(backend, target, options, build, mapped64, counter, tick,
                                   seen)
    # the tracer reads each operation's values element by element: it runs the target on
    # the whole vector (its terms are per element before the reduction), the total spread
    # over the elements so that each term's cotangent is exactly 1 (WIDTH is a power of 2)
    findings = explain(backend, target, obj, findings, lambda o, dt: (
        spread(backend, backend.instantiate(o, target.kind, dt)[0]), WIDTH))
    notes.append("reduction: a sum or mean of per-element terms (separable); each element "
                 "checked alone, as a batch of one")
    if options.order == 2:
        # separable: the Hessian is diagonal and its diagonal is each term's own f'', the
        # double backward of the term of each element alone (the same per-element map)
        def build2(dtype: str) -> tuple[Fn, int]:
            return build(dtype)[0], WIDTH

        more, extra = second.check_order2(backend, target, build2, options,
                                          target_location(target), counter, tick)
        findings += second.explain2(backend, target, obj, more, lambda o, dt: (
            spread(backend, backend.instantiate(o, target.kind, dt)[0]), WIDTH))
        notes += extra
    return result(target, backend.name, tuple(findings), tuple(notes), options)
