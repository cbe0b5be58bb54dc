"""Guarded input, the "double where": `where(c, a, f(x))` -> `where(c, a, f(where(c, s, x)))`.

The outer where throws f away where c holds, but its backward still multiplies f's local
derivative by a zero cotangent; 0 * inf = NaN. Feeding f a safe value s (a point of its own
branch's domain, so f and every parameter derivative stay finite) there removes the
non-finite derivative, and the inner where blocks any gradient to x on the discarded side.
"""

from __future__ import annotations

import libcst as cst

from gradsafe.rewrite.base import (
    Condition,
    Names,
    Rewrite,
    condition,
    has_risky,
    norm,
    occurrences,
    replace,
)


def guard_branches(call: cst.Call, cond: Condition, names: Names) -> cst.Call | None:
    """The where call with each risky branch's input replaced by a guarded one."""
    args = list(call.args)
    changed = False
    for i, side in ((1, True), (2, False)):
        branch = args[i].value
        _, free = occurrences(branch, cond.var, names)
        if not free or norm(branch) == cond.var or not has_risky(branch, names):
            continue
        safe = cond.safe(side)
        x = cond.var_code
        guarded = (names.where(cond.text, x, safe) if side
                   else names.where(cond.text, safe, x))
        new, count = replace(branch, cond.var, guarded)
        if count:
            args[i] = args[i].with_changes(value=new)
            changed = True
    return call.with_changes(args=args) if changed else None


def where_parts(call: cst.Call, names: Names) -> tuple[cst.BaseExpression, ...] | None:
    """(c, a, b) of a framework `where(c, a, b)` call."""
    if names.op(call) != "where" or len(call.args) != 3 \
            or any(a.keyword is not None or a.star for a in call.args):
        return None
    return tuple(a.value for a in call.args)


class GuardWhere(Rewrite):
    name = "guard_where"
    title = "guard the input of the discarded where branch (double where)"

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        parts = where_parts(updated, self.names)
        if parts is None:
            return updated
        c, a, b = parts
        cond = condition(c, (a, b), self.defs)
        if cond is None:
            return updated
        new = guard_branches(updated, cond, self.names)
        if new is None:
            return updated
        self.changed = True
        return new
