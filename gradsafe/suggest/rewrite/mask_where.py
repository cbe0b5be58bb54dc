"""Mask-multiply forms -> `where` with guarded inputs:
`mask * f(x) + (1 - mask) * g(x)` -> `where(mask, f(x'), g(x''))`.

A mask multiplies both branches everywhere, so where g(x) is inf outside its region the
forward is 0 * inf = NaN. A where selects instead of multiplying, and guarding each branch's
input (see guard_where) keeps the backward finite too. Masks inside the branches (seed 000's
`exp(~mask * x)`) are no longer needed and are removed.
"""

from __future__ import annotations

import libcst as cst

from gradsafe.model.codes import BRANCH_LEAK, MASK_MULTIPLY, PARAMETER_GRADIENT
from gradsafe.suggest.rewrite.base import (
    Rewrite,
    atom,
    bool_text,
    code,
    condition,
    expr,
    factors,
    norm,
    strip_parens,
)
from gradsafe.suggest.rewrite.guard_where import guard_branches


def _splits(node: cst.BaseExpression) -> list[tuple[cst.BaseExpression, cst.BaseExpression]]:
    """(one factor, the product of the others) for each factor of a product."""
    parts = factors(strip_parens(node))
    if len(parts) < 2:
        return []
    out = []
    for i, m in enumerate(parts):
        rest = [code(strip_parens(f) if len(parts) == 2 else f).strip()
                for j, f in enumerate(parts) if j != i]
        out.append((m, expr(" * ".join(rest))))
    return out


def _complement(node: cst.BaseExpression) -> str | None:
    """m of `~m`, `1 - m`, `(1 - m)`, `logical_not(m)`."""
    node = strip_parens(node)
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.BitInvert):
        return norm(node.expression)
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Subtract) \
            and norm(node.left) == "1":
        return norm(node.right)
    return None


class _Unmask(cst.CSTTransformer):
    """`m * x` (or `x * m`) -> `x` for a mask m: masks inside a branch are not needed once
    the branch sits in a where."""

    def __init__(self, masks: set[str], var: str) -> None:
        super().__init__()
        self.masks, self.var = masks, var

    def leave_BinaryOperation(self, original: cst.BinaryOperation,
                              updated: cst.BinaryOperation) -> cst.BaseExpression:
        if not isinstance(updated.operator, cst.Multiply):
            return updated
        for m, v in ((updated.left, updated.right), (updated.right, updated.left)):
            if norm(v) == self.var and (norm(m) in self.masks
                                        or _complement(m) in self.masks):
                return strip_parens(v) if not updated.lpar else v.with_changes(
                    lpar=updated.lpar, rpar=updated.rpar)
        return updated


class MaskWhere(Rewrite):
    name = "mask_where"
    title = "select with a where instead of multiplying by a mask, with guarded inputs"
    fixes = frozenset({BRANCH_LEAK, MASK_MULTIPLY, PARAMETER_GRADIENT})

    def leave_BinaryOperation(self, original: cst.BinaryOperation,
                              updated: cst.BinaryOperation) -> cst.BaseExpression:
        if not isinstance(updated.operator, cst.Add):
            return updated
        for mask, f in _splits(updated.left):
            for other, g in _splits(updated.right):
                if _complement(other) == norm(mask):
                    new = self._where(mask, f, g)
                    if new is not None:
                        self.changed = True
                        return new
        return updated

    def _where(self, mask: cst.BaseExpression, f: cst.BaseExpression,
               g: cst.BaseExpression) -> cst.BaseExpression | None:
        cond = condition(mask, (f, g), self.defs)
        text = bool_text(mask, self.defs)
        if cond is None or text is None:
            return None
        cond.text = text
        unmask = _Unmask({norm(mask)}, cond.var)
        f2, g2 = f.visit(unmask), g.visit(unmask)
        assert isinstance(f2, cst.BaseExpression) and isinstance(g2, cst.BaseExpression)
        call = atom(self.names.where(text, code(strip_parens(f2)).strip(),
                                     code(strip_parens(g2)).strip()))
        assert isinstance(call, cst.Call)
        return guard_branches(call, cond, self.names, self.narrow) or call
