"""What every rewrite shares: the file's framework names, call matching, building code.

Rewrites are libcst transformers over one definition (a function or a class). New code is
written as text in the file's own names (`torch.where`, `tf.where`, `jnp.where`, the
aliases it imports) and parsed back, so untouched code keeps its comments and layout.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence

import libcst as cst

from gradsafe.suggest.rewrite.bindings import Bindings, bindings

# framework -> operation -> (module, attribute path); the module is spelled with the alias
# the file already imports for it (or for a parent module)
_TABLE: dict[str, dict[str, tuple[str, str]]] = {
    "torch": {
        "where": ("torch", "where"), "exp": ("torch", "exp"), "expm1": ("torch", "expm1"),
        "log": ("torch", "log"),
        "log1p": ("torch", "log1p"), "sigmoid": ("torch", "sigmoid"),
        "tanh": ("torch", "tanh"), "sqrt": ("torch", "sqrt"), "sin": ("torch", "sin"),
        "abs": ("torch", "abs"), "clamp": ("torch", "clamp"), "hypot": ("torch", "hypot"),
        "full_like": ("torch", "full_like"),
        "zeros_like": ("torch", "zeros_like"), "logaddexp": ("torch", "logaddexp"),
        "log_sigmoid": ("torch.nn.functional", "logsigmoid"),
    },
    "tensorflow": {
        "where": ("tensorflow", "where"), "exp": ("tensorflow", "exp"),
        "log": ("tensorflow", "math.log"),
        "expm1": ("tensorflow", "math.expm1"), "log1p": ("tensorflow", "math.log1p"),
        "sigmoid": ("tensorflow", "sigmoid"), "tanh": ("tensorflow", "tanh"),
        "sqrt": ("tensorflow", "sqrt"), "sin": ("tensorflow", "sin"),
        "abs": ("tensorflow", "abs"), "minimum": ("tensorflow", "minimum"),
        "maximum": ("tensorflow", "maximum"), "cast": ("tensorflow", "cast"),
        "softplus": ("tensorflow", "nn.softplus"),
        "log_sigmoid": ("tensorflow", "math.log_sigmoid"),
    },
    "jax": {
        "where": ("jax.numpy", "where"), "exp": ("jax.numpy", "exp"),
        "log": ("jax.numpy", "log"),
        "expm1": ("jax.numpy", "expm1"), "log1p": ("jax.numpy", "log1p"),
        "tanh": ("jax.numpy", "tanh"), "sqrt": ("jax.numpy", "sqrt"), "sin": ("jax.numpy", "sin"),
        "abs": ("jax.numpy", "abs"), "hypot": ("jax.numpy", "hypot"),
        "minimum": ("jax.numpy", "minimum"), "maximum": ("jax.numpy", "maximum"),
        "logaddexp": ("jax.numpy", "logaddexp"), "sigmoid": ("jax", "nn.sigmoid"),
        "log_sigmoid": ("jax", "nn.log_sigmoid"),
    },
    # Keras 3 ops, written once and run on every backend
    "keras_ops": {op: ("keras.ops", op) for op in (
        "where", "exp", "expm1", "log1p", "sigmoid", "tanh", "sqrt", "sin", "abs",
        "minimum", "maximum", "cast", "softplus", "log_sigmoid", "log")},
    # the array API standard through the function's namespace parameter (`xp`): it has no
    # sigmoid or softplus, so those rewrites do not apply there
    "array_api": {op: ("array_api", op) for op in (
        "where", "exp", "expm1", "log1p", "tanh", "sqrt", "sin", "abs", "minimum",
        "maximum", "logaddexp", "zeros_like", "log")} | {"cast": ("array_api", "astype")},
}
_MODULE_FRAMEWORK = {"torch": "torch", "tensorflow": "tensorflow", "keras": "tensorflow",
                     "jax": "jax", "flax": "jax", "array_api": "array_api"}
# torch tensor methods the rewrites read as functions (`x.exp()` is `torch.exp(x)`)
TENSOR_METHODS = frozenset({"exp", "log", "log1p", "expm1", "sqrt", "sigmoid", "tanh", "sin",
                            "abs"})
# operations that keep their argument inside a safe domain (already guarded input)
PROTECTING = frozenset({"minimum", "maximum", "clamp", "clip", "clip_by_value"})
_EMPTY = cst.parse_module("")


def code(node: cst.CSTNode) -> str:
    return _EMPTY.code_for_node(node)


def norm(node: cst.CSTNode) -> str:
    """Code without whitespace or outer parentheses: the identity used to compare expressions."""
    text = "".join(code(node).split())
    while text.startswith("(") and text.endswith(")") and _balanced(text[1:-1]):
        text = text[1:-1]
    return text


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            return False
    return depth == 0


def expr(text: str) -> cst.BaseExpression:
    return cst.parse_expression(text)


def atom(text: str) -> cst.BaseExpression:
    """An expression that can stand anywhere: parenthesised unless it is a call or name."""
    node = expr(text)
    if isinstance(node, (cst.Call, cst.Name, cst.Attribute, cst.Integer, cst.Float,
                         cst.Subscript)):
        return node
    return expr(f"({text})")


def strip_parens(node: cst.BaseExpression) -> cst.BaseExpression:
    return node.with_changes(lpar=(), rpar=()) if node.lpar else node


def dotted(node: cst.BaseExpression) -> str | None:
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        head = dotted(node.value)
        return f"{head}.{node.attr.value}" if head else None
    return None


def number(node: cst.BaseExpression) -> float | None:
    """The value of a numeric literal (with an optional sign), else None."""
    node = strip_parens(node)
    if isinstance(node, (cst.Integer, cst.Float)):
        return float(node.evaluated_value)
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, (cst.Minus, cst.Plus)):
        inner = number(node.expression)
        if inner is not None:
            return -inner if isinstance(node.operator, cst.Minus) else inner
    return None


def factors(node: cst.BaseExpression) -> list[cst.BaseExpression]:
    """The factors of a product `a * b * c` (a parenthesised factor stays whole)."""
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Multiply) \
            and not node.lpar:
        return [*factors(node.left), *factors(node.right)]
    return [node]


def is_one(node: cst.BaseExpression) -> bool:
    return number(node) == 1.0


def literal(value: float) -> str:
    return repr(float(value))


class Unavailable(Exception):
    """The file's framework has no such operation (the array API has no sigmoid)."""


