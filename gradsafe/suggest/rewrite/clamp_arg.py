"""Clamp the argument of exp/pow to the branch's domain:
`where(x > 0, x, exp(x) - 1)` -> `where(x > 0, x, exp(clamp(x, max=0)) - 1)`.

Inside its own domain the branch is unchanged; outside it (where the where discards it)
the clamped argument cannot overflow, so its derivative stays finite.
"""

from __future__ import annotations

import libcst as cst

from gradsafe.model.codes import BRANCH_LEAK, PARAMETER_GRADIENT
from gradsafe.suggest.rewrite.base import Rewrite, condition, occurrences, replace
from gradsafe.suggest.rewrite.guard_where import where_parts

POWERS = ("exp", "expm1", "exp2", "pow", "power")


class ClampArg(Rewrite):
    name = "clamp_arg"
    title = "clamp the argument of exp/pow to the branch's domain"
    fixes = frozenset({BRANCH_LEAK, PARAMETER_GRADIENT})

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        parts = where_parts(updated, self.names)
        if parts is None:
            return updated
        c, a, b = parts
        cond = condition(c, (a, b), self.defs)
        if cond is None:
            return updated
        args = list(updated.args)
        for i, side in ((1, True), (2, False)):
            bounds = cond.bounds(side)
            branch = args[i].value
            if bounds is None or not occurrences(branch, cond.var, self.names)[1]:
                continue
            clamped = self.names.clamp(cond.var_code, *bounds)
            new, count = replace(branch, cond.var, clamped, POWERS, self.names)
            if count:
                args[i] = args[i].with_changes(value=new)
                self.changed = True
        return updated.with_changes(args=args)
