"""`log(1 + exp(u))` / `log1p(exp(u))` -> the framework's softplus (`logaddexp(u, 0)`).

exp(u) overflows for u above log(max) (88.72 in float32, 11.09 in float16): the forward is
inf and the backward inf / inf = NaN, although softplus(u) is just about u there.
"""

from __future__ import annotations

import libcst as cst

from gradsafe.model.codes import BACKWARD_OVERFLOW, FORWARD_OVERFLOW
from gradsafe.suggest.rewrite.base import Rewrite, code, strip_parens
from gradsafe.suggest.rewrite.log1p import one_plus


class Softplus(Rewrite):
    name = "softplus"
    title = "use softplus (logaddexp) for log(1 + exp(u))"
    fixes = frozenset({BACKWARD_OVERFLOW, FORWARD_OVERFLOW})

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        op = self.names.op(updated)
        arg = self.names.arg(updated)
        if op not in ("log", "log1p") or arg is None:
            return updated
        inner = self.see(arg) if op == "log1p" else one_plus(self.see(arg))
        inner = self.see(inner) if inner is not None else None
        if inner is None or self.names.op(inner) != "exp" or not isinstance(inner, cst.Call) \
                or (u := self.names.arg(inner)) is None:
            return updated
        self.changed = True
        return self.wrap(self.names.softplus(code(strip_parens(u)).strip()))