class Names:
    """The framework names of one file: import aliases, and imports a rewrite had to add.

    `framework` is the dialect the code is written in: torch, tensorflow, jax, or the
    portable keras_ops / array_api."""

    def __init__(self, module: cst.Module, framework: str) -> None:
        self.framework = framework
        self.aliases: dict[str, str] = {}  # local name -> module path
        self.added: list[str] = []  # `import x` statements to add
        for stmt in module.body:
            if not isinstance(stmt, cst.SimpleStatementLine):
                continue
            for small in stmt.body:
                self._collect(small)

    def _collect(self, small: cst.BaseSmallStatement) -> None:
        if isinstance(small, cst.Import):
            for alias in small.names:
                path = dotted(alias.name) or ""
                if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                    self.aliases[alias.asname.name.value] = path
                else:
                    self.aliases[path.split(".")[0]] = path.split(".")[0]
        elif isinstance(small, cst.ImportFrom) and small.module is not None \
                and not isinstance(small.names, cst.ImportStar):
            base = dotted(small.module) or ""
            for alias in small.names:
                name = dotted(alias.name) or ""
                local = (alias.asname.name.value if alias.asname is not None
                         and isinstance(alias.asname.name, cst.Name) else name)
                self.aliases[local] = f"{base}.{name}"
        elif isinstance(small, cst.Assign) and len(small.targets) == 1:
            # Trax style: `jnp = fastmath.numpy` is jax.numpy under another name
            target, value = small.targets[0].target, small.value
            if isinstance(target, cst.Name) and isinstance(value, cst.Attribute) \
                    and value.attr.value == "numpy" and self.framework == "jax":
                self.aliases[target.value] = "jax.numpy"

    def is_framework(self, name: str | None) -> bool:
        """Does a dotted callee start with an alias of a framework module?"""
        if not name:
            return False
        root = self.aliases.get(name.split(".")[0], "")
        return _MODULE_FRAMEWORK.get(root.split(".")[0]) is not None

    def op(self, node: cst.BaseExpression) -> str | None:
        """`torch.exp(x)` -> "exp" when the callee is a framework function; in torch code
        also a tensor method without arguments, `x.exp()` -> "exp"."""
        node = strip_parens(node)
        if not isinstance(node, cst.Call):
            return None
        name = dotted(node.func)
        if name is not None and "." in name and self.is_framework(name):
            return name.rsplit(".", 1)[1]
        imported = self.aliases.get(name or "", "")  # `from torch import exp`: exp(x)
        if "." in imported and self.is_framework(name):
            return imported.rsplit(".", 1)[1]
        if self._method(node):
            assert isinstance(node.func, cst.Attribute)
            return node.func.attr.value
        return None

    def arg(self, node: cst.BaseExpression) -> cst.BaseExpression | None:
        """The one input of a one-input call: `u` of `torch.exp(u)` and of `u.exp()`."""
        node = strip_parens(node)
        if not isinstance(node, cst.Call):
            return None
        if self._method(node):
            assert isinstance(node.func, cst.Attribute)
            return node.func.value
        if len(node.args) == 1 and node.args[0].keyword is None and not node.args[0].star:
            return node.args[0].value
        return None

    def _method(self, node: cst.Call) -> bool:
        return self.framework == "torch" and not node.args \
            and isinstance(node.func, cst.Attribute) \
            and node.func.attr.value in TENSOR_METHODS \
            and not self.is_framework(dotted(node.func))

    def spell(self, module: str) -> str:
        """How this file names a module: its alias, a parent's alias plus the rest, or the
        full path (recording an import to add)."""
        best: tuple[int, str] | None = None
        # Keras's own sources import its modules as keras.src.X (`from keras.src import ops`)
        inside = "keras.src." + module[6:] if module.startswith("keras.") else module
        for local, path in self.aliases.items():
            for wanted in (module, inside):
                if wanted == path or (wanted.startswith(path + ".")
                                      and (wanted == module or path != "keras")):
                    rest = wanted[len(path):]
                    if best is None or len(path) > best[0]:
                        best = (len(path), local + rest)
        if best is not None:
            return best[1]
        root = module.split(".")[0]
        if f"import {root}" not in self.added:
            self.added.append(f"import {root}")
        self.aliases[root] = root
        return module

    def fn(self, op: str) -> str:
        try:
            module, attr = _TABLE[self.framework][op]
        except KeyError:
            raise Unavailable(f"{self.framework} has no {op}") from None
        return f"{self.spell(module)}.{attr}"

    def call(self, op: str, *args: str) -> str:
        return f"{self.fn(op)}({', '.join(args)})"

    def where(self, cond: str, a: str, b: str) -> str:
        return self.call("where", cond, a, b)

    def clamp(self, x: str, low: str | None, high: str | None) -> str:
        """x limited to [low, high] in the framework's idiom."""
        if self.framework == "torch":
            bounds = ([f"min={low}"] if low is not None else []) + \
                     ([f"max={high}"] if high is not None else [])
            return self.call("clamp", x, *bounds)
        if low is not None:
            x = self.call("maximum", x, low)
        if high is not None:
            x = self.call("minimum", x, high)
        return x

    def softplus(self, u: str) -> str:
        # torch's F.softplus returns x above a fixed threshold of 20 (off by 2e-9 there);
        # logaddexp is exact in every dtype
        if self.framework == "torch" and any(path == "torch.nn.functional"
                                             for path in self.aliases.values()):
            # the file's own F: its threshold (x above 20 returns x) is 2e-9 off at most
            return f"{self.spell('torch.nn.functional')}.softplus({u})"
        if self.framework in ("torch", "array_api"):
            return self.call("logaddexp", u, self.call("zeros_like", u))
        if self.framework == "jax":
            return self.call("logaddexp", u, "0.0")
        return self.call("softplus", u)


