"""Safe square root: `sqrt(u)` -> `where(u > 0, sqrt(where(u > 0, u, 1)), 0)`.

sqrt's derivative is infinite at 0 (and NaN below), so `x * sqrt(x)` or `sqrt(x**2 + b)`
with b = 0 have a NaN gradient at 0 although the true one is finite. The guarded form has
the same value for u >= 0 and takes the subgradient 0 at u = 0.
"""

from __future__ import annotations

import libcst as cst

from gradsafe.rewrite.base import Rewrite, code, strip_parens


class SafeSqrt(Rewrite):
    name = "safe_sqrt"
    title = "guard sqrt at 0 (where(u > 0, sqrt(where(u > 0, u, 1)), 0))"

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        arg = self.names.arg(updated)
        if self.names.op(updated) != "sqrt" or arg is None:
            return updated
        u = code(strip_parens(arg)).strip()
        positive = f"{u} > 0"
        inner = self.names.where(positive, u, "1.0")
        self.changed = True
        return self.wrap(self.names.where(positive, self.names.call("sqrt", inner), "0.0"))
