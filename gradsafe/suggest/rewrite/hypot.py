"""`sqrt(u * u + c)` -> `hypot(u, sqrt(c))` and `sqrt(u * u)` -> `abs(u)` (c a number >= 0).

u * u overflows long before the root does (|u| >= 256 in float16, 1.8e19 in float32) and
underflows to 0 for tiny u, where sqrt's derivative is then infinite; hypot and abs never
square. TensorFlow has no hypot: there only the `abs` form applies.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import libcst as cst

from gradsafe.model.codes import FORWARD_INACCURATE, FORWARD_OVERFLOW, INFINITE_DERIVATIVE
from gradsafe.suggest.rewrite.base import Rewrite, code, literal, number, squared, strip_parens


def _sum_of_squares(node: cst.BaseExpression,
                    see: Callable[[cst.BaseExpression], cst.BaseExpression]
                    ) -> tuple[cst.BaseExpression, float] | None:
    """(u, c) of `u * u + c`, `c + u * u` or `u * u` (c = 0); `see` reads a name as its
    value."""
    node = see(node)
    u = squared(node)
    if u is not None:
        return u, 0.0
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Add):
        for square, const in ((node.left, node.right), (node.right, node.left)):
            u, c = squared(see(square)), number(const)
            if u is not None and c is not None and c >= 0:
                return u, c
    return None


class Hypot(Rewrite):
    name = "hypot"
    title = "hypot/abs instead of the root of a square"
    fixes = frozenset({INFINITE_DERIVATIVE, FORWARD_OVERFLOW, FORWARD_INACCURATE})

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        arg = self.names.arg(updated)
        if self.names.op(updated) != "sqrt" or arg is None:
            return updated
        found = _sum_of_squares(arg, self.see)
        if found is None:
            return updated
        u, c = code(strip_parens(found[0])).strip(), found[1]
        if c == 0.0:
            new = self.names.call("abs", u)
        else:
            other = literal(math.sqrt(c))
            if self.names.framework == "torch":  # torch.hypot takes tensors only
                other = self.names.call("full_like", u, other)
            new = self.names.call("hypot", u, other)
        self.changed = True
        return self.wrap(new)
