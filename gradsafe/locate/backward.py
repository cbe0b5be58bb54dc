"""Gradient findings of a function whose gradient is hand-written in TensorFlow or JAX
(`@tf.custom_gradient`, `jax.custom_vjp` + `defvjp`, `jax.custom_jvp` + `defjvp`).

The trace sees the forward only: the backward the user wrote runs inside the framework's
own rule, so a NaN it computes has no culprit among the traced operations. Such a finding
points at the backward's return line instead (torch's `Function.backward` is handled in
trace.py), is a GS102 (the cause is inside the backward, not a where of the forward), and
says when it is a 0/0 of intermediates that underflowed: the dtype's gradient is NaN where
the float64 gradient is finite at a small input.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from gradsafe.backends.base import Backend
from gradsafe.model.codes import BACKWARD_OVERFLOW, BRANCH_LEAK
from gradsafe.model.types import Finding, Location, Target, TargetKind

Make = Callable[[Any, str], tuple[Any, int]]
WIDTH = 64


def backward_location(file: str, name: str) -> tuple[str, Location] | None:
    """(name of the backward function, its last return) for a custom-gradient function
    `name` defined in `file`, or None."""
    try:
        tree = ast.parse(Path(file).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return None
    top = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    # JAX: NAME.defvjp(fwd, bwd) / NAME.defjvp(jvp)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in ("defvjp", "defjvp") \
                and isinstance(node.func.value, ast.Name) and node.func.value.id == name:
            rule = node.args[-1] if node.args else None
            if isinstance(rule, ast.Name) and rule.id in top:
                loc = _last_return(file, top[rule.id])
                return None if loc is None else (rule.id, loc)
    # TensorFlow: @tf.custom_gradient def NAME(x): ...; def grad(dy): ...; return y, grad
    fn = top.get(name)
    if fn is None or not any("custom_gradient" in ast.unparse(d) for d in fn.decorator_list):
        return None
    inner = {n.name: n for n in fn.body if isinstance(n, ast.FunctionDef)}
    for stmt in reversed(fn.body):
        if isinstance(stmt, ast.Return) and isinstance(stmt.value, ast.Tuple) \
                and stmt.value.elts and isinstance(stmt.value.elts[-1], ast.Name) \
                and stmt.value.elts[-1].id in inner:
            grad = inner[stmt.value.elts[-1].id]
            loc = _last_return(file, grad)
            return None if loc is None else (grad.name, loc)
    return None


def _last_return(file: str, fn: ast.FunctionDef) -> Location | None:
    returns = [r for r in ast.walk(fn) if isinstance(r, ast.Return) and r.value is not None]
    if not returns:
        return None
    r = max(returns, key=lambda n: n.lineno)
    assert r.value is not None
    return Location(file, r.value.lineno, r.value.col_offset + 1,
                    r.value.end_lineno or r.value.lineno, (r.value.end_col_offset or 0) + 1)


def point_into_backward(backend: Backend, target: Target, obj: Any, findings: list[Finding],
                        make: Make) -> list[Finding]:
    """Gradient findings of a TF/JAX custom-gradient function, pointed at its backward."""
    if target.file is None or backend.name not in ("tensorflow", "jax") \
            or target.kind == TargetKind.BUILTIN:
        return findings
    wanted = [f for f in findings if f.kind == "gradient"
              and f.code in (BRANCH_LEAK, BACKWARD_OVERFLOW) and np.isfinite(f.example_input)]
    if not wanted:
        return findings
    found = backward_location(target.file, target.name)
    if found is None:
        return findings
    rule, where = found
    g64 = _gradients64(backend, obj, make, [f.example_input for f in wanted])
    out = []
    for f in findings:
        if f not in wanted:
            out.append(f)
            continue
        true = g64.get(f.example_input)
        text = (f"{f.message}. The gradient comes from the hand-written backward `{rule}`: "
                f"line {where.line}")
        if np.isnan(f.gradient) and true is not None and np.isfinite(true) \
                and abs(f.example_input) < 1.0:
            text += (f"; it underflows inside to 0/0 = NaN (its intermediates are too small "
                     f"for {f.dtype} at x = {f.example_input:g}, where the float64 gradient "
                     f"is {true:g})")
        out.append(dataclasses.replace(f, code=BACKWARD_OVERFLOW, location=where, message=text))
    return out


def _gradients64(backend: Backend, obj: Any, make: Make, xs: list[float]) -> dict[float, float]:
    """The float64 gradient at each x (empty when it cannot be computed)."""
    try:
        fn, n = make(obj, "float64")
        values = np.resize(np.array(xs, dtype=np.float64), max(n, WIDTH))
        ev = backend.evaluate(fn, values, "float64")
    except Exception:
        return {}
    if ev.gradient is None:
        return {}
    return {x: float(ev.gradient[i]) for i, x in enumerate(xs)}
