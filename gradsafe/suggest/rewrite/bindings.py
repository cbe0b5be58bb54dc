"""Names a function binds once, so formula rewrites can see through them.

Real code spells a formula over several lines: `e, ne = torch.exp(x), torch.exp(-x)` and then
`(e - ne) / (e + ne)`. A name is seen through only when reading it anywhere after its line
means the same value: it is bound exactly once, by a line at the top level of the function's
body (not in a branch or loop), is not a parameter, and the names its value reads are never
rebound in the function (so `x` in `torch.exp(x)` still is the same x where `e` is read).
"""

from __future__ import annotations

from collections import Counter

import libcst as cst

Bindings = dict[str, cst.BaseExpression]


def _targets(node: cst.BaseExpression) -> list[str]:
    """Every name a target expression stores to (`a`, `a, (b, *c)`)."""
    if isinstance(node, cst.Name):
        return [node.value]
    if isinstance(node, (cst.Tuple, cst.List)):
        return [n for e in node.elements for n in _targets(e.value)]
    if isinstance(node, cst.StarredElement):
        return _targets(node.value)
    return []


def stores(node: cst.CSTNode) -> Counter[str]:
    """How often each name is stored to anywhere in a definition (a parameter counts once)."""
    count: Counter[str] = Counter()

    class _Visitor(cst.CSTVisitor):
        def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
            count.update(_targets(node.target))

        def visit_AugAssign(self, node: cst.AugAssign) -> None:
            count.update(_targets(node.target))

        def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
            count.update(_targets(node.target))

        def visit_For(self, node: cst.For) -> None:
            count.update(_targets(node.target))

        def visit_CompFor(self, node: cst.CompFor) -> None:
            count.update(_targets(node.target))

        def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
            count.update(_targets(node.target))

        def visit_AsName(self, node: cst.AsName) -> None:
            if isinstance(node.name, cst.Name):
                count[node.name.value] += 1

        def visit_Param(self, node: cst.Param) -> None:
            count[node.name.value] += 1

        def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
            count[node.name.value] += 1

        def visit_ClassDef(self, node: cst.ClassDef) -> None:
            count[node.name.value] += 1

    node.visit(_Visitor())
    return count


def reads(node: cst.CSTNode) -> set[str]:
    """The names an expression reads (not attribute or keyword names)."""
    found: set[str] = set()

    class _Visitor(cst.CSTVisitor):
        def visit_Attribute(self, node: cst.Attribute) -> bool:
            node.value.visit(self)
            return False

        def visit_Arg(self, node: cst.Arg) -> bool:
            node.value.visit(self)
            return False

        def visit_Name(self, node: cst.Name) -> None:
            found.add(node.value)

    node.visit(_Visitor())
    return found


def pairs(stmt: cst.BaseStatement) -> list[tuple[str, cst.BaseExpression]]:
    """(name, value) of a line `a = v` or `a, b = v, w` (nothing for other lines)."""
    if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
        return []
    small = stmt.body[0]
    if not isinstance(small, cst.Assign) or len(small.targets) != 1:
        return []
    target, value = small.targets[0].target, small.value
    if isinstance(target, cst.Name):
        return [(target.value, value)]
    if isinstance(target, (cst.Tuple, cst.List)) and isinstance(value, (cst.Tuple, cst.List)) \
            and len(target.elements) == len(value.elements) \
            and all(isinstance(e.value, cst.Name) and isinstance(e, cst.Element)
                    for e in target.elements) \
            and all(isinstance(e, cst.Element) for e in value.elements):
        return [(t.value.value, v.value) for t, v in zip(target.elements, value.elements,
                                                        strict=True)
                if isinstance(t.value, cst.Name)]
    return []


def _params(function: cst.FunctionDef) -> set[str]:
    p = function.params
    return {param.name.value for param in (*p.posonly_params, *p.params, *p.kwonly_params,
                                           p.star_arg, p.star_kwarg)
            if isinstance(param, cst.Param)}


def bindings(function: cst.FunctionDef) -> Bindings:
    """The names of a function that can be read as their value (see the module's doc)."""
    count = stores(function)
    count[function.name.value] -= 1  # its own name is not stored inside it
    params = _params(function)
    for name in params:
        count[name] -= 1  # a parameter never rebound is as good as a constant
    body = function.body.body if isinstance(function.body, cst.IndentedBlock) else ()
    found: Bindings = {}
    for stmt in body:
        for name, value in pairs(stmt):
            if count[name] == 1 and name not in params:
                found[name] = value
    return {name: value for name, value in found.items()
            if all(count[n] == 0 or n in found for n in reads(value))}


class DropTupleItems(cst.CSTTransformer):
    """Remove names from `a, b = v, w` lines (the whole line once none is left)."""

    def __init__(self, names: set[str]) -> None:
        super().__init__()
        self.names = names

    def leave_SimpleStatementLine(
            self, original: cst.SimpleStatementLine, updated: cst.SimpleStatementLine
    ) -> cst.SimpleStatementLine | cst.RemovalSentinel:
        found = pairs(updated)
        if len(found) < 2 or not any(name in self.names for name, _ in found):
            return updated
        keep = [(name, value) for name, value in found if name not in self.names]
        if not keep:
            return cst.RemovalSentinel.REMOVE
        assign = updated.body[0]
        assert isinstance(assign, cst.Assign)
        if len(keep) == 1:
            name, value = keep[0]
            new = assign.with_changes(targets=[cst.AssignTarget(cst.Name(name))], value=value)
        else:
            target = assign.targets[0].target
            assert isinstance(target, (cst.Tuple, cst.List))
            assert isinstance(assign.value, (cst.Tuple, cst.List))
            kept = {name for name, _ in keep}
            idx = [i for i, e in enumerate(target.elements)
                   if isinstance(e.value, cst.Name) and e.value.value in kept]
            elements = [e.with_changes(comma=cst.MaybeSentinel.DEFAULT)
                        for i, e in enumerate(target.elements) if i in idx]
            values = [e.with_changes(comma=cst.MaybeSentinel.DEFAULT)
                      for i, e in enumerate(assign.value.elements) if i in idx]
            new = assign.with_changes(
                targets=[assign.targets[0].with_changes(
                    target=target.with_changes(elements=elements))],
                value=assign.value.with_changes(elements=values))
        return updated.with_changes(body=[new])


def tuple_names(node: cst.CSTNode) -> set[str]:
    """Names bound once in a definition, by an `a, b = v, w` line."""
    found: set[str] = set()
    count = stores(node)

    class _Visitor(cst.CSTVisitor):
        def visit_SimpleStatementLine(self, stmt: cst.SimpleStatementLine) -> None:
            items = pairs(stmt)
            if len(items) > 1:
                found.update(name for name, _ in items)

    node.visit(_Visitor())
    return {name for name in found if count[name] == 1}
