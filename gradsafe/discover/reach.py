"""Which top-level statements of a module a target reaches (static, no imports).

The target's own definition, every top-level statement that binds a name it uses (helpers,
base classes, decorators, tables of functions), transitively, and the bare expressions that
name one of them (`f.defvjp(fwd, bwd)`). Instrumenting (locate/trace.py) and rewriting
(suggest/rewrite) only these keeps a target's cost independent of the size of its file.
"""

from __future__ import annotations

import ast
from functools import lru_cache

_COMPOUND = (ast.If, ast.Try, ast.For, ast.While, ast.With)


def _binds(stmt: ast.stmt, top: bool = True) -> set[str]:
    """Names a module-level statement binds (its imports only inside compound statements:
    the module's namespace holds those of the top level already)."""
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {stmt.name}
    if isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        if top:
            return set()
        return {(a.asname or a.name).split(".")[0] for a in stmt.names}
    if isinstance(stmt, _COMPOUND) or (hasattr(ast, "TryStar")
                                       and isinstance(stmt, ast.TryStar)):
        out: set[str] = set()
        for field in ("body", "orelse", "finalbody"):
            for s in getattr(stmt, field, []):
                out |= _binds(s, False)
        for h in getattr(stmt, "handlers", []):
            for s in h.body:
                out |= _binds(s, False)
        return out
    return set()


def reached(tree: ast.Module, head: str) -> list[ast.stmt] | None:
    """The module's top-level statements that `head` reaches: those binding a name it uses,
    transitively (helpers, base classes, decorators, tables of functions), and the bare
    expressions naming one of them (`f.defvjp(fwd, bwd)`), in file order; `from __future__`
    imports first. None when nothing binds head."""
    body = tree.body
    binds = [_binds(s) for s in body]
    if not any(head in b for b in binds):
        return None
    uses: dict[int, set[str]] = {}

    def used(i: int) -> set[str]:
        if i not in uses:
            uses[i] = {n.id for n in ast.walk(body[i]) if isinstance(n, ast.Name)}
        return uses[i]

    bare = [i for i, s in enumerate(body) if isinstance(s, ast.Expr)]
    names = {head}
    chosen: set[int] = set()
    while True:
        more = {i for i, b in enumerate(binds) if b & names} | {
            i for i in bare if used(i) & names}
        more -= chosen
        if not more:
            break
        chosen |= more
        for i in more:
            names |= used(i)
    future = [s for s in body if isinstance(s, ast.ImportFrom) and s.module == "__future__"]
    return future + [body[i] for i in sorted(chosen)]


@lru_cache(maxsize=8)
def parsed(source: str) -> ast.Module:
    """The module's tree, parsed once per source: a worker checks several targets and
    configurations of one file, and verifies rewritten copies of it. Shared: callers copy
    the statements they change."""
    return ast.parse(source)
