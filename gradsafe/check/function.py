"""The NaN/inf sweep of one target as written (not its hand-written gradient): a class
configuration goes to param_sweep, a row-wise function to rows, an elementwise one is swept
here over every dtype's probe plan; then order 2 (second.py) when asked.

Runs inside a worker; returns model data.
"""

from __future__ import annotations

import dataclasses

from gradsafe.backends.base import WIDTH, Backend, NotATarget
from gradsafe.check import cast, reduction, rows, second
from gradsafe.check.analyse import Counter
from gradsafe.check.common import (
    Forwards,
    explain,
    qualifying,
    require_float,
    resolve,
    result,
    sweep_dtypes,
    target_location,
)
from gradsafe.check.exhaustive import Tick
from gradsafe.check.param_sweep import at_grid, check_variant, one_line_error, rejected
from gradsafe.model.types import Options, Target, TargetResult


def check(backend: Backend, target: Target, options: Options,
          counter: Counter | None = None, tick: Tick | None = None,
          seen: Forwards | None = None) -> TargetResult:
    if not target.grid:
        return _check(backend, target, options, counter, tick, seen)
    # a keyword value of gradsafe's automatic grid (see variants.function_settings): as for
    # a constructor's, findings are warnings naming it, and a value the function rejects
    # is a note, not an error
    values = dict(target.args)
    which = ", ".join(f"{k}={values[k]}" for k in target.grid)
    try:
        res = _check(backend, target, options, counter, tick, seen)
    except NotATarget as exc:  # its text says what the target is not
        text = str(exc).strip().splitlines()
        return result(target, backend.name, (), (
            rejected(target.name, which, text[0] if text else type(exc).__name__),), options)
    except Exception as exc:
        return result(target, backend.name, (), (
            rejected(target.name, which, one_line_error(exc)),), options)
    return result(target, backend.name, tuple(at_grid(f, which) for f in res.findings),
                  res.notes, options)


def _check(backend: Backend, target: Target, options: Options,
           counter: Counter | None = None, tick: Tick | None = None,
           seen: Forwards | None = None) -> TargetResult:
    if target.variant is not None:  # one configuration of a class: see param_sweep
        return check_variant(backend, target, options, counter, tick, seen)
    obj = resolve(target, backend)
    with qualifying(target):
        fn64, _ = backend.instantiate(obj, target.kind, "float64")
        if reduction.reduces(backend, fn64):  # losses and metrics: one number per batch
            return reduction.check_reduction(backend, target, options, obj, counter, tick,
                                             seen)
        if not rows.elementwise(backend, fn64):  # softmax, GLU, normalisations
            res = rows.check_rows(backend, target, options, obj, counter, tick, seen)
            if options.order == 2:  # f'' is swept for elementwise functions only
                res = dataclasses.replace(res, notes=(*res.notes, second.NOT_ELEMENTWISE))
            return res
        if not target.explicit:  # named: a missing gradient is a GS104 finding instead
            require_float(backend, fn64)
    findings, notes = sweep_dtypes(
        backend, target, options, lambda dt: backend.instantiate(obj, target.kind, dt),
        fn64, counter, tick, seen)
    findings = explain(backend, target, obj, findings,
                       lambda o, dt: (backend.instantiate(o, target.kind, dt)[0], WIDTH))
    findings = cast.attribute(backend, target, obj, findings, notes)
    if options.order == 2:
        more, extra = second.check_order2(backend, target,
                                          second.plain_build(backend, obj, target.kind),
                                          options, target_location(target), counter, tick)
        findings += second.explain2(backend, target, obj, more)
        notes += extra
    return result(target, backend.name, tuple(findings), tuple(notes), options)
