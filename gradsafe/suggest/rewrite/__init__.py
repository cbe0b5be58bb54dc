"""Source rewrites that remove NaN/inf gradients, one libcst transform per idea.

`apply(source, framework, names)` runs the named transforms, in order, over one definition
(or the whole file) and returns the new source; a transform that does not apply leaves the
code as it was. `suggest.py` chooses and verifies combinations.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import libcst as cst

from gradsafe.discover.reach import parsed, reached
from gradsafe.suggest.rewrite.base import (
    DropAssignments,
    Names,
    Rewrite,
    Unavailable,
    add_imports,
    assignments,
    loads,
)
from gradsafe.suggest.rewrite.bindings import DropTupleItems, tuple_names
from gradsafe.suggest.rewrite.clamp_arg import ClampArg
from gradsafe.suggest.rewrite.divide_first import DivideFirst
from gradsafe.suggest.rewrite.expm1 import Expm1
from gradsafe.suggest.rewrite.guard_where import GuardWhere
from gradsafe.suggest.rewrite.hypot import Hypot
from gradsafe.suggest.rewrite.log1p import Log1p
from gradsafe.suggest.rewrite.log_cosh import LogCosh
from gradsafe.suggest.rewrite.log_quotient import LogQuotient
from gradsafe.suggest.rewrite.log_sigmoid import LogSigmoid
from gradsafe.suggest.rewrite.log_softmax import LogSoftmax
from gradsafe.suggest.rewrite.mask_exp import MaskExp
from gradsafe.suggest.rewrite.mask_where import MaskWhere
from gradsafe.suggest.rewrite.mask_zero import MaskZero
from gradsafe.suggest.rewrite.safe_sqrt import SafeSqrt
from gradsafe.suggest.rewrite.saturate import Saturate
from gradsafe.suggest.rewrite.sigmoid import Sigmoid
from gradsafe.suggest.rewrite.sinc import Sinc
from gradsafe.suggest.rewrite.softplus import Softplus
from gradsafe.suggest.rewrite.tanh import Tanh
from gradsafe.suggest.rewrite.widen import Widen

TRANSFORMS: dict[str, type[Rewrite]] = {t.name: t for t in (
    GuardWhere, MaskExp, ClampArg, Expm1, Log1p, Softplus, Sigmoid, LogSigmoid, LogSoftmax,
    Tanh, SafeSqrt, Sinc, MaskWhere, Saturate, Hypot, DivideFirst, MaskZero, LogQuotient,
    LogCosh, Widen)}
# formula rewrites that are exact or more accurate and never hurt: applied together
FORMULAS: tuple[str, ...] = ("log_cosh", "tanh", "sigmoid", "log_sigmoid", "log_softmax",
                             "softplus", "log1p", "expm1", "saturate", "hypot", "divide_first",
                             "log_quotient")


_Statement = cst.SimpleStatementLine | cst.BaseCompoundStatement


# transforms that change the target's own function only (its helpers keep their dtype)
OWN_ONLY = frozenset({"widen"})

# a modifier among the transform names: guard an input only inside the calls that need it
# (`x * sigmoid(x)` keeps its x, `expm1(x)` gets a guarded one); shorter code, but not always
# enough (`x * x * sigmoid(x)` overflows to 0 * inf), so suggestions try it first and verify
NARROW = "narrow"
GUARDING = frozenset({"guard_where", "mask_where"})


class RewriteError(Exception):
    """The source cannot be parsed or the definition is not in it."""


def _definition(module: cst.Module, target: str | None) -> list[int]:
    """Indexes of the top-level statements a rewrite may touch."""
    if target is None:
        return list(range(len(module.body)))
    head = target.split(".")[0]
    hits = [i for i, stmt in enumerate(module.body)
            if (isinstance(stmt, (cst.FunctionDef, cst.ClassDef)) and stmt.name.value == head)
            or _assigns(stmt, head)]
    if not hits:
        raise RewriteError(f"'{target}' is not a top-level function or class")
    return sorted({*hits[-1:], *_helpers(module, module.body[hits[-1]]),
                   *_rules(module, head)})


def _own(module: cst.Module, target: str | None, indexes: list[int]) -> int | None:
    """The index of the target's own statement (not a helper it calls)."""
    if target is None:
        return None
    head = target.split(".")[0]
    hits = [i for i in indexes if isinstance(module.body[i], (cst.FunctionDef, cst.ClassDef))
            and module.body[i].name.value == head]  # type: ignore[union-attr]
    return hits[-1] if hits else None


def _rules(module: cst.Module, head: str) -> set[int]:
    """Indexes of the functions `head.defvjp(fwd, bwd)` (or defjvp) names: a JAX custom
    rule's backward lives apart from the function."""
    top = {stmt.name.value: i for i, stmt in enumerate(module.body)
           if isinstance(stmt, cst.FunctionDef)}
    found: set[int] = set()
    for stmt in module.body:
        if not isinstance(stmt, cst.SimpleStatementLine):
            continue
        for small in stmt.body:
            call = small.value if isinstance(small, cst.Expr) else None
            if isinstance(call, cst.Call) and isinstance(call.func, cst.Attribute) \
                    and call.func.attr.value in ("defvjp", "defjvp") \
                    and isinstance(call.func.value, cst.Name) and call.func.value.value == head:
                found.update(top[a.value.value] for a in call.args
                             if isinstance(a.value, cst.Name) and a.value.value in top)
    return found


