"""Which source operation made a finding, and why: trace, locate, classify, explain.

The target's file is parsed again and every operation inside a function body (calls,
binary operators, unary minus) is rewritten so that its operands and its result pass
through a `Recorder` (backends/base.py). Running the example inputs through that copy
records, for every operation, the forward value of each operand and of the result, the
cotangent that reaches the result, and the contribution the operation's backward sends to
each operand. The same rewrite works on torch, TensorFlow and JAX, so one definition gets
the same culprit in all three.

From the records:
  - forward findings: the first operation whose result is newly non-finite (its operands
    were finite) is the culprit; a multiplication that turns 0 and inf into NaN makes it a
    mask-multiply (GS202), anything else a forward overflow (GS201);
  - inaccurate forwards (GS203): the first operation whose result departs from the same
    trace run in float64;
  - gradient findings: walking backward, the first operation whose result has a finite
    cotangent while the contribution to an operand is not finite. A zero cotangent that a
    where/select (or a multiplication by 0) gave a discarded branch is a branch leak
    (GS101); an overflow that only the backward sees is GS102; a finite point with an
    infinite derivative (sqrt at 0) is GS103;
  - no gradient (GS104): the operation whose result stops being a float.
Runs inside a worker; any failure to trace leaves the finding as the sweep made it.
"""

from __future__ import annotations

import ast
import builtins
import copy
import dataclasses
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from gradsafe.backends.base import WIDTH, Backend, Recorder, Tapped
from gradsafe.discover.load import load_module, namespace_of
from gradsafe.discover.reach import parsed, reached
from gradsafe.model.codes import (
    BACKWARD_OVERFLOW,
    BRANCH_LEAK,
    FORWARD_INACCURATE,
    FORWARD_OVERFLOW,
    INFINITE_DERIVATIVE,
    MASK_MULTIPLY,
    NO_GRADIENT,
)
from gradsafe.model.types import DTypeName, Finding, Location, Step, Target, TargetKind
from gradsafe.numerics.floats import F64, describe_range, display, info

OUT = "__gradsafe_out__"
ARG = "__gradsafe_arg__"
WHERE_OPS = frozenset({"where", "select", "select_n", "masked_fill", "switch", "cond",
                       "piecewise"})
MUL_OPS = frozenset({"*", "mul", "multiply", "multiply_no_nan"})
CODES_LOCATED = (BRANCH_LEAK, BACKWARD_OVERFLOW, INFINITE_DERIVATIVE, NO_GRADIENT,
                 FORWARD_OVERFLOW, MASK_MULTIPLY, FORWARD_INACCURATE)


@dataclass(frozen=True)
class Site:
    """One operation in the source."""

    line: int
    col: int  # 1-based
    end_line: int
    end_col: int  # 1-based, exclusive
    name: str  # `torch.exp`, `*`, `-x`
    text: str  # the source of the whole expression
    operands: tuple[str, ...]  # the source of each operand, by role

    @property
    def short(self) -> str:
        return self.name.rsplit(".", 1)[-1]