def add_imports(module: cst.Module, names: Names) -> cst.Module:
    """Put the imports a rewrite needed after the file's last top-level import."""
    if not names.added:
        return module
    body = list(module.body)
    last = -1
    for i, stmt in enumerate(body):
        if isinstance(stmt, cst.SimpleStatementLine) and any(
                isinstance(s, (cst.Import, cst.ImportFrom)) for s in stmt.body):
            last = i
    new = [cst.parse_statement(f"{text}\n") for text in names.added]
    body[last + 1:last + 1] = new
    return module.with_changes(body=body)


def assignments(node: cst.CSTNode) -> dict[str, cst.BaseExpression]:
    """`name = expr` statements inside a definition, for names assigned exactly once: lets a
    rewrite see that `mask` in `where(mask, ...)` is `x > 0`."""
    found: dict[str, cst.BaseExpression] = {}
    twice: set[str] = set()

    class _Visitor(cst.CSTVisitor):
        def visit_Assign(self, node: cst.Assign) -> None:
            for t in node.targets:
                if not isinstance(t.target, cst.Name):
                    continue
                name = t.target.value
                if name in found or len(node.targets) > 1:
                    twice.add(name)
                found[name] = node.value

        def visit_AugAssign(self, node: cst.AugAssign) -> None:
            if isinstance(node.target, cst.Name):
                twice.add(node.target.value)

    node.visit(_Visitor())
    return {k: v for k, v in found.items() if k not in twice}


