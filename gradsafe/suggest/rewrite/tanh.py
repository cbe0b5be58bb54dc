"""`(exp(u) - exp(-u)) / (exp(u) + exp(-u))` -> `tanh(u)`: for |u| above log(max) both
exps overflow and the quotient is inf / inf = NaN, while tanh(u) is ±1."""

from __future__ import annotations

import libcst as cst

from gradsafe.model.codes import BACKWARD_OVERFLOW, FORWARD_OVERFLOW
from gradsafe.suggest.rewrite.base import Rewrite, code, norm
from gradsafe.suggest.rewrite.sigmoid import negated_exp


class Tanh(Rewrite):
    name = "tanh"
    title = "use tanh for (exp(u) - exp(-u)) / (exp(u) + exp(-u))"
    fixes = frozenset({BACKWARD_OVERFLOW, FORWARD_OVERFLOW})

    def _pair(self, node: cst.BaseExpression, op: type[cst.BaseBinaryOp]) -> str | None:
        """u when node is `exp(u) OP exp(-u)` (either order for +)."""
        node = self.see(node)
        if not isinstance(node, cst.BinaryOperation) or not isinstance(node.operator, op):
            return None
        orders = [(node.left, node.right)]
        if op is cst.Add:
            orders.append((node.right, node.left))
        for pos, neg in orders:
            pos = self.see(pos)
            u = negated_exp(self.see(neg), self.names)
            arg = self.names.arg(pos)
            if u is not None and self.names.op(pos) == "exp" and arg is not None \
                    and norm(arg) == norm(u):
                return code(u)
        return None

    def leave_BinaryOperation(self, original: cst.BinaryOperation,
                              updated: cst.BinaryOperation) -> cst.BaseExpression:
        if not isinstance(updated.operator, cst.Divide):
            return updated
        top, bottom = self._pair(updated.left, cst.Subtract), self._pair(updated.right, cst.Add)
        if top is None or bottom is None or "".join(top.split()) != "".join(bottom.split()):
            return updated
        self.changed = True
        return self.wrap(self.names.call("tanh", top))