class _Instrument(ast.NodeTransformer):
    """Wraps operations inside function bodies; module-level code runs as before."""

    def __init__(self, source: str) -> None:
        self.source = source
        # ast.get_source_segment splits the whole source on every call: quadratic in the
        # size of the file (a 3,600-line module took a minute); split it once per source
        self.lines = _lines(source)
        self.sites: list[Site] = []
        self.depth = 0

    def _segment(self, node: ast.expr) -> str | None:
        """ast.get_source_segment(source, node), from the lines split once."""
        end, end_col = node.end_lineno, node.end_col_offset
        if end is None or end_col is None:
            return None
        first, col = node.lineno - 1, node.col_offset
        try:
            if first == end - 1:
                return self.lines[first][col:end_col].decode()
            parts = [self.lines[first][col:], *self.lines[first + 1:end - 1],
                     self.lines[end - 1][:end_col]]
            return b"".join(parts).decode()
        except (IndexError, UnicodeDecodeError):
            return None

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        self.depth += 1
        node.body = [self.visit(s) for s in node.body]
        self.depth -= 1
        return node

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> ast.AST:
        self.depth += 1
        node.body = [self.visit(s) for s in node.body]
        self.depth -= 1
        return node

    def visit_Lambda(self, node: ast.Lambda) -> ast.AST:
        self.depth += 1
        node.body = self.visit(node.body)
        self.depth -= 1
        return node

    def _site(self, node: ast.expr, name: str, operands: list[ast.expr]) -> int:
        # positions are the original ones: operands rewritten already keep their source
        text = self._segment(node) or name
        ops = tuple(self._segment(o) or "" for o in operands)
        self.sites.append(Site(node.lineno, node.col_offset + 1,
                               node.end_lineno or node.lineno, (node.end_col_offset or 0) + 1,
                               name, " ".join(text.split()), ops))
        return len(self.sites) - 1

    @staticmethod
    def _tap(fn: str, site: int, role: int | None, value: ast.expr) -> ast.expr:
        args: list[ast.expr] = [ast.Constant(site)]
        if role is not None:
            args.append(ast.Constant(role))
        return ast.Call(ast.Name(fn, ast.Load()), [*args, value], [])

    def visit_Call(self, node: ast.Call) -> ast.AST:
        name = ast.unparse(node.func)  # before the operands are rewritten
        self.generic_visit(node)
        if self.depth == 0:
            return node
        inplace = name.endswith("_") and not name.endswith("__")
        operands: list[ast.expr] = []
        if isinstance(node.func, ast.Attribute) and not inplace:
            operands.append(node.func.value)
        operands.extend(a for a in node.args if not isinstance(a, ast.Starred))
        operands.extend(k.value for k in node.keywords if k.arg is not None)
        site = self._site(node, name, operands)
        if not inplace:  # an in-place method must see the object itself, not a copy
            role = 0
            if isinstance(node.func, ast.Attribute):
                node.func.value = self._tap(ARG, site, role, node.func.value)
                role += 1
            new_args: list[ast.expr] = []
            for a in node.args:
                if isinstance(a, ast.Starred):
                    new_args.append(a)
                else:
                    new_args.append(self._tap(ARG, site, role, a))
                    role += 1
            node.args = new_args
            for k in node.keywords:
                if k.arg is not None:
                    k.value = self._tap(ARG, site, role, k.value)
                    role += 1
        return ast.copy_location(self._tap(OUT, site, None, node), node)

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        if self.depth == 0:
            return node
        symbol = _SYMBOLS.get(type(node.op), "?")
        site = self._site(node, symbol, [node.left, node.right])
        node.left = self._tap(ARG, site, 0, node.left)
        node.right = self._tap(ARG, site, 1, node.right)
        return ast.copy_location(self._tap(OUT, site, None, node), node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        self.generic_visit(node)
        if self.depth == 0 or not isinstance(node.op, ast.USub):
            return node
        site = self._site(node, "-x", [node.operand])
        node.operand = self._tap(ARG, site, 0, node.operand)
        return ast.copy_location(self._tap(OUT, site, None, node), node)


@lru_cache(maxsize=8)
def _lines(source: str) -> list[bytes]:
    """The source's lines as ast counts them (\\n, \\r\\n, \\r), encoded: ast's columns are
    byte offsets."""
    if "\r" in source:
        parts = re.split(r"(?<=\r\n)|(?<=\r)(?!\n)|(?<=\n)", source)
    else:  # the common case, without the regular expression (a tenth of the time)
        parts = [line + "\n" for line in source.split("\n")]
        parts[-1] = parts[-1][:-1]
    return [line.encode() for line in parts]


_SYMBOLS: dict[type, str] = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/",
                             ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**",
                             ast.MatMult: "@"}


