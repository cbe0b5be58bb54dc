"""`tanh(exp(u))` -> `tanh(exp(minimum(u, 3.0)))`: the outer function is flat long before exp
overflows (TanhExp, `x * tanh(exp(x))`).

For u > 88.7 in float32 (11.1 in float16) exp(u) is inf; the forward survives (tanh(inf) = 1),
but the backward multiplies tanh's zero slope by exp's infinite one: NaN. Once exp(u) is past
the point where the outer function rounds to its limit in float64 (tanh(20.1), sigmoid(54.6)
and erf(7.4) are 1.0 in every dtype) nothing changes in the forward, so u is clamped there and
the result is exact: the same values in every dtype, and a zero slope beyond the clamp.
"""

from __future__ import annotations

import libcst as cst

from gradsafe.rewrite.base import PROTECTING, Rewrite, code, strip_parens

# outer function -> u beyond which outer(exp(u)) is 1.0 in float64 and so in every dtype
FLAT_AFTER = {"tanh": "3.0", "sigmoid": "4.0", "erf": "2.0"}


class Saturate(Rewrite):
    name = "saturate"
    title = "clamp exp's argument where the function around it is already flat"

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        outer = self.names.op(updated)
        inner = self.names.arg(updated)
        if outer not in FLAT_AFTER or inner is None:
            return updated
        arg = self.names.arg(inner)
        if self.names.op(inner) != "exp" or arg is None or self.names.op(arg) in PROTECTING:
            return updated
        u = code(strip_parens(arg)).strip()
        self.changed = True
        exp = self.names.call("exp", self.names.clamp(u, None, FLAT_AFTER[outer]))
        if updated.args:  # the outer function as the file spells it
            return self.wrap(f"{code(updated.func).strip()}({exp})")
        return self.wrap(self.names.call(outer, exp))
