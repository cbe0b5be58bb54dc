"""`tanh(exp(u))` -> `tanh(exp(minimum(u, 3.0)))`: the outer function is flat long before exp
overflows (TanhExp, `x * tanh(exp(x))`). Likewise a cube inside tanh, as in GELU's tanh form
`tanh(k * (x + 0.044715 * x**3))`: x is clamped to [-10, 10] inside the argument, where that
argument is already past 19 (tanh is 1.0 in float64) and 10**3 still fits float16; for other
constants the re-sweep tells whether the clamp changed a value.

For u > 88.7 in float32 (11.1 in float16) exp(u) is inf; the forward survives (tanh(inf) = 1),
but the backward multiplies tanh's zero slope by exp's infinite one: NaN. Once exp(u) is past
the point where the outer function rounds to its limit in float64 (tanh(20.1), sigmoid(54.6)
and erf(7.4) are 1.0 in every dtype) nothing changes in the forward, so u is clamped there and
the result is exact: the same values in every dtype, and a zero slope beyond the clamp.
"""

from __future__ import annotations

from collections import Counter

import libcst as cst

from gradsafe.model.codes import BACKWARD_OVERFLOW, FORWARD_OVERFLOW
from gradsafe.suggest.rewrite.base import (
    PROTECTING,
    Names,
    Rewrite,
    code,
    contains,
    factors,
    loads,
    norm,
    number,
    replace,
    strip_parens,
)

# outer function -> u beyond which outer(exp(u)) is 1.0 in float64 and so in every dtype
FLAT_AFTER = {"tanh": "3.0", "sigmoid": "4.0", "erf": "2.0"}


class _Rebind(cst.CSTTransformer):
    """`name = old` -> `name = new` for the given names."""

    def __init__(self, values: dict[str, cst.BaseExpression]) -> None:
        super().__init__()
        self.values = values

    def leave_Assign(self, original: cst.Assign, updated: cst.Assign) -> cst.Assign:
        target = updated.targets[0].target if len(updated.targets) == 1 else None
        if isinstance(target, cst.Name) and target.value in self.values:
            return updated.with_changes(value=self.values[target.value])
        return updated