@dataclass
class Traced:
    """The target's file re-executed with every operation tapped."""

    obj: Any
    sites: list[Site]
    recorder: Recorder


def instrument(target: Target) -> Traced | None:
    """The target's object from an instrumented copy of what it reaches in its file (None:
    cannot). Only the top-level statements the target names, directly or through them, are
    instrumented and executed again, over the imported module's own namespace: the cost of
    a target does not grow with the size of its file. When that fails, the whole file."""
    if target.file is None or target.kind == TargetKind.BUILTIN:
        return None
    path = str(Path(target.file).resolve())
    try:
        source = Path(path).read_text(encoding="utf-8")
        tree = parsed(source)
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return None
    scoped = reached(tree, target.name.split(".")[0])
    if scoped is not None:
        try:
            base = load_module(path).__dict__
        except Exception:
            base = None
        if base is not None:
            body = [copy.deepcopy(s) for s in scoped]  # the parsed tree is shared
            found = _run(target, path, source, ast.Module(body=body, type_ignores=[]),
                         dict(base))
            if found is not None:
                return found
    return _run(target, path, source, ast.parse(source, path), dict(namespace_of(path)))


def _run(target: Target, path: str, source: str, tree: ast.Module,
         ns: dict[str, Any]) -> Traced | None:
    tool = _Instrument(source)
    tree = ast.fix_missing_locations(tool.visit(tree))
    recorder = Recorder()
    try:
        ns.update({"__file__": path, "__builtins__": builtins, OUT: recorder.out,
                   ARG: recorder.arg})
        exec(compile(tree, path, "exec"), ns)  # the user's own file, as load.py imports it
        obj: Any = ns
        for part in target.name.split("."):
            obj = obj[part] if isinstance(obj, dict) else getattr(obj, part)
    except Exception:
        return None
    return Traced(obj, tool.sites, recorder)


@dataclass(frozen=True)
class Op:
    """One executed operation, at one element of the traced vector."""

    index: int  # position in execution order
    site: Site
    value: float
    cot: float | None  # None: the result is not floating or was not differentiated
    # (role, value, contribution of the backward to it, record of the result it came from)
    operands: tuple[tuple[int, float, float | None, int | None], ...]
    record: int  # the result's record index


def _at(arr: F64 | None, i: int, n: int) -> float | None:
    if arr is None:
        return None
    if arr.size == n:
        return float(arr[i])
    if arr.size == 1:
        return float(arr[0])
    return None


def ops_at(records: list[Tapped], sites: list[Site], i: int, n: int) -> list[Op]:
    """The elementwise operations at element i (operations on other shapes are skipped)."""
    ops: list[Op] = []
    for index, r in enumerate(records):
        if r.role != -1:
            continue
        value = _at(r.value, i, n)
        if value is None:
            continue
        operands = []
        for j in r.operands:
            a = records[j]
            v = _at(a.value, i, n)
            if v is None:
                continue
            operands.append((a.role, v, _at(a.cot, i, n), a.source))
        ops.append(Op(len(ops), sites[r.site], value, _at(r.cot, i, n), tuple(operands),
                      index))
    return ops


@dataclass(frozen=True)
class Cause:
    code: str
    culprit: Op
    text: str  # one or two sentences, with the numbers
    chain: tuple[Op, ...] = ()  # culprit first, towards the output


def _fin(v: float | None) -> bool:
    return v is not None and bool(np.isfinite(v))


def _op_name(op: Op) -> str:
    return f"`{_clip(op.site.text)}`"


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _at_line(op: Op, full: bool = True) -> str:
    """`torch.exp(x)` on line 7; with full=False a call is named by its function."""
    s = op.site
    if full or s.name in _SYMBOLS.values() or s.name == "-x":
        return f"{_op_name(op)} on line {s.line}"
    return f"`{s.name}` on line {s.line}"


