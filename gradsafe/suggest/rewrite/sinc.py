"""Safe `sin(u) / u` near 0: a Maclaurin series where |u| < 0.01, the quotient elsewhere.

At u = 0 the quotient is 0 / 0 = NaN, and guarding only u == 0 is not enough: for tiny u the
quotient's backward divides by u * u (or 1 / u), which underflows (overflows), so the gradient
is inf or NaN there although the true derivative is about -u / 3. Below 0.01 the series
1 - u²/6 + u⁴/120 is within 2e-16 of sin(u)/u (the next term is u⁶/5040), so the forward
agrees in every dtype up to float64; at 0.01, u * u is a normal number even in float16, so the
quotient's backward is finite. Both branches get guarded inputs so that the discarded one is
finite too (the series' u * u overflows for large u).

Inside a function the condition and the two guarded inputs become assignments before the
statement, so the expression stays readable; in a lambda or comprehension, whose variables
those lines could not see, they stay inline.
"""

from __future__ import annotations

import libcst as cst

from gradsafe.model.codes import BACKWARD_OVERFLOW, INFINITE_DERIVATIVE
from gradsafe.suggest.rewrite.base import Hoisting, code, norm, strip_parens

NEAR_ZERO = "0.01"


class Sinc(Hoisting):
    name = "sinc"
    title = "sin(u) / u as a series near u = 0 (guarded inputs)"
    fixes = frozenset({BACKWARD_OVERFLOW, INFINITE_DERIVATIVE})

    def leave_BinaryOperation(self, original: cst.BinaryOperation,
                              updated: cst.BinaryOperation) -> cst.BaseExpression:
        if not isinstance(updated.operator, cst.Divide):
            return updated
        top = strip_parens(updated.left)
        arg = self.names.arg(top)
        if self.names.op(top) != "sin" or arg is None or norm(arg) != norm(updated.right):
            return updated
        w = self.names.where
        u = code(strip_parens(updated.right)).strip()  # only ever a call's argument
        near = f"{self.names.call('abs', u)} < {NEAR_ZERO}"
        function = self.function()
        named = self.fresh(function, "near_zero", "small", "away") if function else None
        if named:
            self.pending.append(f"{named[0]} = {near}")
            near = named[0]
        small = w(near, u, "0.0")  # the series' input: 0 where it is discarded
        away = w(near, "1.0", u)  # the quotient's input: 1 where it is discarded
        if named:
            self.pending += [f"{named[1]} = {small}", f"{named[2]} = {away}"]
            small, away = named[1], named[2]
        series = f"1.0 - {small} * {small} / 6.0 * (1.0 - {small} * {small} / 20.0)"
        self.changed = True
        return self.wrap(w(near, series, f"{self.names.call('sin', away)} / {away}"))
