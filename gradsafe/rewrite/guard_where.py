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
    DropAssignments,
    Names,
    Rewrite,
    code,
    condition,
    expr,
    has_risky,
    loads,
    norm,
    occurrences,
    replace,
    strip_parens,
)


def guard_branches(call: cst.Call, cond: Condition, names: Names) -> cst.Call | None:
    """The where call with each risky branch's input replaced by a guarded one."""
    args = list(call.args)
    changed = False
    for i, side in ((1, True), (2, False)):
        branch = args[i].value
        _, free = occurrences(branch, cond.var, names, norm(expr(cond.text)))
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

    def __init__(self, names: Names, defs: dict[str, cst.BaseExpression]) -> None:
        super().__init__(names, defs)
        self.inlined: set[str] = set()

    def _inline(self, branch: cst.BaseExpression) -> tuple[cst.BaseExpression, str | None]:
        """A branch that is a name bound once to a risky expression (`middle` in
        `where(x >= b, x, middle)`) is guarded where it is used: inline it."""
        bare = strip_parens(branch)
        if isinstance(bare, cst.Name) and bare.value in self.defs \
                and has_risky(self.defs[bare.value], self.names):
            return expr(code(self.defs[bare.value]).strip()), bare.value
        return branch, None

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        parts = where_parts(updated, self.names)
        if parts is None:
            return updated
        c = parts[0]
        (a, name_a), (b, name_b) = self._inline(parts[1]), self._inline(parts[2])
        cond = condition(c, (a, b), self.defs)
        if cond is None:
            return updated
        args = list(updated.args)
        args[1] = args[1].with_changes(value=a)
        args[2] = args[2].with_changes(value=b)
        new = guard_branches(updated.with_changes(args=args), cond, self.names)
        if new is None:
            return updated
        for name, before, after in ((name_a, parts[1], new.args[1].value),
                                    (name_b, parts[2], new.args[2].value)):
            if name is None:
                continue
            if norm(after) == norm(self.defs[name]):
                # inlined but not guarded: put the name back
                i = 1 if after is new.args[1].value else 2
                new = new.with_changes(args=[*new.args[:i], new.args[i].with_changes(
                    value=before), *new.args[i + 1:]])
            else:
                self.inlined.add(name)
        self.changed = True
        return new

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef
                          ) -> cst.FunctionDef:
        unused = {n for n in self.inlined if loads(updated, n) == 0}
        if not unused:
            return updated
        out = updated.visit(DropAssignments(unused))
        assert isinstance(out, cst.FunctionDef)
        return out
