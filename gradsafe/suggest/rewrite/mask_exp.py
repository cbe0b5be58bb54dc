"""Seed 000's remedy: mask inside the exponential.

    where(x > 0, x, exp(x) - 1)  ->  mask = x > 0
                                     mask * x + ~mask * (exp(~mask * x) - 1)

The discarded branch sees exp(0) instead of an overflowing exp(x). It is exact for every
finite x, but at x = +inf the masked argument is 0 * inf = NaN, so the result there is NaN
where the where form gives inf: `suggest` prefers the guarded where when both verify.
"""

from __future__ import annotations

import libcst as cst

from gradsafe.model.codes import BRANCH_LEAK, PARAMETER_GRADIENT
from gradsafe.suggest.rewrite.base import (
    Condition,
    Hoisting,
    atom,
    code,
    condition,
    contains,
    has_risky,
    replace,
)
from gradsafe.suggest.rewrite.clamp_arg import POWERS
from gradsafe.suggest.rewrite.guard_where import where_parts


class MaskExp(Hoisting):
    name = "mask_exp"
    title = "mask inside the exponential (seed 000's form)"
    fixes = frozenset({BRANCH_LEAK, PARAMETER_GRADIENT})

    def _exp_side(self, a: cst.BaseExpression, b: cst.BaseExpression,
                  cond: Condition) -> bool | None:
        """Which branch holds the exponential of the input (the other must be plain)."""
        has = [self._has_exp(a, cond.var), self._has_exp(b, cond.var)]
        if has == [False, True] and not has_risky(a, self.names):
            return False
        if has == [True, False] and not has_risky(b, self.names):
            return True
        return None

    def _has_exp(self, node: cst.BaseExpression, var: str) -> bool:
        found = [False]
        names = self.names

        class _V(cst.CSTVisitor):
            def visit_Call(self, node: cst.Call) -> None:
                if names.op(node) in POWERS and contains(node, var):
                    found[0] = True

        node.visit(_V())
        return found[0]

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        parts = where_parts(updated, self.names)
        if parts is None or self.pending:
            return updated
        c, a, b = parts
        cond = condition(c, (a, b), self.defs)
        if cond is None:
            return updated
        side = self._exp_side(a, b, cond)
        function = self.function()
        if side is None or function is None:  # the mask needs a line of its own
            return updated
        mask = self.fresh(function, "mask")[0]
        x = cond.var_code
        if self.names.framework not in ("torch", "jax"):  # no bool * float: a float mask
            self.pending.append(f"{mask} = {self.names.call('cast', cond.text, f'{x}.dtype')}")
            keep, drop = mask, f"(1 - {mask})"
        else:
            self.pending.append(f"{mask} = {cond.text}")
            keep, drop = mask, f"~{mask}"
        if side:
            a, _ = replace(a, cond.var, f"{keep} * {x}", POWERS, self.names)
        else:
            b, _ = replace(b, cond.var, f"{drop} * {x}", POWERS, self.names)
        self.changed = True
        return self.wrap(f"{keep} * {code(atom(code(a).strip()))} + "
                    f"{drop} * {code(atom(code(b).strip()))}")