def loads(node: cst.CSTNode, name: str) -> int:
    """How often a name is read in a definition (assignment targets do not count)."""
    count = [0]

    class _Visitor(cst.CSTVisitor):
        def visit_AssignTarget(self, node: cst.AssignTarget) -> bool:
            return False

        def visit_Attribute(self, node: cst.Attribute) -> bool:
            node.value.visit(self)
            return False

        def visit_Name(self, node: cst.Name) -> None:
            count[0] += node.value == name

    node.visit(_Visitor())
    return count[0]


class DropAssignments(cst.CSTTransformer):
    """Remove `name = expr` lines for the given names (once nothing reads them)."""

    def __init__(self, names: set[str]) -> None:
        super().__init__()
        self.names = names

    def leave_SimpleStatementLine(
            self, original: cst.SimpleStatementLine, updated: cst.SimpleStatementLine
    ) -> cst.SimpleStatementLine | cst.RemovalSentinel:
        body = updated.body
        if len(body) == 1 and isinstance(body[0], cst.Assign) and len(body[0].targets) == 1 \
                and isinstance(body[0].targets[0].target, cst.Name) \
                and body[0].targets[0].target.value in self.names:
            return cst.RemovalSentinel.REMOVE
        return updated


# parents under which an expression needs no parentheses of its own
_FREE = (cst.Arg, cst.Return, cst.Assign, cst.AnnAssign, cst.Expr, cst.Index, cst.Element,
         cst.Param)


class Tracker(cst.CSTTransformer):
    """A transformer that knows each node's parent, to parenthesise new code only where the
    context needs it (`exp(~mask * x)`, but `alpha * (x + 1)`)."""

    def __init__(self) -> None:
        super().__init__()
        self._stack: list[cst.CSTNode] = []

    def on_visit(self, node: cst.CSTNode) -> bool:
        self._stack.append(node)
        return super().on_visit(node)

    def on_leave(self, original: cst.CSTNode, updated: cst.CSTNode  # type: ignore[override]
                 ) -> cst.CSTNode | cst.RemovalSentinel | cst.FlattenSentinel[cst.CSTNode]:
        result = super().on_leave(original, updated)
        self._stack.pop()
        return result

    def wrap(self, text: str) -> cst.BaseExpression:
        """New code for the node being left, parenthesised unless its parent is free."""
        parent = self._stack[-2] if len(self._stack) > 1 else None
        return expr(text) if isinstance(parent, _FREE) else atom(text)


