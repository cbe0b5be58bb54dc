"""Safe square root: `sqrt(u)` -> `where(u > 0, sqrt(where(u > 0, u, 1)), 0)`.

sqrt's derivative is infinite at 0 (and NaN below), so `x * sqrt(x)` or `sqrt(x**2 + b)`
with b = 0 have a NaN gradient at 0 although the true one is finite. The guarded form has
the same value for u >= 0 and takes the subgradient 0 at u = 0.
"""

from __future__ import annotations

import libcst as cst

from gradsafe.model.codes import INFINITE_DERIVATIVE
from gradsafe.suggest.rewrite.base import Hoisting, code, strip_parens
from gradsafe.suggest.rewrite.bindings import reads, stores


class SafeSqrt(Hoisting):
    name = "safe_sqrt"
    title = "guard sqrt at 0 (where(u > 0, sqrt(where(u > 0, u, 1)), 0))"
    fixes = frozenset({INFINITE_DERIVATIVE})

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        arg = self.names.arg(updated)
        if self.names.op(updated) != "sqrt" or arg is None:
            return updated
        u = code(strip_parens(arg)).strip()
        bare = strip_parens(arg)
        function = self.function()
        in_where = any(isinstance(n, cst.Call) and self.names.op(n) == "where"
                       for n in self._stack[:-1])
        # not out of a where's branch: a guard on that branch must still reach u's input
        if function is not None and not in_where \
                and not isinstance(bare, (cst.Name, cst.Attribute)):
            # u is used three times: computed once, on a line of its own (`sqrt(softplus(x))`
            # keeps one softplus)
            name = base = self.names.op(bare) or "u"
            used = reads(function) | set(stores(function)) | self.taken
            n = 1
            while name in used:  # (an attribute's name, F.softplus's, is no clash)
                n += 1
                name = f"{base}{n}"
            self.taken.add(name)
            self.pending.append(f"{name} = {u}")
            u = name
        positive = f"{u} > 0"
        inner = self.names.where(positive, u, "1.0")
        self.changed = True
        return self.wrap(self.names.where(positive, self.names.call("sqrt", inner), "0.0"))
