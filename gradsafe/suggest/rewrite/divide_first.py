"""`x * relu6(x + 3) / 6` -> `x * (relu6(x + 3) / 6)`: divide the bounded factor first.

Hardswish written this way multiplies x by up to 6 before dividing, so x * 6 overflows from
x = 10920 in float16 (5.7e37 in float32) although the result is about x. When one factor
of the product is bounded (a clamp, relu6, hardtanh, sigmoid or tanh) and the divisor is a
number of size at least 1, dividing that factor first gives the same value up to rounding
and never overflows earlier.
"""

from __future__ import annotations

import libcst as cst

from gradsafe.model.codes import FORWARD_INACCURATE, FORWARD_OVERFLOW
from gradsafe.suggest.rewrite.base import Rewrite, code, number, strip_parens

BOUNDED = frozenset({"clamp", "clip", "clip_by_value", "relu6", "hardtanh", "sigmoid", "tanh",
                     "hard_sigmoid"})


class DivideFirst(Rewrite):
    name = "divide_first"
    title = "divide the bounded factor first (x * (relu6(x + 3) / 6))"
    fixes = frozenset({FORWARD_OVERFLOW, FORWARD_INACCURATE})

    def leave_BinaryOperation(self, original: cst.BinaryOperation,
                              updated: cst.BinaryOperation) -> cst.BaseExpression:
        c = number(updated.right)
        product = strip_parens(updated.left)
        if not isinstance(updated.operator, cst.Divide) or c is None or abs(c) < 1 \
                or not isinstance(product, cst.BinaryOperation) \
                or not isinstance(product.operator, cst.Multiply) or product.lpar:
            return updated
        divisor = code(updated.right).strip()
        left, right = product.left, product.right
        if self.names.op(right) in BOUNDED:
            new = f"{code(left).strip()} * ({code(right).strip()} / {divisor})"
        elif self.names.op(left) in BOUNDED:
            new = f"({code(left).strip()} / {divisor}) * {code(right).strip()}"
        else:
            return updated
        self.changed = True
        return self.wrap(new)
