"""`1 / (1 + exp(-u))` -> `sigmoid(u)`: for u below -log(max) exp(-u) is inf and the
backward divides inf by inf (NaN); the framework's sigmoid is finite everywhere."""

from __future__ import annotations

import libcst as cst

from gradsafe.model.codes import BACKWARD_OVERFLOW, FORWARD_OVERFLOW
from gradsafe.suggest.rewrite.base import Names, Rewrite, code, expr, is_one, strip_parens
from gradsafe.suggest.rewrite.log1p import one_plus


def negated_exp(node: cst.BaseExpression, names: Names) -> cst.BaseExpression | None:
    """u of `exp(-u)` (and `a * b` of `exp(-a * b)`, which Python reads as `(-a) * b`)."""
    node = strip_parens(node)
    inner = names.arg(node)
    if names.op(node) != "exp" or inner is None:
        return None
    arg = strip_parens(inner)
    if isinstance(arg, cst.UnaryOperation) and isinstance(arg.operator, cst.Minus):
        return strip_parens(arg.expression)
    if isinstance(arg, cst.BinaryOperation) and isinstance(arg.operator, cst.Multiply) \
            and isinstance(arg.left, cst.UnaryOperation) and not arg.left.lpar \
            and isinstance(arg.left.operator, cst.Minus):
        return expr(f"{code(arg.left.expression).strip()} * {code(arg.right).strip()}")
    return None


class Sigmoid(Rewrite):
    name = "sigmoid"
    title = "use sigmoid for 1 / (1 + exp(-u)) (and a / (1 + exp(-u)))"
    fixes = frozenset({BACKWARD_OVERFLOW, FORWARD_OVERFLOW})

    def leave_BinaryOperation(self, original: cst.BinaryOperation,
                              updated: cst.BinaryOperation) -> cst.BaseExpression:
        if not isinstance(updated.operator, cst.Divide):
            return updated
        denom = one_plus(self.see(updated.right))
        u = negated_exp(self.see(denom), self.names) if denom is not None else None
        if u is None:
            return updated
        self.changed = True
        s = self.names.call("sigmoid", code(u))
        if is_one(updated.left):
            return self.wrap(s)
        # x / (1 + exp(-x)) (SiLU) -> x * sigmoid(x)
        return self.wrap(f"{code(updated.left).strip()} * {s}")
