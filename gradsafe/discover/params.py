"""Constructor arguments, modes and randomness of a class, read statically (no imports).

The CLI process never imports user code or frameworks, so a class's numeric constructor
arguments come from its `__init__` in the syntax tree. When the class inherits `__init__`
from a framework class (`class ELU(nn.ELU): pass`, or a dotted built-in such as
`torch.nn.Softplus`), the framework's own source file is located with
`importlib.util.find_spec` on the top-level package (which finds the directory without
running the package) and parsed the same way, following its `from x import y` re-exports.
"""

from __future__ import annotations

import ast
import importlib.util
import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from gradsafe.model.types import ParamKind, ParamSpec, ParamValue

# arguments that configure the framework, not the function
_SKIP = {"self", "inplace", "dtype", "device", "name", "mode", "rngs", "rng", "trainable",
         "autocast", "input_shape", "seed", "training", "deterministic"}
# integer arguments that size a weight rather than shape the function
COUNT_NAMES = {"num_parameters", "channels", "num_channels", "in_channels", "num_features",
               "features", "n_channels", "dim"}
# names whose presence in a class's source makes its behaviour depend on a train/eval mode
_MODE_NAMES = {"training", "_mode", "mode", "deterministic", "use_running_average"}
# calls (last dotted part) that draw random numbers
_RANDOM_CALLS = {"rand", "randn", "rand_like", "randn_like", "randint", "bernoulli",
                 "uniform", "uniform_", "normal", "normal_", "rrelu", "rrelu_", "dropout",
                 "random_", "multinomial", "exponential_", "truncated_normal",
                 "stateless_uniform"}
_MAX_DEPTH = 8


@dataclass(frozen=True)
class ClassInfo:
    """What the sweep needs to know about a class before importing it."""

    params: tuple[ParamSpec, ...]
    features: frozenset[str]  # "modes", "random", "class"


def number(node: ast.expr | None) -> ParamValue | None:
    """A numeric constant expression (1.0 / 8, -2, 1e-2), or None."""
    ops: dict[type[ast.operator], Callable[[float, float], float]] = {
        ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.Div: operator.truediv, ast.Pow: operator.pow}
    if node is None:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
            and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = number(node.operand)
        if inner is None:
            return None
        return -inner if isinstance(node.op, ast.USub) else inner
    if isinstance(node, ast.BinOp) and type(node.op) in ops:
        a, b = number(node.left), number(node.right)
        if a is None or b is None:
            return None
        try:
            v = ops[type(node.op)](a, b)
        except (ZeroDivisionError, OverflowError):
            return None
        return v if isinstance(v, (int, float)) else None
    return None


def _annotation(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _kind(name: str, default: ParamValue | None, annotation: str | None) -> ParamKind | None:
    if annotation == "float" or isinstance(default, float):
        return "float"
    if annotation == "int" or isinstance(default, int):
        return "count" if name in COUNT_NAMES else "int"
    if annotation is None and default is None:
        return "float"
    return None


def _init(cls: ast.ClassDef) -> ast.FunctionDef | None:
    for node in cls.body:
        if isinstance(node, ast.FunctionDef) and node.name == "__init__":
            return node
    return None


def init_params(cls: ast.ClassDef) -> tuple[ParamSpec, ...] | None:
    """Numeric arguments of the class's own __init__; None when it defines none."""
    init = _init(cls)
    if init is None:
        return None
    a = init.args
    positional = a.posonlyargs + a.args
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(a.defaults))
    defaults += list(a.defaults)
    pairs = list(zip(positional, defaults, strict=True))
    pairs += list(zip(a.kwonlyargs, a.kw_defaults, strict=True))
    specs: list[ParamSpec] = []
    for arg, dnode in pairs[1:] if positional else pairs:
        if arg.arg in _SKIP:
            continue
        default = number(dnode)
        if dnode is not None and default is None:
            continue  # a non-numeric default (None, a string, an initializer): not swept
        kind = _kind(arg.arg, default, _annotation(arg.annotation))
        if kind is None:
            continue
        if dnode is None and _annotation(arg.annotation) not in ("float", "int", None):
            continue
        declared = dnode is not None or _annotation(arg.annotation) is not None
        specs.append(ParamSpec(arg.arg, default, kind, _edges(cls, init, arg.arg), declared))
    return tuple(specs)