def _helpers(module: cst.Module, node: cst.CSTNode) -> set[int]:
    """Indexes of the top-level functions a definition calls by name (`_poly_cutoff(x, f)`
    in a module's forward) and of the autograd Functions it applies: the formula may live
    there. One level deep."""
    top = {stmt.name.value: i for i, stmt in enumerate(module.body)
           if isinstance(stmt, (cst.FunctionDef, cst.ClassDef))}
    found: set[int] = set()

    class _Visitor(cst.CSTVisitor):
        def visit_Call(self, call: cst.Call) -> None:
            func = call.func
            if isinstance(func, cst.Name) and func.value in top \
                    and isinstance(module.body[top[func.value]], cst.FunctionDef):
                found.add(top[func.value])
            # an autograd Function's forward and backward: `_SoftUnitStep.apply(x)`
            if isinstance(func, cst.Attribute) and func.attr.value == "apply" \
                    and isinstance(func.value, cst.Name) and func.value.value in top:
                found.add(top[func.value.value])

    node.visit(_Visitor())
    return found


def _assigns(stmt: cst.CSTNode, name: str) -> bool:
    """`name = lambda x: ...` (a one-line definition)."""
    return isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 \
        and isinstance(stmt.body[0], cst.Assign) and len(stmt.body[0].targets) == 1 \
        and isinstance(stmt.body[0].targets[0].target, cst.Name) \
        and stmt.body[0].targets[0].target.value == name \
        and isinstance(stmt.body[0].value, cst.Lambda)


def apply(source: str, framework: str, transforms: Sequence[str],
          target: str | None = None) -> tuple[str, tuple[str, ...]]:
    """The rewritten source and the transforms that changed something (with NARROW among
    them when it was asked for and made a guard narrower).

    With a target, libcst sees only the part of the file a rewrite reads or touches (see
    `excerpt`) and the changed lines go back into the file: parsing a 4,000-line module
    with libcst takes seconds, once per candidate."""
    part = excerpt(source, target) if target is not None else None
    if part is None:
        return _apply(_parse(source), framework, transforms, target, source)
    new, used = _apply(_parse(part.text), framework, transforms, target, part.text)
    if not used:
        return source, used
    full, sparse = part.splice(new)
    if len(_SPARSE) >= 64:
        _SPARSE.pop(next(iter(_SPARSE)))
    _SPARSE[full] = sparse
    return full, used


@dataclass(frozen=True)
class Excerpt:
    """Some whole top-level statements of a file, as text, and where each line came from."""

    text: str
    origin: tuple[int, ...]  # per line of text: its index in the file's lines
    lines: tuple[str, ...]  # the file's lines (with their endings)
    indent: str  # the first indentation of both (libcst's default for new blocks)

    def splice(self, new: str) -> tuple[str, str]:
        """The file with the excerpt's changed lines replaced by the new excerpt's; and the
        same with every line outside the excerpt left blank: a copy to import for the
        verifying sweep, with the same line numbers and a fraction of the code."""
        old = self.text.splitlines(keepends=True)
        kept = set(self.origin)
        out = [(line, i in kept) for i, line in enumerate(self.lines)]
        edits: list[tuple[int, int, list[str]]] = []  # (first, end) file lines -> new lines
        lines = new.splitlines(keepends=True)
        matcher = difflib.SequenceMatcher(None, old, lines, autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag == "equal":
                continue
            repl = lines[j1:j2]
            if i1 < i2:
                edits.append((self.origin[i1], self.origin[i2 - 1] + 1, repl))
            else:  # an insertion goes right after the line before it (an added import)
                at = self.origin[i1 - 1] + 1 if i1 > 0 else self.origin[0]
                edits.append((at, at, repl))
        for first, end, repl in sorted(edits, key=lambda e: (e[0], e[1]), reverse=True):
            out[first:end] = [(line, True) for line in repl]
        full = "".join(line for line, _ in out)
        sparse = "".join(line if keep else line[len(line.rstrip("\r\n")):]
                         for line, keep in out)
        return full, sparse


# rewritten file -> its sparse copy (Excerpt.splice), for the candidates being verified
_SPARSE: dict[str, str] = {}


def importable(source: str) -> str:
    """What to write for importing a rewritten file: its sparse copy when `apply` made one
    (only the statements the target reaches, at their lines), else the file itself."""
    return _SPARSE.get(source, source)


@lru_cache(maxsize=8)
def excerpt(source: str, target: str) -> Excerpt | None:
    """What a rewrite of `target` reads: the file's simple top-level statements (imports and
    aliases: `Names`; `f.defvjp(...)`: `_rules`) and every top-level definition or
    assignment of a name the target reaches (`_definition`'s helpers are among them). None
    when the file does not parse as Python or an excerpt would not be smaller."""
    try:
        tree = parsed(source)
    except (SyntaxError, ValueError):
        return None
    head = target.split(".")[0]
    chosen = reached(tree, head)
    if chosen is None:
        return None
    keep = {id(s) for s in chosen}
    lines = source.splitlines(keepends=True)
    spans: list[tuple[int, int]] = []
    for stmt in tree.body:
        if id(stmt) in keep or not isinstance(stmt, _BLOCKS):
            first = min([stmt.lineno, *(d.lineno for d in getattr(stmt, "decorator_list", []))])
            spans.append((first - 1, (stmt.end_lineno or stmt.lineno)))
    taken: list[int] = []
    for first, end in spans:
        taken.extend(i for i in range(first, end) if not taken or i > taken[-1])
    if len(taken) >= len(lines):
        return None
    text = "".join(lines[i] for i in taken)
    if text and not text.endswith(("\n", "\r")):
        text += "\n"
    indent = _first_indent(tree.body, lines)
    if _first_indent([s for s in tree.body if id(s) in keep], lines) != indent:
        return None  # libcst would infer another default indentation from the excerpt
    return Excerpt(text, tuple(taken), tuple(lines), indent)


_BLOCKS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.If, ast.For, ast.While,
           ast.Try, ast.With, ast.AsyncFor, ast.AsyncWith, ast.Match)


