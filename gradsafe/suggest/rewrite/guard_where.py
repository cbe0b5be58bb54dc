"""Guarded input, the "double where": `where(c, a, f(x))` -> `where(c, a, f(where(c, s, x)))`.

The outer where throws f away where c holds, but its backward still multiplies f's local
derivative by a zero cotangent; 0 * inf = NaN. Feeding f a safe value s (a point of its own
branch's domain, so f and every parameter derivative stay finite) there removes the
non-finite derivative, and the inner where blocks any gradient to x on the discarded side.
"""

from __future__ import annotations

import libcst as cst

from gradsafe.model.codes import BRANCH_LEAK, DEGENERATE_PARAMETER, PARAMETER_GRADIENT
from gradsafe.suggest.rewrite.base import (
    Condition,
    Names,
    Rewrite,
    atom,
    code,
    condition,
    contains,
    expr,
    has_risky,
    norm,
    number,
    occurrences,
    replace,
    strip_parens,
)

# calls whose value and derivative are finite for every finite argument: an input needs no
# guard for their sake (their arguments may need one for another call's sake)
BENIGN = frozenset({"sigmoid", "tanh", "sign", "abs", "relu", "relu6", "erf", "sin", "cos",
                    "clamp", "clip", "clip_by_value", "minimum", "maximum", "where",
                    "zeros_like", "ones_like", "full_like", "softplus", "log_sigmoid",
                    "logsigmoid", "hardtanh"})


def risky_calls(branch: cst.BaseExpression, var: str, names: Names,
                guard: str) -> set[str] | None:
    """The framework calls in a branch whose input still needs a guard (exp, log, sqrt, ...;
    not one already inside a where on the condition `guard`), or None when something else
    could make the branch non-finite: a call gradsafe does not know (a helper, a method), a
    division by or a power of anything but a number."""
    risky: set[str] = set()
    unknown = [False]

    class _Visitor(cst.CSTVisitor):
        def visit_Call(self, node: cst.Call) -> bool:
            op = names.op(node)
            if op is None:
                unknown[0] = unknown[0] or contains(node, var)
                return False
            if op not in BENIGN and occurrences(node, var, names, guard)[1]:
                risky.add(op)
            return True

        def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
            if isinstance(node.operator, (cst.Divide, cst.FloorDivide, cst.Modulo)):
                unknown[0] = unknown[0] or number(node.right) is None
            elif isinstance(node.operator, cst.Power):
                k = number(node.right)
                unknown[0] = unknown[0] or k is None or k < 0 or k != int(k)

    branch.visit(_Visitor())
    return None if unknown[0] else risky


def guard_branches(call: cst.Call, cond: Condition, names: Names,
                   narrow: bool = False) -> cst.Call | None:
    """The where call with each risky branch's input replaced by a guarded one: every
    occurrence of the input in the branch, or with `narrow` only those inside the calls that
    need it (`x * sigmoid(x)` needs none; `expm1(x) * sigmoid(x)` one, inside expm1)."""
    args = list(call.args)
    changed = False
    guard = norm(expr(cond.text))
    for i, side in ((1, True), (2, False)):
        branch = args[i].value
        _, free = occurrences(branch, cond.var, names, guard)
        if not free or norm(branch) == cond.var or not has_risky(branch, names):
            continue
        inside: tuple[str, ...] = ()
        if narrow:
            calls = risky_calls(branch, cond.var, names, guard)
            if calls is not None and not calls:
                continue
            inside = tuple(sorted(calls or ()))
        safe = cond.safe(side)
        x = cond.var_code
        guarded = (names.where(cond.text, x, safe) if side
                   else names.where(cond.text, safe, x))
        new, count = replace(branch, cond.var, guarded, inside, names)
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
    fixes = frozenset({BRANCH_LEAK, PARAMETER_GRADIENT, DEGENERATE_PARAMETER})

    def __init__(self, names: Names, defs: dict[str, cst.BaseExpression],
                 narrow: bool = False) -> None:
        super().__init__(names, defs, narrow)

    def _inline(self, branch: cst.BaseExpression) -> tuple[cst.BaseExpression, str | None]:
        """A branch that is a name bound once to a risky expression (`middle` in
        `where(x >= b, x, middle)`) is guarded where it is used: inline it."""
        bare = strip_parens(branch)
        if isinstance(bare, cst.Name) and bare.value in self.defs:
            # names inside it too (`neg_part = elu_neg + sp_neg`, `elu_neg = a * (exp(x) - 1)`)
            value = self.defs[bare.value].visit(_Expand(self.defs, {bare.value}))
            assert isinstance(value, cst.BaseExpression)
            if has_risky(value, self.names):
                return expr(code(value).strip()), bare.value
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
        new = guard_branches(updated.with_changes(args=args), cond, self.names, self.narrow)
        if new is None:
            return updated
        for name, before, after in ((name_a, parts[1], new.args[1].value),
                                    (name_b, parts[2], new.args[2].value)):
            if name is None:
                continue
            if norm(after) == norm(self.defs[name]):
                # inlined but not guarded: put the name back (a guarded one is no longer
                # read, and rewrite.apply drops its assignment)
                i = 1 if after is new.args[1].value else 2
                new = new.with_changes(args=[*new.args[:i], new.args[i].with_changes(
                    value=before), *new.args[i + 1:]])
        self.changed = True
        return new


class _Expand(cst.CSTTransformer):
    """Names bound once in the function replaced by their (parenthesised) values, a few
    levels deep; attribute names and keywords stay."""

    def __init__(self, defs: dict[str, cst.BaseExpression], seen: set[str],
                 depth: int = 0) -> None:
        super().__init__()
        self.defs, self.seen, self.depth = defs, seen, depth

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        node.value.visit(self)
        return False

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute
                        ) -> cst.BaseExpression:
        value = original.value.visit(self)
        assert isinstance(value, cst.BaseExpression)
        return updated.with_changes(value=value)

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.BaseExpression:
        name = original.value
        if name not in self.defs or name in self.seen or self.depth >= 3:
            return updated
        value = self.defs[name].visit(_Expand(self.defs, self.seen | {name}, self.depth + 1))
        assert isinstance(value, cst.BaseExpression)
        return atom(code(value).strip())
