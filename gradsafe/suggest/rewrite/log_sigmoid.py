"""`log(sigmoid(u))` -> log-sigmoid: sigmoid(u) underflows to 0 below about -88 (float32)
and its log is -inf with a NaN gradient, while log_sigmoid(u) is about u there."""

from __future__ import annotations

import libcst as cst

from gradsafe.model.codes import BACKWARD_OVERFLOW, FORWARD_OVERFLOW
from gradsafe.suggest.rewrite.base import Rewrite, code, strip_parens


class LogSigmoid(Rewrite):
    name = "log_sigmoid"
    title = "use log_sigmoid for log(sigmoid(u))"
    fixes = frozenset({BACKWARD_OVERFLOW, FORWARD_OVERFLOW})

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        arg = self.names.arg(updated)
        if self.names.op(updated) != "log" or arg is None:
            return updated
        inner = self.see(arg)
        if self.names.op(inner) != "sigmoid" or not isinstance(inner, cst.Call) \
                or (u := self.names.arg(inner)) is None:
            return updated
        self.changed = True
        return self.wrap(self.names.call("log_sigmoid", code(strip_parens(u)).strip()))