class Saturate(Rewrite):
    name = "saturate"
    title = "clamp the input where the tanh/sigmoid/erf around it is already flat"
    fixes = frozenset({BACKWARD_OVERFLOW, FORWARD_OVERFLOW})

    def __init__(self, names: Names, defs: dict[str, cst.BaseExpression],
                 narrow: bool = False) -> None:
        super().__init__(names, defs, narrow)
        self.rebind: dict[str, cst.BaseExpression] = {}

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        outer = self.names.op(updated)
        arg = self.names.arg(updated)
        if outer not in FLAT_AFTER or arg is None:
            return updated
        inner = self.see(arg)
        if outer == "tanh" and (cubed := self._cubed(inner)) is not None:
            u = code(strip_parens(cubed)).strip()
            new, count = replace(inner, norm(cubed), self.names.clamp(u, "-10.0", "10.0"))
            bare = strip_parens(arg)
            if count and isinstance(bare, cst.Name) and inner is not bare:
                # `inner = k * (x + 0.044715 * x**3)` read once, by this tanh: clamp on the
                # line that binds it (see leave_FunctionDef) rather than inline it here
                if self._read_once(bare.value):
                    self.changed = True
                    self.rebind[bare.value] = new
                return updated
            if count:
                self.changed = True
                if updated.args:
                    return updated.with_changes(args=[updated.args[0].with_changes(value=new)])
                return self.wrap(self.names.call("tanh", code(new).strip()))
        arg = self.names.arg(inner)
        if self.names.op(inner) != "exp" or arg is None or self.names.op(arg) in PROTECTING:
            return updated
        u = code(strip_parens(arg)).strip()
        self.changed = True
        exp = self.names.call("exp", self.names.clamp(u, None, FLAT_AFTER[outer]))
        if updated.args:  # the outer function as the file spells it
            return self.wrap(f"{code(updated.func).strip()}({exp})")
        return self.wrap(self.names.call(outer, exp))

    def _read_once(self, name: str) -> bool:
        function = next((n for n in reversed(self._stack) if isinstance(n, cst.FunctionDef)),
                        None)
        return function is not None and loads(function, name) == 1

    def leave_FunctionDef(self, original: cst.FunctionDef,
                          updated: cst.FunctionDef) -> cst.FunctionDef:
        if not self.rebind:
            return updated
        out = updated.visit(_Rebind(self.rebind))
        self.rebind = {}
        assert isinstance(out, cst.FunctionDef)
        return out

    def _cubed(self, node: cst.BaseExpression) -> cst.BaseExpression | None:
        """u of a `u ** 3`, `u * u * u` or `pow(u, 3)` inside node, unless u is clamped."""
        found: list[cst.BaseExpression] = []
        names = self.names

        class _V(cst.CSTVisitor):
            def visit_Call(self, call: cst.Call) -> bool:
                op = names.op(call)
                if op in PROTECTING:
                    return False  # already limited
                if op in ("pow", "power") and len(call.args) == 2 \
                        and number(call.args[1].value) == 3.0:
                    found.append(call.args[0].value)
                return True

            def visit_BinaryOperation(self, op: cst.BinaryOperation) -> None:
                if isinstance(op.operator, cst.Power) and number(op.right) == 3.0:
                    found.append(op.left)
                elif isinstance(op.operator, cst.Multiply):  # c * x * x * x
                    found_factors = factors(op)
                    counts = Counter(norm(f) for f in found_factors)
                    found.extend(f for f in found_factors if counts[norm(f)] >= 3)

        node.visit(_V())
        bases = [b for b in found if names.op(b) not in PROTECTING and number(b) is None]
        if bases:
            return bases[0]
        # the cube spread over factors, as fast GELU writes it: x * k * (1 + c * x * x)
        candidates = sorted({n.value for n in _names(node)})
        return next((cst.Name(v) for v in candidates if (self._degree(node, v) or 0) >= 3),
                    None)

    def _degree(self, node: cst.BaseExpression, var: str) -> int | None:
        """The degree of a polynomial in the name var (None when it is not one)."""
        node = strip_parens(node)
        if isinstance(node, cst.Name) and node.value == var:
            return 1
        if not contains(node, var):
            return 0
        if isinstance(node, cst.UnaryOperation):
            return self._degree(node.expression, var)
        if isinstance(node, cst.BinaryOperation):
            if isinstance(node.operator, cst.Power):
                k = number(node.right)
                base = self._degree(node.left, var)
                return int(k) * base if base is not None and k is not None and k == int(k) \
                    and k >= 0 else None
            left, right = self._degree(node.left, var), self._degree(node.right, var)
            if left is None or right is None:
                return None
            if isinstance(node.operator, cst.Multiply):
                return left + right
            if isinstance(node.operator, (cst.Add, cst.Subtract)):
                return max(left, right)
            if isinstance(node.operator, cst.Divide) and right == 0:
                return left
            return None
        if isinstance(node, cst.Call) and self.names.op(node) in ("pow", "power") \
                and len(node.args) == 2 and (k := number(node.args[1].value)) is not None \
                and k == int(k) and k >= 0:
            base = self._degree(node.args[0].value, var)
            return int(k) * base if base is not None else None
        return None


def _names(node: cst.CSTNode) -> list[cst.Name]:
    """The names read in an expression (not attributes' or keywords' names, not callees)."""
    found: list[cst.Name] = []

    class _V(cst.CSTVisitor):
        def visit_Attribute(self, node: cst.Attribute) -> bool:
            return False

        def visit_Call(self, node: cst.Call) -> bool:
            for arg in node.args:
                arg.value.visit(self)
            return False

        def visit_Name(self, node: cst.Name) -> None:
            found.append(node)

    node.visit(_V())
    return found

