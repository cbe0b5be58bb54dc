"""`log((exp(u) + exp(-u)) / 2)` and `log(cosh(u))` -> `|u| + softplus(-2|u|) - log 2`.

exp(|u|) overflows for |u| above log(max) (88.72 in float32, 11.09 in float16): the forward
is inf and the backward NaN, although log cosh(u) is just about |u| - log 2 there. The
stable form's intermediates stay below |u| (softplus of a non-positive number is at most
log 2), and it equals log cosh(u) exactly in real arithmetic.
"""

from __future__ import annotations

import libcst as cst

from gradsafe.model.codes import BACKWARD_OVERFLOW, FORWARD_OVERFLOW
from gradsafe.suggest.rewrite.base import Rewrite, code, number, strip_parens

LOG2 = "0.6931471805599453"


class LogCosh(Rewrite):
    name = "log_cosh"
    fixes = frozenset({BACKWARD_OVERFLOW, FORWARD_OVERFLOW})
    title = "use |u| + softplus(-2|u|) - log 2 for log(cosh(u))"

    def _exp_of(self, node: cst.BaseExpression) -> str | None:
        node = self.see(node)
        arg = self.names.arg(node)
        if self.names.op(node) != "exp" or arg is None:
            return None
        return code(strip_parens(arg)).strip()

    def _cosh_arg(self, node: cst.BaseExpression) -> str | None:
        """u of `cosh(u)` or of `(exp(u) + exp(-u)) / 2` (either order)."""
        node = self.see(node)
        arg = self.names.arg(node)
        if self.names.op(node) == "cosh" and arg is not None:
            return code(strip_parens(arg)).strip()
        if not isinstance(node, cst.BinaryOperation) or not isinstance(
                node.operator, cst.Divide) or number(node.right) != 2.0:
            return None
        total = self.see(node.left)
        if not isinstance(total, cst.BinaryOperation) or not isinstance(total.operator,
                                                                         cst.Add):
            return None
        a, b = self._exp_of(total.left), self._exp_of(total.right)
        if a is None or b is None:
            return None
        for u, v in ((a, b), (b, a)):
            if v.replace(" ", "") in (f"-{u}".replace(" ", ""), f"-({u})".replace(" ", "")):
                return u
        return None

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        arg = self.names.arg(updated)
        if self.names.op(updated) != "log" or arg is None:
            return updated
        u = self._cosh_arg(arg)
        if u is None:
            return updated
        self.changed = True
        a = self.names.call("abs", u)
        return self.wrap(f"{a} + {self.names.softplus(f'-2 * {a}')} - {LOG2}")