def _num(v: float, dtype: str) -> str:
    if np.isnan(v):
        return "NaN"
    return display(v, dtype)


def _short(op: Op) -> str:
    s = op.site
    return s.name if s.name in _SYMBOLS.values() or s.name == "-x" else s.short


def _evaluated(op: Op, dtype: str) -> str:
    """`exp(89.0) = inf`, `0 * inf = NaN`: the operation on the traced values."""
    vals = [_num(v, dtype) for role, v, _, _ in op.operands]
    s = op.site
    if s.name == "-x" and vals:
        expr = f"-{vals[0]}"
    elif s.name in _SYMBOLS.values() and len(op.operands) == 2:
        expr = f"{vals[0]} {s.name} {vals[1]}"
    elif s.name in _SYMBOLS.values():
        expr = _clip(s.text, 30)
    else:
        shown = [_num(v, dtype) for _, v, _, _ in op.operands]
        expr = f"{s.short}({', '.join(shown)})"
    return f"{expr} = {_num(op.value, dtype)}"


def _verb(op: Op) -> str:
    if np.isnan(op.value):
        return "is NaN"
    if np.isinf(op.value):
        return "overflows"
    return "is finite"


def is_mask(records: list[Tapped], j: int, i: int, n: int, depth: int = 3) -> bool:
    """Whether operand record j is a 0/1 mask: a boolean/integer tensor, or made from
    masks alone (`~m`, `1 - m`, `m.float()`, `tf.cast(x > 0, x.dtype)`)."""
    r = records[j]
    v = _at(r.value, i, n)
    if v not in (0.0, 1.0):
        return False
    if r.handle is None:
        return True
    if depth == 0 or r.source is None:
        return False
    made = records[r.source]
    tensors = [k for k in made.operands if _at(records[k].value, i, n) is not None]
    return bool(tensors) and all(is_mask(records, k, i, n, depth - 1) for k in tensors)


def forward_cause(ops: list[Op], dtype: str, threshold: str,
                  mask: Callable[[Op], bool] = lambda op: True) -> Cause | None:
    first = nan_op = None
    for op in ops:
        vals = [v for _, v, _, _ in op.operands]
        new_nan = np.isnan(op.value) and not any(np.isnan(v) for v in vals)
        new_inf = np.isinf(op.value) and all(np.isfinite(v) for v in vals)
        if new_nan and nan_op is None:
            nan_op = op
        if first is None and (new_nan or new_inf):
            first = op
    if first is None:
        return None
    text = (f"{_at_line(first)} {_verb(first)} for {threshold} in {dtype}: "
            f"{_evaluated(first, dtype)}")
    code = FORWARD_OVERFLOW
    if nan_op is not None and nan_op.site.short in MUL_OPS and mask(nan_op):
        vals = [v for _, v, _, _ in nan_op.operands]
        if any(v == 0 for v in vals) and any(np.isinf(v) for v in vals):
            code = MASK_MULTIPLY
            if nan_op is first:
                text = (f"{_at_line(first)} multiplies an infinite value by the mask's 0 "
                        f"for {threshold} in {dtype}: {_evaluated(first, dtype)}")
            else:
                text += (f". {_at_line(nan_op)} multiplies it by the mask's 0 instead of "
                         f"selecting: {_evaluated(nan_op, dtype)}")
    if code == FORWARD_OVERFLOW and nan_op is not None and nan_op is not first:
        text += f", then {_at_line(nan_op, full=False)} gives {_evaluated(nan_op, dtype)}"
    return Cause(code, first, text + ".")


def _consumers(ops: list[Op], op: Op) -> Iterator[tuple[Op, float | None]]:
    for other in ops[op.index + 1:]:
        for _, _, contrib, source in other.operands:
            if source == op.record:
                yield other, contrib