class Replace(Tracker):
    """Replace every occurrence of an expression (compared by `norm`) with another one,
    leaving attribute names and keyword names alone."""

    def __init__(self, old: str, new: str, only_inside: Sequence[str] = (),
                 names: Names | None = None) -> None:
        self.old, self.new = old, new
        super().__init__()
        self.only_inside = tuple(only_inside)
        self.names = names
        self.depth = 0  # how many `only_inside` calls enclose the current node
        self.count = 0

    def visit_Call(self, node: cst.Call) -> bool:
        if self.only_inside and self.names is not None \
                and self.names.op(node) in self.only_inside:
            self.depth += 1
        return True

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if self.only_inside and self.names is not None \
                and self.names.op(original) in self.only_inside:
            self.depth -= 1
        return self._swap(original, updated)

    def on_leave(self, original: cst.CSTNode, updated: cst.CSTNode  # type: ignore[override]
                 ) -> cst.CSTNode | cst.RemovalSentinel | cst.FlattenSentinel[cst.CSTNode]:
        result = cst.CSTTransformer.on_leave(self, original, updated)
        try:
            return self._after(original, result)
        finally:
            self._stack.pop()

    def _after(self, original: cst.CSTNode,
               result: cst.CSTNode | cst.RemovalSentinel | cst.FlattenSentinel[cst.CSTNode]
               ) -> cst.CSTNode | cst.RemovalSentinel | cst.FlattenSentinel[cst.CSTNode]:
        if isinstance(original, cst.Call):
            return result  # leave_Call already swapped
        if isinstance(original, cst.Attribute) and isinstance(result, cst.Attribute):
            # its name is no occurrence, but the attribute itself may be (`self.alpha`)
            return self._swap(original, result.with_changes(attr=original.attr))
        if isinstance(original, cst.Arg) and isinstance(result, cst.Arg):
            return result.with_changes(keyword=original.keyword)
        if isinstance(original, cst.BaseExpression) and isinstance(result, cst.BaseExpression):
            return self._swap(original, result)
        return result

    def _swap(self, original: cst.BaseExpression, updated: cst.BaseExpression
              ) -> cst.BaseExpression:
        if (not self.only_inside or self.depth > 0) and norm(original) == self.old:
            self.count += 1
            return self.wrap(self.new)
        return updated


def replace(node: cst.BaseExpression, old: str, new: str, only_inside: Sequence[str] = (),
            names: Names | None = None) -> tuple[cst.BaseExpression, int]:
    r = Replace(old, new, only_inside, names)
    out = node.visit(r)
    assert isinstance(out, cst.BaseExpression)
    return out, r.count


def occurrences(node: cst.CSTNode, text: str, names: Names,
                guard: str | None = None) -> tuple[int, int]:
    """(all, unprotected) occurrences of an expression: protected ones sit inside a minimum,
    maximum or clamp already, or inside a where on the same condition `guard`."""
    counts = [0, 0]

    def protects(call: cst.Call) -> bool:
        op = names.op(call)
        return op in PROTECTING or (op == "where" and guard is not None and bool(call.args)
                                    and norm(call.args[0].value) == guard)

    class _Visitor(cst.CSTVisitor):
        depth = 0

        def visit_Call(self, node: cst.Call) -> None:
            if protects(node):
                self.depth += 1

        def leave_Call(self, original_node: cst.Call) -> None:
            if protects(original_node):
                self.depth -= 1

        def on_visit(self, node: cst.CSTNode) -> bool:
            if isinstance(node, cst.BaseExpression) and norm(node) == text:
                counts[0] += 1
                counts[1] += self.depth == 0
                return False
            return super().on_visit(node)

    node.visit(_Visitor())
    return counts[0], counts[1]


def has_risky(node: cst.CSTNode, names: Names) -> bool:
    """Does an expression call something or divide/raise to a power (where a non-finite
    value or derivative can come from)?"""
    found = [False]

    class _Visitor(cst.CSTVisitor):
        def visit_Call(self, node: cst.Call) -> None:
            if names.op(node) not in ("zeros_like", "ones_like", "full_like"):
                found[0] = True

        def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
            if isinstance(node.operator, (cst.Divide, cst.Power, cst.FloorDivide)):
                found[0] = True

    node.visit(_Visitor())
    return found[0]


