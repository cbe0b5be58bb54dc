"""`exp(u) - 1` -> `expm1(u)`: exact near 0, where exp(u) - 1 cancels to 0 or a few ulps."""

from __future__ import annotations

import libcst as cst

from gradsafe.model.codes import FORWARD_INACCURATE
from gradsafe.suggest.rewrite.base import Rewrite, code, is_one, strip_parens


class Expm1(Rewrite):
    name = "expm1"
    title = "use expm1 for exp(u) - 1"
    fixes = frozenset({FORWARD_INACCURATE})

    def leave_BinaryOperation(self, original: cst.BinaryOperation,
                              updated: cst.BinaryOperation) -> cst.BaseExpression:
        left = self.see(updated.left)
        if not isinstance(updated.operator, cst.Subtract) or not is_one(updated.right) \
                or self.names.op(left) != "exp" or (u := self.names.arg(left)) is None:
            return updated
        self.changed = True
        return self.wrap(self.names.call("expm1", code(strip_parens(u)).strip()))