def gradient_cause(ops: list[Op], dtype: str, threshold: str,
                   mask: Callable[[Op], bool] = lambda op: True,
                   ops64: list[Op] | None = None) -> Cause | None:
    """ops64: the same trace in float64 (with gradients), to tell an operation whose
    derivative really is infinite (GS103) from one whose backward overflows inside (GS102:
    a framework function such as an approximate GELU, traced as one operation)."""
    for op in reversed(ops):
        if op.cot is None or not np.isfinite(op.cot):
            continue
        bad = [(role, v, g) for role, v, g, _ in op.operands if g is not None
               and not np.isfinite(g)]
        if not bad:
            continue
        role, arg, contrib = bad[0]
        d64 = _contribution64(ops64, op, role)
        return _explain_gradient(ops, op, arg, contrib, dtype, threshold, mask, d64)
    return None


def _inside(contrib: float, arg: float) -> str:
    """What went wrong inside a backward that float64 computes finitely: an inf is an
    overflow; a NaN at a small input is a 0/0 of intermediates that underflowed to 0
    (exp(-1/x) / (x * x) for tiny x), at a large one an inf/inf or 0 * inf."""
    if not np.isnan(contrib):
        return "overflows inside"
    if abs(arg) < 1:
        return "underflows inside to 0/0 = NaN (its intermediates are too small for the dtype)"
    return "overflows inside to inf/inf or 0 * inf = NaN"


def _contribution64(ops64: list[Op] | None, op: Op, role: int) -> float | None:
    """The float64 trace's backward contribution of op to its operand `role`."""
    if ops64 is None or op.index >= len(ops64) or ops64[op.index].site != op.site:
        return None
    found = [g for r, _, g, _ in ops64[op.index].operands if r == role]
    return found[0] if found else None


def _explain_gradient(ops: list[Op], op: Op, arg: float, contrib: float, dtype: str,
                      threshold: str, mask: Callable[[Op], bool],
                      d64: float | None = None) -> Cause:
    c = op.cot if op.cot is not None else 0.0
    g = _num(contrib, dtype)
    finite_here = bool(np.isfinite(op.value)) and all(
        np.isfinite(v) for _, v, _, _ in op.operands)
    local = "NaN" if np.isnan(op.value) or any(np.isnan(v) for _, v, _, _ in op.operands) \
        else "inf"
    if finite_here:
        what = (f"{_at_line(op)} has an infinite derivative at {_num(arg, dtype)} "
                f"({threshold} in {dtype}): {_evaluated(op, dtype)}")
    else:
        what = f"{_at_line(op)} {_verb(op)} for {threshold} in {dtype}: {_evaluated(op, dtype)}"
    if c != 0:
        if finite_here and d64 is not None and np.isfinite(d64):
            return Cause(BACKWARD_OVERFLOW, op, (
                f"{_at_line(op)} is finite at {_num(arg, dtype)} ({threshold} in {dtype}) and "
                f"so is its backward in float64 ({_num(d64, 'float64')}), but in {dtype} its "
                f"backward {_inside(contrib, arg)} and turns the cotangent {_num(c, dtype)} "
                f"into {g}: {_evaluated(op, dtype)}."))
        if finite_here:
            return Cause(INFINITE_DERIVATIVE, op, (
                f"{what}, and its backward turns the cotangent {_num(c, dtype)} into {g}."))
        return Cause(BACKWARD_OVERFLOW, op, (
            f"{what}; the forward recovers from it, but the backward turns the cotangent "
            f"{_num(c, dtype)} into {g}."))
    # a zero cotangent: find the operation that gave it, walking towards the output
    chain = [op]
    stopper: Op | None = None
    current = op
    while stopper is None:
        nxt = next(((o, g2) for o, g2 in _consumers(ops, current) if g2 == 0), None)
        if nxt is None:
            break
        consumer = nxt[0]
        chain.append(consumer)
        if consumer.cot is not None and consumer.cot != 0:
            stopper = consumer
        current = consumer
    path = " -> ".join(_short(o) for o in chain)
    if stopper is not None and (stopper.site.short in WHERE_OPS
                                or (stopper.site.short in MUL_OPS and mask(stopper))):
        how = ("discards that branch" if stopper.site.short in WHERE_OPS
               else "multiplies that branch by a mask of 0")
        return Cause(BRANCH_LEAK, op, (
            f"{what}. {_at_line(stopper, full=False)} {how} in the forward, but its backward "
            f"multiplies the branch's zero cotangent by that {local}: 0 * {local} = NaN "
            f"(path: {path})."), tuple(chain))
    why = (f"{_at_line(stopper, full=False)} saturates and sends back a zero cotangent"
           if stopper is not None else "its cotangent is 0")
    return Cause(BACKWARD_OVERFLOW, op, (
        f"{what}; the forward recovers from it, but {why}, and the backward multiplies "
        f"that zero by the derivative {local}: 0 * {local} = NaN (path: {path})."),
        tuple(chain))


