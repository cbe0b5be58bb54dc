"""A result multiplied by a mask of its input -> a where on a guarded input:
`return out * (x < 1.0)` -> `inside = x < 1.0; x = where(inside, x, 0.0); ...;
return where(inside, out, 0.0)`.

Polynomial cutoff envelopes (`1 - c1 x^p + c2 x^(p+1) - c3 x^(p+2)`, NequIP, MACE, DimeNet)
are computed for every x and then zeroed outside the cutoff by a mask; in float16 the powers
overflow from x ~ 2.73, and the mask gives inf * 0 = NaN in the forward. A where selects
instead of multiplying, and giving every line after the input's last assignment the guarded
input (a point inside the mask where it is false) keeps the discarded side finite, so the
backward has no 0 * inf either. Where the mask is true every value is the same.
"""

from __future__ import annotations

import libcst as cst

from gradsafe.model.codes import BRANCH_LEAK, MASK_MULTIPLY
from gradsafe.suggest.rewrite.base import (
    Compound,
    Condition,
    Rewrite,
    _boolean,
    code,
    condition,
    contains,
    dotted,
    expr,
    factors,
    fresh_names,
    literal,
    strip_parens,
)
from gradsafe.suggest.rewrite.bindings import _targets, reads

# tensor methods that turn a boolean mask into numbers
_CASTS = frozenset({"float", "double", "half", "bfloat16", "to", "type", "type_as", "astype"})


def _stores(stmt: cst.CSTNode, name: str) -> bool:
    """Does a statement (anywhere inside) assign to the name?"""
    found = [False]

    class _Visitor(cst.CSTVisitor):
        def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
            found[0] = found[0] or name in _targets(node.target)

        def visit_AugAssign(self, node: cst.AugAssign) -> None:
            found[0] = found[0] or name in _targets(node.target)

        def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
            found[0] = found[0] or name in _targets(node.target)

        def visit_For(self, node: cst.For) -> None:
            found[0] = found[0] or name in _targets(node.target)

    stmt.visit(_Visitor())
    return found[0]


class MaskZero(Rewrite):
    name = "mask_zero"
    title = "select with a where instead of multiplying by a mask, on a guarded input"
    fixes = frozenset({BRANCH_LEAK, MASK_MULTIPLY})

    def leave_FunctionDef(self, original: cst.FunctionDef,
                          updated: cst.FunctionDef) -> cst.FunctionDef:
        if not isinstance(updated.body, cst.IndentedBlock):
            return updated
        body = list(updated.body.body)
        if not body or not isinstance(body[-1], cst.SimpleStatementLine) \
                or len(body[-1].body) != 1 or not isinstance(body[-1].body[0], cst.Return) \
                or body[-1].body[0].value is None:
            return updated
        ret = body[-1].body[0]
        assert ret.value is not None
        found = self._mask(ret.value, body)
        if found is None:
            return updated
        cond, mask_text, rest = found
        var = cond.var_code
        # the input's last top-level assignment; one inside a block cannot be placed after
        last = -1
        for i, stmt in enumerate(body[:-1]):
            if _stores(stmt, var):
                if not isinstance(stmt, cst.SimpleStatementLine):
                    return updated
                last = i
        # the mask is computed where the guard goes: what it reads must be there already
        defined = {n for stmt in body[:last + 1] for n in _assigned(stmt)}
        later = {n for stmt in body[last + 1:-1] for n in _assigned(stmt)}
        if reads(expr(mask_text)) & (later - defined):
            return updated
        at = last + 1
        while at < len(body) - 1 and not contains(body[at], cond.var):
            at += 1  # right before the first line that reads the input
        [inside] = fresh_names(updated, ("inside",))
        guard = [cst.parse_statement(f"{inside} = {mask_text}\n"),
                 cst.parse_statement(
                     f"{var} = {self.names.where(inside, var, _inside(cond))}\n")]
        first = body[at]
        if isinstance(first, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
            # comments and blank lines above that line stay above the new ones
            guard[0] = guard[0].with_changes(leading_lines=first.leading_lines)
            body[at] = first.with_changes(leading_lines=())
        new_ret = ret.with_changes(value=expr(self.names.where(inside, rest, "0.0")))
        body[-1] = body[-1].with_changes(body=[new_ret])
        body[at:at] = guard
        self.changed = True
        return updated.with_changes(body=updated.body.with_changes(body=body))

    def _mask(self, value: cst.BaseExpression, body: list[cst.BaseStatement]
              ) -> tuple[Condition, str, str] | None:
        """(condition, its code, the product of the other factors) of `out * mask`."""
        parts = factors(strip_parens(value))
        if len(parts) < 2:
            return None
        for i, m in enumerate(parts):
            cmp = self._compared(m)
            if cmp is None:
                continue
            others = [p for j, p in enumerate(parts) if j != i]
            rest = " * ".join(code(strip_parens(p) if len(others) == 1 else p).strip()
                              for p in others)
            # the input must reach the other factors: through them or the lines before
            cond = condition(cmp, [expr(rest), *(s for s in body if isinstance(
                s, cst.SimpleStatementLine))], self.defs)  # type: ignore[list-item]
            if cond is None or not isinstance(strip_parens(expr(cond.var_code)), cst.Name):
                continue
            return cond, code(strip_parens(cmp)).strip(), rest
        return None

    def _compared(self, node: cst.BaseExpression, depth: int = 0
                  ) -> cst.BaseExpression | None:
        """The comparison a mask factor is: `(x < 1.0)`, a name bound to one, or either cast
        to a number (`.float()`, `.to(x.dtype)`, `.type_as(x)`, `tf.cast(m, x.dtype)`,
        `m.astype(x.dtype)`)."""
        node = strip_parens(node)
        if depth > 3:
            return None
        if isinstance(node, cst.Comparison) or (isinstance(node, cst.BinaryOperation)
                                                and isinstance(node.operator,
                                                               (cst.BitAnd, cst.BitOr))):
            return _boolean(node, self.defs)
        if isinstance(node, cst.Name) and node.value in self.defs:
            return self._compared(self.defs[node.value], depth + 1)
        if not isinstance(node, cst.Call):
            return None
        if isinstance(node.func, cst.Attribute) and node.func.attr.value in _CASTS \
                and not self.names.is_framework(dotted(node.func)):
            return self._compared(node.func.value, depth + 1)
        if self.names.op(node) in ("cast", "asarray", "astype") and node.args:
            return self._compared(node.args[0].value, depth + 1)
        return None


def _inside(cond: Condition) -> str:
    """A point where the mask holds: halfway to a positive upper bound (`x < 1.0` -> 0.5, not
    0.0, where envelopes like DimeNet's divide by x), else the condition's own safe point."""
    if cond.op in ("<", "<=") and cond.value is not None and cond.value > 0 \
            and not isinstance(cond, Compound):
        return literal(cond.value / 2)
    return cond.safe(True)


def _assigned(stmt: cst.CSTNode) -> set[str]:
    found: set[str] = set()

    class _Visitor(cst.CSTVisitor):
        def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
            found.update(_targets(node.target))

        def visit_AugAssign(self, node: cst.AugAssign) -> None:
            found.update(_targets(node.target))

    stmt.visit(_Visitor())
    return found
