"""`log(1 + u)` -> `log1p(u)`: exact for small u, where 1 + u rounds u away."""

from __future__ import annotations

import libcst as cst

from gradsafe.model.codes import FORWARD_INACCURATE
from gradsafe.suggest.rewrite.base import Rewrite, code, is_one, strip_parens


def one_plus(node: cst.BaseExpression) -> cst.BaseExpression | None:
    """u of `1 + u` or `u + 1`."""
    node = strip_parens(node)
    if not isinstance(node, cst.BinaryOperation) or not isinstance(node.operator, cst.Add):
        return None
    if is_one(node.left):
        return node.right
    if is_one(node.right):
        return node.left
    return None


class Log1p(Rewrite):
    name = "log1p"
    title = "use log1p for log(1 + u)"
    fixes = frozenset({FORWARD_INACCURATE})

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        arg = self.names.arg(updated)
        if self.names.op(updated) != "log" or arg is None:
            return updated
        u = one_plus(self.see(arg))
        if u is None:
            return updated
        self.changed = True
        return self.wrap(self.names.call("log1p", code(strip_parens(u))))