def no_gradient_cause(ops: list[Op], records: list[Tapped], dtype: str) -> Cause | None:
    for op in ops:
        r = records[op.record]
        if r.handle is None and any(records[j].handle is not None for j in r.operands):
            return Cause(NO_GRADIENT, op, (
                f"{_at_line(op)} turns a float into a non-float value in {dtype}, so no "
                "gradient flows back through it."))
    for op in ops:
        if op.site.short in ("detach", "stop_gradient"):
            return Cause(NO_GRADIENT, op, f"{_at_line(op)} cuts the gradient in {dtype}.")
    return None


def inaccurate_cause(ops: list[Op], ops64: list[Op], dtype: str,
                     threshold: str) -> Cause | None:
    if len(ops) != len(ops64):
        return None
    for op, ref in zip(ops, ops64, strict=True):
        if op.site != ref.site:
            return None
        if not np.isfinite(ref.value):
            continue
        if not np.isfinite(op.value) or abs(op.value - ref.value) > 0.5 * abs(ref.value):
            return Cause(FORWARD_INACCURATE, op, (
                f"{_at_line(op)} loses the value for {threshold} in {dtype}: "
                f"{_evaluated(op, dtype)} where float64 gives "
                f"{display(ref.value, 'float64')}, and the digits lost there never "
                "come back."))
    return None


def location(file: str, op: Op) -> Location:
    s = op.site
    return Location(file, s.line, s.col, s.end_line, s.end_col)


# (object, dtype) -> the callable for that dtype and the vector length it needs
Instantiate = Callable[[Any, str], "tuple[Any, int]"]


def refine(backend: Backend, target: Target, traced: Traced | None, make: Instantiate,
           findings: list[Finding]) -> list[Finding]:
    """Findings with the culprit operation as location, the cause's code and sentences.

    `make(obj, dtype)` builds the callable for a dtype from (an instrumented copy of) the
    target's object. Findings without a finite example (x = ±inf is traced too) keep their
    first classification when nothing can be traced."""
    if traced is None or target.file is None or not findings:
        return findings
    file = target.file
    replaced: dict[int, Finding] = {}
    for dtype in dict.fromkeys(f.dtype for f in findings):
        mine = [f for f in findings if f.dtype == dtype and f.code in CODES_LOCATED]
        if not mine:
            continue
        try:
            causes = _trace_dtype(backend, traced, make, mine, dtype)
        except Exception:  # a target that cannot be traced keeps the sweep's findings
            continue
        for f, cause in zip(mine, causes, strict=True):
            if cause is not None:
                replaced[id(f)] = _apply(f, cause, file)
    return [replaced.get(id(f), f) for f in findings]