_OPS: dict[type[cst.BaseCompOp], str] = {
    cst.GreaterThan: ">", cst.GreaterThanEqual: ">=", cst.LessThan: "<",
    cst.LessThanEqual: "<=", cst.Equal: "==", cst.NotEqual: "!=",
}
_FLIP = {">": "<", ">=": "<=", "<": ">", "<=": ">=", "==": "==", "!=": "!="}


class Condition:
    """`x OP k` (possibly behind a name or a cast): which input a `where` splits, and a
    point inside each side's domain."""

    def __init__(self, text: str, var: str, var_code: str, op: str, bound: str,
                 value: float | None) -> None:
        self.text, self.var, self.var_code = text, var, var_code
        self.op, self.bound, self.value = op, bound, value

    def inside(self, side: bool) -> bool:
        """Is the bound itself in the domain where the condition equals `side`?"""
        return (self.op in (">=", "<=", "==")) == side

    def safe(self, side: bool) -> str:
        """A value of the input inside the domain where the condition equals `side`."""
        if self.inside(side):
            step = 0.0
        elif self.op in ("==", "!="):
            step = 1.0
        else:
            up = self.op in (">", ">=")
            step = 1.0 if up == side else -1.0
        if self.value is not None:
            return literal(self.value + step)
        if step == 0.0:
            return self.bound
        return f"{self.bound} {'+' if step > 0 else '-'} 1"

    def bounds(self, side: bool) -> tuple[str | None, str | None] | None:
        """(low, high) of the domain where the condition equals `side` (None: unbounded)."""
        if self.op in ("==", "!="):
            return None
        up = self.op in (">", ">=")
        bound = literal(self.value) if self.value is not None else self.bound
        return (bound, None) if up == side else (None, bound)

    def holds(self, x: float) -> bool | None:
        """The condition's value at input x (None when the bound is not a number)."""
        if self.value is None:
            return None
        return bool(_COMPARE[self.op](x, self.value))


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
    "==": operator.eq, "!=": operator.ne}


class Compound(Condition):
    """`a & b` (or `a | b`) of comparisons of the same input with numbers, such as SQNL's
    `(x >= -2) & (x <= 2)`: an interval (or its outside)."""

    def __init__(self, text: str, parts: Sequence[Condition], both: bool) -> None:
        first = parts[0]  # op, bound and value are the first part's: use holds/safe/bounds
        super().__init__(text, first.var, first.var_code, first.op, first.bound, first.value)
        self.parts, self.both = tuple(parts), both

    def holds(self, x: float) -> bool:
        values = [bool(p.holds(x)) for p in self.parts]  # every part's bound is a number
        return all(values) if self.both else any(values)

    def safe(self, side: bool) -> str:
        # a point on one part's side decides `&` false and `|` true; the other two need a
        # point on that side of every part: one of the parts' own safe points that is
        return next(c for c in self._candidates(side) if self.holds(float(c)) == side)

    def _candidates(self, side: bool) -> list[str]:
        return [p.safe(side) for p in self.parts]

    def has_safe_points(self) -> bool:
        return all(any(self.holds(float(c)) == side for c in self._candidates(side))
                   for side in (True, False))

    def bounds(self, side: bool) -> tuple[str | None, str | None] | None:
        """The interval where `a & b` is true; the other sides are not one interval."""
        if not (self.both and side):
            return None
        lows: list[float] = []
        highs: list[float] = []
        for part in self.parts:
            ends = part.bounds(True)
            if ends is None or part.value is None:
                return None
            (lows if ends[0] is not None else highs).append(part.value)
        return (literal(max(lows)) if lows else None, literal(min(highs)) if highs else None)


def condition(node: cst.BaseExpression, branches: Sequence[cst.BaseExpression],
              defs: dict[str, cst.BaseExpression]) -> Condition | None:
    text = code(strip_parens(node)).strip()
    found = _boolean(node, defs)
    if isinstance(found, cst.BinaryOperation):
        return _compound(text, found, branches, defs)
    cmp = found
    if cmp is None or len(cmp.comparisons) != 1:
        return None
    left, target = cmp.left, cmp.comparisons[0]
    op = _OPS.get(type(target.operator))
    if op is None:
        return None
    right = target.comparator
    def used(side: cst.BaseExpression) -> bool:
        n = norm(side)
        return number(side) is None and any(contains(b, n) for b in branches)

    if used(left):
        var, bound = left, right
    elif used(right):
        var, bound, op = right, left, _FLIP[op]
    else:
        return None
    return Condition(text, norm(var), code(strip_parens(var)).strip(), op,
                     code(strip_parens(bound)).strip(), number(bound))