# a function's keyword arguments that choose an axis, not a value of the formula
_AXES = {"axis", "dim", "keepdim", "keepdims"}


def function_params(fn: ast.FunctionDef) -> tuple[ParamSpec, ...]:
    """A function's numeric keyword arguments (`radius=1.0`), read like a class's
    constructor arguments: the automatic grid sweeps them (see variants.function_settings).
    Only those with a numeric default: the required ones are inputs or need --arg."""
    a = fn.args
    positional = a.posonlyargs + a.args
    pairs = list(zip(positional[len(positional) - len(a.defaults):], a.defaults,
                     strict=True))
    pairs += [(k, d) for k, d in zip(a.kwonlyargs, a.kw_defaults, strict=True)
              if d is not None]
    specs: list[ParamSpec] = []
    for arg, dnode in pairs:
        default = number(dnode)
        if arg.arg in _SKIP or arg.arg in _AXES or default is None:
            continue
        kind = _kind(arg.arg, default, _annotation(arg.annotation))
        if kind is not None:
            specs.append(ParamSpec(arg.arg, default, kind, _edges(fn, fn, arg.arg)))
    return tuple(specs)


def _edges(cls: ast.AST, init: ast.AST, name: str) -> tuple[float, ...]:
    """Constants the source compares the argument (or the attribute it is stored in) to."""
    aliases = {name}
    for node in ast.walk(init):
        if isinstance(node, ast.Assign) and any(
                isinstance(n, ast.Name) and n.id == name for n in ast.walk(node.value)):
            for t in node.targets:
                if isinstance(t, ast.Attribute):
                    aliases.add(t.attr)
    edges: set[float] = set()
    for node in ast.walk(cls):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        mentions = any(
            (isinstance(n, ast.Name) and n.id in aliases)
            or (isinstance(n, ast.Attribute) and n.attr in aliases)
            for op in operands for n in ast.walk(op))
        if mentions:
            for op in operands:
                v = number(op)
                if v is not None:
                    edges.add(float(v))
    return tuple(sorted(edges))


def class_features(cls: ast.ClassDef) -> set[str]:
    feats: set[str] = set()
    for node in ast.walk(cls):
        if isinstance(node, ast.Attribute) and node.attr in _MODE_NAMES:
            feats.add("modes")
        elif isinstance(node, ast.Name) and node.id in _MODE_NAMES:
            feats.add("modes")
        elif isinstance(node, ast.arg) and node.arg in _MODE_NAMES:
            feats.add("modes")
        if isinstance(node, ast.Call):
            d = dotted_name(node.func) or ""
            last = d.rsplit(".", 1)[-1]
            if last in _RANDOM_CALLS or "random" in d.split(".")[:-1]:
                feats.add("random")
    return feats