def _trace_dtype(backend: Backend, traced: Traced, make: Instantiate, findings: list[Finding],
                 dtype: DTypeName) -> list[Cause | None]:
    xs_list = list(dict.fromkeys(f.example_input for f in findings))
    fn, n = make(traced.obj, dtype)
    # a full-width vector like the sweep's: the kernels then take the same code paths
    xs = np.resize(np.array(xs_list, dtype=np.float64), max(n, WIDTH))
    n = int(xs.size)
    rec = traced.recorder
    backend.trace(fn, xs, dtype, rec, grad=True)
    records = rec.records
    records64: list[Tapped] | None = None
    if any(f.code == FORWARD_INACCURATE for f in findings):
        backend.trace(make(traced.obj, "float64")[0], xs, "float64", rec, grad=False)
        records64 = rec.records
    grads64: list[Tapped] | None = None
    if dtype != "float64" and any(f.kind == "gradient"
                                  and f.code not in (NO_GRADIENT, FORWARD_INACCURATE)
                                  for f in findings):
        try:  # the derivative each operation really has (finite or not), see gradient_cause
            backend.trace(make(traced.obj, "float64")[0], xs, "float64", rec, grad=True)
            grads64 = rec.records
        except Exception:
            grads64 = None
    causes: list[Cause | None] = []
    for f in findings:
        i = xs_list.index(f.example_input)
        ops = ops_at(records, traced.sites, i, n)
        cause: Cause | None
        if f.code == NO_GRADIENT:
            cause = no_gradient_cause(ops, records, dtype)
        elif f.code == FORWARD_INACCURATE and records64 is not None:
            cause = inaccurate_cause(ops, ops_at(records64, traced.sites, i, n), dtype,
                                     threshold(f))
        else:
            def masked(op: Op, i: int = i) -> bool:
                """Some operand of op is a 0 of a mask."""
                return any(_at(records[j].value, i, n) == 0 and is_mask(records, j, i, n)
                           for j in records[op.record].operands)

            if f.kind == "forward":
                cause = forward_cause(ops, dtype, threshold(f), masked)
            else:
                cause = gradient_cause(ops, dtype, threshold(f), masked,
                                       None if grads64 is None else
                                       ops_at(grads64, traced.sites, i, n))
        causes.append(cause)
    return causes


def threshold(f: Finding) -> str:
    return describe_range(f.range.low, f.range.high, info(f.dtype), f.dtype)


def _apply(f: Finding, cause: Cause, file: str) -> Finding:
    code = cause.code
    if f.code == FORWARD_INACCURATE or f.code == NO_GRADIENT:
        code = f.code
    head = f.message
    path = tuple(Step(_short(o), location(file, o)) for o in cause.chain)
    where = location(file, cause.culprit)
    text = cause.text
    inside = _hand_written_backward(file, cause.culprit.site.name) if f.kind == "gradient" \
        else None
    if inside is not None:  # the cause is in the backward the user wrote, not at .apply
        path = (Step(_short(cause.culprit), where), *path)
        where = inside
        text += (f" The gradient comes from the hand-written backward of "
                 f"{cause.culprit.site.name.rsplit('.', 1)[0]}: line {inside.line}.")
    return dataclasses.replace(f, code=code, location=where, message=f"{head}. {text}",
                               path=path)


def _hand_written_backward(file: str, name: str) -> Location | None:
    """`Cls.apply` of a torch.autograd.Function defined in file: the last return statement
    of its backward (what the backward computes)."""
    if not name.endswith(".apply"):
        return None
    cls = name[:-len(".apply")].rsplit(".", 1)[-1]
    try:
        tree = ast.parse(Path(file).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == cls:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "backward":
                    returns = [r for r in ast.walk(item) if isinstance(r, ast.Return)
                               and r.value is not None]
                    if not returns:
                        return None
                    r = max(returns, key=lambda n: n.lineno)
                    assert r.value is not None
                    return Location(file, r.value.lineno, r.value.col_offset + 1,
                                    r.value.end_lineno or r.value.lineno,
                                    (r.value.end_col_offset or 0) + 1)
    return None
