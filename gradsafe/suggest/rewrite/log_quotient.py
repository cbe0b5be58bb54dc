"""`exp(u) / (v * v)` -> `exp(u - 2 * log(abs(v)))` in a hand-written backward.

The derivative of exp(-1/x) (e3nn's soft unit step, bump functions) is written
`exp(-1/x) / (x * x)`: for tiny x both exp(-1/x) and x * x underflow to 0 and the gradient
is 0 / 0 = NaN, where the true value is 0. As one exponential the quotient cannot form 0 / 0:
it is exp(-inf) = 0 there. Only applied inside backward functions (`backward`, `bwd`,
`*_grad*`, `*vjp*`, `*jvp*`), where gradsafe's gradient check verifies the result.
"""

from __future__ import annotations

import libcst as cst

from gradsafe.model.codes import BACKWARD_OVERFLOW
from gradsafe.suggest.rewrite.base import Rewrite, code, squared, strip_parens

_BACKWARD = ("backward", "bwd", "grad", "vjp", "jvp")


class LogQuotient(Rewrite):
    name = "log_quotient"
    title = "one exponential for exp(u) / (v * v) in the backward (no 0 / 0)"
    fixes = frozenset({BACKWARD_OVERFLOW})

    def _in_backward(self) -> bool:
        for node in reversed(self._stack):
            if isinstance(node, cst.FunctionDef):
                name = node.name.value.lower()
                return any(part in name for part in _BACKWARD)
        return False

    def leave_BinaryOperation(self, original: cst.BinaryOperation,
                              updated: cst.BinaryOperation) -> cst.BaseExpression:
        if not isinstance(updated.operator, cst.Divide) or not self._in_backward():
            return updated
        top = self.see(updated.left)
        v = squared(self.see(updated.right))
        u = self.names.arg(top)
        if v is None or self.names.op(top) != "exp" or u is None:
            return updated
        u_text = code(strip_parens(u)).strip()
        v_text = code(strip_parens(v)).strip()
        log = self.names.call("log", self.names.call("abs", v_text))
        self.changed = True
        return self.wrap(self.names.call("exp", f"{u_text} - 2.0 * {log}"))