def _compound(text: str, node: cst.BinaryOperation, branches: Sequence[cst.BaseExpression],
              defs: dict[str, cst.BaseExpression]) -> Compound | None:
    both = isinstance(node.operator, cst.BitAnd)
    parts: list[Condition] = []
    for side in _flatten(node, type(node.operator)):
        part = condition(side, branches, defs)
        if part is None or isinstance(part, Compound) or part.value is None \
                or (parts and part.var != parts[0].var):
            return None
        parts.append(part)
    found = Compound(text, parts, both)
    return found if found.has_safe_points() else None


def _flatten(node: cst.BaseExpression, op: type[cst.BaseBinaryOp]) -> list[cst.BaseExpression]:
    """The operands of `a & b & c` (for one operator)."""
    bare = strip_parens(node)
    if isinstance(bare, cst.BinaryOperation) and isinstance(bare.operator, op):
        return [*_flatten(bare.left, op), *_flatten(bare.right, op)]
    return [node]


def _is_compound(node: cst.BaseExpression) -> bool:
    return isinstance(node, cst.BinaryOperation) and isinstance(node.operator,
                                                                (cst.BitAnd, cst.BitOr))


def _boolean(node: cst.BaseExpression, defs: dict[str, cst.BaseExpression],
             depth: int = 0) -> cst.Comparison | cst.BinaryOperation | None:
    """The comparison (or `&`/`|` of comparisons) a mask or condition stands for, seen
    through names bound once and casts."""
    node = strip_parens(node)
    if isinstance(node, cst.Comparison):
        return node
    if isinstance(node, cst.BinaryOperation):
        return node if _is_compound(node) else None
    if depth > 3:
        return None
    if isinstance(node, cst.Name) and node.value in defs:
        return _boolean(defs[node.value], defs, depth + 1)
    if isinstance(node, cst.Call):
        # tf.cast(x > 0, x.dtype), (x > 0).float(), (x > 0).to(x.dtype)
        if node.args and isinstance(strip_parens(node.args[0].value), cst.Comparison):
            return _boolean(node.args[0].value, defs, depth + 1)
        if isinstance(node.func, cst.Attribute):
            return _boolean(node.func.value, defs, depth + 1)
    return None


def contains(node: cst.CSTNode, text: str) -> bool:
    """Does an expression contain a sub-expression (compared by `norm`)?"""
    found = [False]

    class _Visitor(cst.CSTVisitor):
        def on_visit(self, node: cst.CSTNode) -> bool:
            if found[0]:
                return False
            if isinstance(node, cst.BaseExpression) and norm(node) == text:
                found[0] = True
                return False
            if isinstance(node, cst.Attribute):
                node.value.visit(self)  # an attribute's name is not an occurrence
                return False
            return True

    node.visit(_Visitor())
    return found[0]


class Rewrite(Tracker):
    """One idea, applied to one definition. `changed` tells whether it applied."""

    name = ""
    title = ""
    fixes: frozenset[str] = frozenset()  # the codes it can remove (model/codes.py lists it back)

    def __init__(self, names: Names, defs: dict[str, cst.BaseExpression],
                 narrow: bool = False) -> None:
        super().__init__()
        self.names, self.defs = names, defs
        self.narrow = narrow  # guard an input only inside the calls that need it
        self.changed = False
        self._bindings: dict[int, Bindings] = {}

    def see(self, node: cst.BaseExpression) -> cst.BaseExpression:
        """node without outer parentheses, or, for a name the enclosing function binds once
        (`e` of `e, ne = exp(x), exp(-x)`; see bindings.py), the value it stands for."""
        node = strip_parens(node)
        bound = self._bound()
        for _ in range(4):
            if not isinstance(node, cst.Name) or node.value not in bound:
                break
            node = strip_parens(bound[node.value])
        return node

    def _bound(self) -> Bindings:
        for node in reversed(self._stack):
            if isinstance(node, _OWN_SCOPE):  # a lambda's or comprehension's own names
                return {}
            if isinstance(node, cst.FunctionDef):
                if id(node) not in self._bindings:
                    self._bindings[id(node)] = bindings(node)
                return self._bindings[id(node)]
        return {}


