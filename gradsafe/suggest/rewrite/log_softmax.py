"""`log(softmax(z, ...))` -> `log_softmax(z, ...)`: softmax underflows to 0 for logits
far below the maximum (a spread above ~104 in float32) and its log is -inf."""

from __future__ import annotations

import libcst as cst

from gradsafe.model.codes import BACKWARD_OVERFLOW, FORWARD_OVERFLOW
from gradsafe.suggest.rewrite.base import Rewrite, strip_parens


class LogSoftmax(Rewrite):
    name = "log_softmax"
    title = "use log_softmax for log(softmax(z))"
    fixes = frozenset({BACKWARD_OVERFLOW, FORWARD_OVERFLOW})

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if self.names.op(updated) != "log" or len(updated.args) != 1:
            return updated
        inner = strip_parens(updated.args[0].value)
        if self.names.op(inner) != "softmax" or not isinstance(inner, cst.Call) \
                or not isinstance(inner.func, cst.Attribute):
            return updated
        self.changed = True
        # same module, same arguments (dim/axis): torch.softmax -> torch.log_softmax
        return inner.with_changes(func=inner.func.with_changes(attr=cst.Name("log_softmax")))