def dotted_name(node: ast.expr) -> str | None:
    """`a.b.c` of an attribute chain on a name, or None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


# --- framework sources ---------------------------------------------------------------------

def framework_file(module: str) -> Path | None:
    """The source file of a framework module, located without importing it."""
    top, *rest = module.split(".")
    try:
        spec = importlib.util.find_spec(top)  # a top-level name: locates, does not import
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    base = Path(next(iter(spec.submodule_search_locations))).joinpath(*rest)
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


@cache
def _parse(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None


def _absolute(module: str, path: Path, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def find_class(dotted: str, depth: int = 0) -> tuple[ast.ClassDef, str] | None:
    """The ClassDef of a framework class and the module it lives in, by parsing only."""
    module, _, name = dotted.rpartition(".")
    if not module or depth > _MAX_DEPTH:
        return None
    path = framework_file(module)
    tree = _parse(path) if path else None
    if tree is None or path is None:
        return None
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node, module
    for sub in ast.walk(tree):
        if not isinstance(sub, ast.ImportFrom):
            continue
        node = sub
        source = _absolute(module, path, node)
        for alias in node.names:
            if alias.name == "*" or (alias.asname or alias.name) == name:
                real = name if alias.name == "*" else alias.name
                found = find_class(f"{source}.{real}", depth + 1)
                if found:
                    return found
    return None


def _imports(tree: ast.Module, module: str, path: Path | None) -> dict[str, str]:
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                names[a.asname or a.name.split(".", 1)[0]] = a.name if a.asname else \
                    a.name.split(".", 1)[0]
        elif isinstance(node, ast.ImportFrom) and path is not None:
            src = _absolute(module, path, node)
            for a in node.names:
                names[a.asname or a.name] = f"{src}.{a.name}"
    return names


@cache
def _framework_names(module: str, path: Path) -> tuple[dict[str, str],
                                                       dict[str, ast.ClassDef]]:
    """A framework file's imports and classes, read once per process: every class of a file
    with many modules reaches torch.nn.Module, whose file is large."""
    tree = _parse(path)
    assert tree is not None
    return _imports(tree, module, path), {n.name: n for n in tree.body
                                          if isinstance(n, ast.ClassDef)}


def _walk_bases(cls: ast.ClassDef, local: dict[str, ast.ClassDef],
                resolve: Callable[[str], str], depth: int) -> Iterator[ast.ClassDef]:
    """The class, then its bases (local classes first, then framework classes), depth-first."""
    yield cls
    if depth > _MAX_DEPTH:
        return
    for base in cls.bases:
        d = dotted_name(base)
        if d is None:
            continue
        if d in local and local[d] is not cls:
            yield from _walk_bases(local[d], local, resolve, depth + 1)
            continue
        found = find_class(resolve(d))
        if found is None:
            continue
        fcls, fmodule = found
        fpath = framework_file(fmodule)
        ftree = _parse(fpath) if fpath else None
        if ftree is None:
            continue
        fnames, flocal = _framework_names(fmodule, fpath)

        def fresolve(name: str, fnames: dict[str, str] = fnames, fmodule: str = fmodule,
                     flocal: dict[str, ast.ClassDef] = flocal) -> str:
            head, _, rest = name.partition(".")
            if head in fnames:
                return f"{fnames[head]}.{rest}" if rest else fnames[head]
            return f"{fmodule}.{name}" if head in flocal else name

        yield from _walk_bases(fcls, flocal, fresolve, depth + 1)


def class_info(cls: ast.ClassDef, local: dict[str, ast.ClassDef],
               resolve: Callable[[str], str]) -> ClassInfo:
    """Parameters from the nearest __init__ in the class hierarchy; features from all."""
    params: tuple[ParamSpec, ...] | None = None
    feats: set[str] = {"class"}
    for c in _walk_bases(cls, local, resolve, 0):
        if c.name in ("Module", "Layer") and c is not cls:
            break  # the framework's own base class: its code is not the activation
        if params is None:
            params = init_params(c)
        feats |= class_features(c)
    return ClassInfo(params or (), frozenset(feats))


def builtin_info(dotted: str) -> ClassInfo | None:
    """A dotted framework class (torch.nn.ELU) found by parsing the framework's source."""
    found = find_class(dotted)
    if found is None:
        return None
    cls, module = found
    path = framework_file(module)
    tree = _parse(path) if path else None
    if tree is None:
        return None
    names = _imports(tree, module, path)
    local = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}

    def resolve(name: str) -> str:
        head, _, rest = name.partition(".")
        if head in names:
            return f"{names[head]}.{rest}" if rest else names[head]
        return f"{module}.{name}" if head in local else name

    return class_info(cls, local, resolve)
