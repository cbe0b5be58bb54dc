"""Safe `sin(u) / u` at 0: `where(u == 0, 1, sin(g) / g)` with `g = where(u == 0, 1, u)`.

At u = 0 the quotient is 0 / 0 = NaN and its derivative too; the limit is 1 (slope 0).
"""

from __future__ import annotations

import libcst as cst

from gradsafe.rewrite.base import Rewrite, atom, code, norm, strip_parens


class Sinc(Rewrite):
    name = "sinc"
    title = "guard sin(u) / u at u = 0"

    def leave_BinaryOperation(self, original: cst.BinaryOperation,
                              updated: cst.BinaryOperation) -> cst.BaseExpression:
        if not isinstance(updated.operator, cst.Divide):
            return updated
        top = strip_parens(updated.left)
        if self.names.op(top) != "sin" or not isinstance(top, cst.Call) or len(top.args) != 1 \
                or norm(top.args[0].value) != norm(updated.right):
            return updated
        u = code(atom(code(strip_parens(updated.right)).strip()))
        zero = f"{u} == 0"
        g = self.names.where(zero, "1.0", u)
        self.changed = True
        return self.wrap(self.names.where(zero, "1.0", f"{self.names.call('sin', g)} / {g}"))