_OWN_SCOPE = (cst.Lambda, cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp)


class Hoisting(Rewrite):
    """A rewrite that may put assignments (`pending`) on lines of their own before the
    statement it changes, under names the function does not use yet."""

    def __init__(self, names: Names, defs: dict[str, cst.BaseExpression],
                 narrow: bool = False) -> None:
        super().__init__(names, defs, narrow)
        self.pending: list[str] = []
        self.taken: set[str] = set()

    def function(self) -> cst.FunctionDef | None:
        """The function whose body holds the current expression's statement; None when the
        expression is in a lambda or comprehension (whose variables a line before could not
        see) or not in a statement of a function."""
        inside_statement = False
        for node in reversed(self._stack[:-1]):
            if isinstance(node, _OWN_SCOPE) and not inside_statement:
                return None
            if isinstance(node, cst.SimpleStatementLine):
                inside_statement = True
            elif isinstance(node, (cst.FunctionDef, cst.ClassDef)):
                return node if inside_statement and isinstance(node, cst.FunctionDef) else None
        return None

    def fresh(self, function: cst.FunctionDef, *wanted: str) -> list[str]:
        """Names like `wanted` that neither the function nor an earlier hoist uses."""
        out = fresh_names(function, wanted, self.taken)
        self.taken.update(out)
        return out

    def leave_SimpleStatementLine(
            self, original: cst.SimpleStatementLine, updated: cst.SimpleStatementLine
    ) -> cst.SimpleStatementLine | cst.FlattenSentinel[cst.BaseStatement]:
        if not self.pending:
            return updated
        lines = [cst.parse_statement(f"{text}\n") for text in self.pending]
        self.pending = []
        # comments above the statement stay above the new lines
        first = lines[0].with_changes(leading_lines=updated.leading_lines)
        return cst.FlattenSentinel([first, *lines[1:],
                                    updated.with_changes(leading_lines=())])



def squared(node: cst.BaseExpression) -> cst.BaseExpression | None:
    """u of `u * u` or `u ** 2` (hypot's sums of squares, log_quotient's denominators)."""
    node = strip_parens(node)
    if isinstance(node, cst.BinaryOperation):
        if isinstance(node.operator, cst.Multiply) and norm(node.left) == norm(node.right):
            return node.left
        if isinstance(node.operator, cst.Power) and number(node.right) == 2.0:
            return node.left
    return None

def fresh_names(function: cst.FunctionDef, wanted: tuple[str, ...],
                taken: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """Names like `wanted` (`mask`, `mask2`, ...) that the function does not use yet."""
    used = set(taken)

    class _Names(cst.CSTVisitor):
        def visit_Name(self, node: cst.Name) -> None:
            used.add(node.value)

    function.visit(_Names())
    out = []
    for base in wanted:
        name, n = base, 1
        while name in used:
            n += 1
            name = f"{base}{n}"
        used.add(name)
        out.append(name)
    return out


def bool_text(node: cst.BaseExpression, defs: dict[str, cst.BaseExpression]) -> str | None:
    """Code for a boolean condition equal to a mask: the mask itself when it is a comparison
    or a name bound to one, else the comparison inside a cast (`tf.cast(x > 0, x.dtype)`)."""
    bare = strip_parens(node)
    if isinstance(bare, cst.Comparison) or _is_compound(bare):
        return code(bare).strip()
    if isinstance(bare, cst.Name):
        bound = strip_parens(defs.get(bare.value, bare))
        if isinstance(bound, cst.Comparison) or _is_compound(bound):
            return bare.value
    cmp = _boolean(node, defs)
    return code(cmp).strip() if cmp is not None else None