def _first_indent(body: list[ast.stmt], lines: list[str]) -> str:
    """The indentation of the first indented block (libcst's default_indent)."""
    for stmt in body:
        inner: list[ast.stmt] = getattr(stmt, "body", None) or []
        if not isinstance(stmt, _BLOCKS) or not inner:
            continue
        lead = lines[inner[0].lineno - 1][:inner[0].col_offset]
        if lead and not lead.strip():
            return lead
    return "    "


@lru_cache(maxsize=16)
def _parse(source: str) -> cst.Module:
    """Parsed once per source: candidates rewrite the same file many times (libcst's nodes
    are immutable)."""
    try:
        return cst.parse_module(source)
    except cst.ParserSyntaxError as exc:
        raise RewriteError(f"cannot parse: {exc.message}") from None


def _apply(module: cst.Module, framework: str, transforms: Sequence[str],
           target: str | None, source: str) -> tuple[str, tuple[str, ...]]:
    narrow = NARROW in transforms
    names = Names(module, framework)
    body = list(module.body)
    used: list[str] = []
    indexes = _definition(module, target)
    own = _own(module, target, indexes)
    for i in indexes:
        node = original = body[i]
        if framework == "array_api" and isinstance(node, cst.FunctionDef) \
                and len(node.params.params) >= 2:  # `def act(x, xp)`: xp is the namespace
            names.aliases[node.params.params[1].name.value] = "array_api"
        for name in transforms:
            if name == NARROW or (name in OWN_ONLY and own is not None and i != own):
                continue
            t = TRANSFORMS[name](names, assignments(node), narrow)
            try:
                new = node.visit(t)
            except Unavailable:
                continue
            assert isinstance(new, (cst.FunctionDef, cst.ClassDef, cst.SimpleStatementLine,
                                    cst.BaseCompoundStatement))
            node = new
            if t.changed and name not in used:
                used.append(name)
        body[i] = _drop_unread(original, node)
    if not used:
        return source, ()
    if narrow and GUARDING & set(used):
        used.append(NARROW)
    return add_imports(module.with_changes(body=body), names).code, tuple(used)


def _drop_unread(original: _Statement, node: _Statement) -> _Statement:
    """Remove the `name = ...` lines (and names of `a, b = ...` lines) the rewrite left
    unread: a mask that a where now spells out (`mask = x > 0`), a branch that was inlined to
    be guarded, `e` and `ne` of a formula seen through its names. Names the original did not
    read either are the user's business."""
    bound = set(assignments(original))
    tupled = tuple_names(original)
    dropped: set[str] = set()
    while True:  # a dropped line may have been the last reader of another name
        dead = {name for name in (bound | tupled) - dropped
                if loads(original, name) > 0 and loads(node, name) == 0}
        if not dead:
            return node
        dropped |= dead
        out = node.visit(DropAssignments(dead & bound))
        assert isinstance(out, (cst.SimpleStatementLine, cst.BaseCompoundStatement))
        if dead & tupled:  # `e, ne = exp(x), exp(-x)` once tanh(x) replaced what read them
            out = out.visit(DropTupleItems(dead & tupled))
            assert isinstance(out, (cst.SimpleStatementLine, cst.BaseCompoundStatement))
        node = out


def unified_diff(path: str, old: str, new: str) -> str:
    # git's a/ and b/ prefixes over the path as given, with forward slashes; an absolute
    # path loses its leading slash (a/work/x.py, not a//work/x.py: `patch -p1` from / works)
    shown = path.replace("\\", "/").lstrip("/")
    return "".join(difflib.unified_diff(old.splitlines(keepends=True),
                                        new.splitlines(keepends=True),
                                        f"a/{shown}", f"b/{shown}", n=2))


__all__ = ["FORMULAS", "NARROW", "TRANSFORMS", "RewriteError", "apply", "importable",
           "unified_diff"]
