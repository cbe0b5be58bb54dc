"""Compute in float32 and cast the result back: `def f(x): ...; return y` ->
`dtype = x.dtype; x = x.to(promote_types(dtype, float32)); ...; return y.to(dtype)`.

In float16 (and bfloat16) a formula whose result is representable can still fail inside:
an eps of 1e-20 or 1e-12 is 0 (`log(t.clamp(min=1e-20))` is -inf at t = 0), a square
overflows from 256 (`x + sqrt(x*x + b)`, a variance), a sum of squares underflows to 0
(`normalize` of a tiny row). Mixed-precision practice runs such functions in float32; this
rewrite does that for the checked function as a whole, for built-in calls too
(`ops.sparsemax`), which no formula rewrite can reach. promote_types keeps float64 as it is,
so only narrower inputs change. Applied to the target's own function (a class's
forward/call/__call__), never to helpers or hand-written backward functions.
"""

from __future__ import annotations

import libcst as cst

from gradsafe.model.codes import (
    BACKWARD_OVERFLOW,
    FORWARD_INACCURATE,
    FORWARD_OVERFLOW,
    INFINITE_DERIVATIVE,
)
from gradsafe.suggest.rewrite.base import Names, Rewrite, Unavailable, atom, code, fresh_names
from gradsafe.suggest.rewrite.bindings import _targets

# the methods that compute a class target's output
_METHODS = frozenset({"forward", "call", "__call__"})
# leading `x = f(x)` conversions that may stay before the cast (jnp.asarray,
# convert_to_tensor): their result is what gets a dtype
_CONVERSIONS = frozenset({"asarray", "array", "convert_to_tensor", "as_tensor", "tensor"})


class Widen(Rewrite):
    name = "widen"
    # what only the dtype breaks: an overflow or underflow in float16/bfloat16 intermediates
    fixes = frozenset({BACKWARD_OVERFLOW, INFINITE_DERIVATIVE, FORWARD_OVERFLOW,
                       FORWARD_INACCURATE})
    title = ("compute in float32 and cast the result back (float16/bfloat16 intermediates "
             "overflow or underflow where the result itself is representable)")

    def __init__(self, names: Names, defs: dict[str, cst.BaseExpression],
                 narrow: bool = False) -> None:
        super().__init__(names, defs, narrow)
        self._depth = 0  # FunctionDefs entered: only the outermost target function changes

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        self._depth += 1
        return True

    def leave_FunctionDef(self, original: cst.FunctionDef,
                          updated: cst.FunctionDef) -> cst.FunctionDef:
        self._depth -= 1
        in_class = any(isinstance(n, cst.ClassDef) for n in self._stack[:-1])
        if in_class and updated.name.value not in _METHODS:
            return updated
        if not in_class and self._depth > 0:
            return updated
        params = [p.name.value for p in updated.params.params]
        if in_class:
            params = params[1:]
        if not params or not isinstance(updated.body, cst.IndentedBlock):
            return updated
        var = params[0]
        body = list(updated.body.body)
        at = 0
        if body and _docstring(body[0]):
            at = 1
        while at < len(body) and self._leading(body[at], var):
            at += 1
        dtype, = fresh_names(updated, ("dtype",))
        returns = _Returns(self, dtype)
        rest = [stmt.visit(returns) for stmt in body[at:]]
        if not returns.count:
            return updated
        head = [cst.parse_statement(f"{dtype} = {var}.dtype\n"),
                cst.parse_statement(f"{var} = {self.cast(var, self.wide(dtype))}\n")]
        first = rest[0] if rest else None
        if isinstance(first, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
            head[0] = head[0].with_changes(leading_lines=first.leading_lines)
            rest[0] = first.with_changes(leading_lines=())
        self.changed = True
        new_body = [*body[:at], *head, *rest]
        return updated.with_changes(body=updated.body.with_changes(body=new_body))

    def _leading(self, stmt: cst.BaseStatement, var: str) -> bool:
        """A check or conversion of the input at the top of the body
        (`check_arraylike("f", x)`, `x = jnp.asarray(x)`)."""
        if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
            return False
        small = stmt.body[0]
        if isinstance(small, cst.Expr) and isinstance(small.value, cst.Call):
            return True
        if isinstance(small, cst.Assign) and isinstance(small.value, cst.Call) \
                and len(small.targets) == 1 and _targets(small.targets[0].target) == [var]:
            func = small.value.func
            name = func.attr.value if isinstance(func, cst.Attribute) else \
                func.value if isinstance(func, cst.Name) else ""
            return name in _CONVERSIONS
        return False

    def wide(self, dtype: str) -> str:
        """The input's dtype promoted to at least float32, in the file's dialect."""
        fw = self.names.framework
        if fw == "torch":
            t = self.names.spell("torch")
            return f"{t}.promote_types({dtype}, {t}.float32)"
        if fw == "jax":
            jnp = self.names.spell("jax.numpy")
            return f"{jnp}.promote_types({dtype}, {jnp}.float32)"
        if fw == "tensorflow":
            tf = self.names.spell("tensorflow")
            return f"{tf}.experimental.numpy.promote_types({dtype}, {tf}.float32)"
        if fw == "keras_ops":
            return f'{self.names.spell("keras.backend")}.result_type({dtype}, "float32")'
        raise Unavailable(f"{fw}: no cast")

    def cast(self, value: str, dtype: str) -> str:
        fw = self.names.framework
        if fw == "torch":
            return f"{code(atom(value)).strip()}.to({dtype})"
        if fw == "jax":
            return f"{code(atom(value)).strip()}.astype({dtype})"
        if fw in ("tensorflow", "keras_ops"):
            return self.names.call("cast", value, dtype)
        raise Unavailable(f"{fw}: no cast")


class _Returns(cst.CSTTransformer):
    """`return y` -> `return cast(y, dtype)` in one function (not in nested ones)."""

    def __init__(self, outer: Widen, dtype: str) -> None:
        super().__init__()
        self.outer, self.dtype, self.count = outer, dtype, 0

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False

    def leave_Return(self, original: cst.Return, updated: cst.Return) -> cst.Return:
        value = updated.value
        if value is None or isinstance(value, cst.Tuple):
            raise Unavailable("a return without one tensor")
        self.count += 1
        text = code(value).strip()
        return updated.with_changes(value=cst.parse_expression(
            self.outer.cast(text, self.dtype)))


def _docstring(stmt: cst.BaseStatement) -> bool:
    return isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 \
        and isinstance(stmt.body[0], cst.Expr) \
        and isinstance(stmt.body[0].value, (cst.SimpleString, cst.ConcatenatedString))

