"""Find targets statically: parse files with `ast`, never import them.

The CLI process must stay free of frameworks and of user code (which may hang or crash), so
targets, their frameworks and the constants in their source are read from the syntax tree.
The worker imports the file later and looks the targets up by name.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from gradsafe.discover.params import (
    builtin_info,
    class_info,
    dotted_name,
    find_class,
    framework_file,
    function_params,
)
from gradsafe.model.types import CUSTOM_KINDS, PORTABLE, Target, TargetKind

# module prefix -> framework; keras 3 runs on the TensorFlow backend unless told otherwise
_ROOTS = {
    "torch": "torch",
    "tensorflow": "tensorflow",
    "tf": "tensorflow",
    "keras": "tensorflow",
    "tf_keras": "tensorflow",
    "jax": "jax",
    "flax": "jax",
    "numpy": "numpy",
}
_SKIP_DIRS = {".git", ".venv", "venv", "__pycache__", "node_modules", ".tox", ".mypy_cache"}
_WHERE_NAMES = {"where", "select", "masked_fill", "masked_fill_", "cond", "switch_case"}


class DiscoveryError(Exception):
    """A path given on the command line cannot be read at all."""


def framework_of_module(module: str) -> str | None:
    root = module.split(".", 1)[0]
    if module.startswith("tensorflow.experimental.numpy"):
        return "tensorflow"
    return _ROOTS.get(root)


def builtin_target(dotted: str) -> Target:
    framework = framework_of_module(dotted)
    if framework is None or framework == "numpy" or "." not in dotted:
        return Target(dotted, None, None, TargetKind.BUILTIN, (), explicit=True,
                      error=f"'{dotted}' is not a file, directory or dotted name of a "
                            "torch, tensorflow, keras or jax function")
    cls = builtin_info(dotted)  # a framework class: its constructor arguments get swept
    if cls is not None:
        return Target(dotted, None, None, TargetKind.BUILTIN, (framework,), features=cls.features,
                      params=cls.params, explicit=True)
    return Target(dotted, None, None, TargetKind.BUILTIN, (framework,), explicit=True,
                  accepts=("**",))


def looks_dotted(arg: str) -> bool:
    parts = arg.split(".")
    return len(parts) >= 2 and all(p.isidentifier() for p in parts)


def module_file(dotted: str) -> str | None:
    """The source file of an importable module (`pkg.module`), found without importing
    anything: the top-level package in the working directory or by the import system's
    finders (which locate it without running it), the rest by walking its directories.
    None when there is no such module."""
    parts = dotted.split(".")
    if not all(p.isidentifier() for p in parts):
        return None
    head = Path.cwd() / parts[0]
    if head.is_dir():
        folders = [head]
    elif (head.with_suffix(".py")).is_file():
        return str(head.with_suffix(".py")) if len(parts) == 1 else None
    else:
        try:
            spec = importlib.util.find_spec(parts[0])
        except (ImportError, ValueError):
            return None
        if spec is None:
            return None
        if not spec.submodule_search_locations:
            origin = spec.origin or ""
            return origin if len(parts) == 1 and origin.endswith(".py") else None
        folders = [Path(p) for p in spec.submodule_search_locations]
    for folder in folders:
        here = folder
        for part in parts[1:-1]:
            here = here / part
        last = parts[-1]
        if len(parts) > 1 and (here / f"{last}.py").is_file():
            return str(here / f"{last}.py")
        package = here / last if len(parts) > 1 else here
        if (package / "__init__.py").is_file():
            return str(package / "__init__.py")
    return None


def split_spec(arg: str) -> tuple[str, str | None]:
    """`path/or.module:Name` -> (path or module, Name); no colon -> (arg, None)."""
    head, sep, name = arg.rpartition(":")
    if sep and head and name and all(p.isidentifier() for p in name.split(".")) \
            and not (len(head) == 1 and head.isalpha()):  # not a Windows drive letter
        return head, name
    return arg, None


def expand_paths(paths: Iterable[str]) -> Iterator[str]:
    """Files and dotted names in a stable order; directories recurse into *.py; module
    names (`pkg.module`) become their files; `...:Name` keeps its name."""
    for spec in paths:
        arg, name = split_spec(spec)
        suffix = f":{name}" if name else ""
        p = Path(arg)
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
                for fname in sorted(files):
                    if fname.endswith(".py"):
                        yield str(Path(root) / fname) + suffix
        elif p.is_file():
            yield str(p) + suffix
        elif looks_dotted(arg) or (arg.isidentifier() and name):
            found = module_file(arg)
            if found is not None:
                yield found + suffix
            elif not arg.endswith(".py") and framework_of_module(arg) not in (None, "numpy") \
                    and name is None:
                yield arg
            else:
                raise DiscoveryError(f"no such file, directory or module: {arg}")
        else:
            raise DiscoveryError(f"no such file, directory or module: {arg}")


def discover(paths: Iterable[str],
             read: Callable[[str], list[Target]] | None = None) -> list[Target]:
    """Targets of files, directories, module names and built-ins; `read` gives one file's
    targets (discover_file, or the cache's copy of its result)."""
    read = read or discover_file
    targets: list[Target] = []
    for item in expand_paths(paths):
        path, name = split_spec(item)
        if Path(path).is_file():
            # FILE:NAME reads that one definition (a large file's other classes would cost
            # seconds); everything when it is missing, to list what there is
            found = discover_file(path, name.split(".")[0]) if name is not None else read(path)
            if name is not None and not any(t.name == name for t in found):
                found = read(path)
            if name is not None:
                picked = [dataclasses.replace(t, explicit=True) for t in found
                          if t.name == name or t.error is not None]
                if not any(t.name == name for t in picked):
                    known = ", ".join(sorted({t.name for t in found if t.error is None}))
                    raise DiscoveryError(f"{path} has no function or class '{name}' to check"
                                         + (f" (it has: {known})" if known else ""))
                found = picked
            targets.extend(found)
        else:
            targets.append(builtin_target(item))
    return targets


@dataclass
class _Scope:
    aliases: dict[str, str] = field(default_factory=dict)  # local name -> module path
    functions: dict[str, ast.FunctionDef] = field(default_factory=dict)
    classes: dict[str, ast.ClassDef] = field(default_factory=dict)
    constants: dict[str, ast.expr] = field(default_factory=dict)
    stars: list[str] = field(default_factory=list)  # modules of `from X import *`
    root: Path | None = None  # the folder above the file's top-level package
    depth: int = 0  # how many imports away from the file discovery was given
    _imports_framework: bool | None = None

    def framework_imports(self) -> bool:
        """Whether any import names a framework (NumPy included); most files of a code
        base import none, and then no function of theirs can call one."""
        if self._imports_framework is None:
            self._imports_framework = any(framework_of_module(m)
                                          for m in self.aliases.values())
        return self._imports_framework


_MAX_BASES = 4  # imports followed to find a base class defined in another module


def package_of(path: str) -> tuple[Path, str]:
    """(the folder above the file's top-level package, the file's module name): the
    folders above it that hold an __init__.py are its packages."""
    p = Path(path).resolve()
    parts = [p.stem]  # "__init__" too: a relative import there starts from the package
    folder = p.parent
    while (folder / "__init__.py").is_file():
        parts.insert(0, folder.name)
        folder = folder.parent
    return folder, ".".join(parts)


def _module_path(module: str, root: Path) -> Path | None:
    """A module's file: in the file's own project first, else where the import system
    finds it (without importing it)."""
    base = root.joinpath(*module.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    found = module_file(module)
    return Path(found) if found else None


def _external_class(full: str, scope: _Scope) -> tuple[ast.ClassDef, _Scope] | None:
    """A base class imported from another module of the project (or an installed
    package), found by parsing that module: `from .base import BaseLoss`."""
    module, _, name = full.rpartition(".")
    if not module or scope.root is None or scope.depth >= _MAX_BASES:
        return None
    if framework_of_module(module) is not None:
        # a framework's own intermediate class (keras.layers.Softmax, nnx.Linear,
        # keras.src...BasePooling): its source, found through the framework's re-exports
        located = find_class(full)
        if located is None:
            return None
        module, name = located[1], located[0].name
        path = framework_file(module)
    else:
        path = _module_path(module, scope.root)
    if path is None:
        return None
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    other = _collect(tree, module if path.name != "__init__.py" else f"{module}.__init__")
    other.root, other.depth = scope.root, scope.depth + 1
    if name in other.classes:
        return other.classes[name], other
    if name in other.aliases:  # re-exported: `from .base import BaseLoss` in __init__
        real = other.aliases[name]
        if framework_of_module(real.rpartition(".")[0]) is not None:
            # a framework class under another name (`AliasBase = _Loss`, re-exported):
            # a stand-in `class name(real)` that _class_kind resolves like any base
            stand_in = ast.parse(f"class {name}({real}): pass").body[0]
            assert isinstance(stand_in, ast.ClassDef)
            other.aliases.setdefault(real.split(".", 1)[0], real.split(".", 1)[0])
            return stand_in, other
        return _external_class(real, other)
    for star in other.stars:  # `from .bases import *` in a package's __init__
        found = _external_class(f"{star}.{name}", other)
        if found is not None:
            return found
    return None


def discover_file(path: str, only: str | None = None) -> list[Target]:
    """The targets of one file (`only`: the definitions of that top-level name alone)."""
    try:
        source = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [Target("<module>", path, None, TargetKind.FUNCTION, (),
                       error=f"cannot read file: {exc.__class__.__name__}: {exc}")]
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as exc:
        return [Target("<module>", path, exc.lineno, TargetKind.FUNCTION, (),
                       error=f"SyntaxError: {exc.msg} (line {exc.lineno})")]
    scope = _collect(tree, package_of(path)[1])
    scope.root = package_of(path)[0]
    # A function that calls no framework API (plain operators) runs on the tensors of the
    # one framework its file imports, if there is exactly one.
    module_fws = {fw for m in scope.aliases.values()
                  if (fw := framework_of_module(m)) and fw != "numpy"}
    fallback = tuple(module_fws) if len(module_fws) == 1 else ()
    helpers = custom_rule_helpers(tree)

    def inferred(fn: ast.AST) -> tuple[str, ...]:
        """The frameworks a function calls; calling none, the one its file imports."""
        frameworks = _frameworks(fn, scope, set())
        return frameworks if set(frameworks) - {"numpy"} else (fallback or frameworks)

    targets = []
    for node in tree.body:
        if only is not None and only not in _defines(node):
            continue
        if isinstance(node, ast.FunctionDef) and (pkind := portable_kind(node, scope)) \
                and node.name not in helpers and decorated_kind(node, scope) is None:
            # one source, every framework: keras.ops under each Keras backend, or an
            # array-API function handed each framework's namespace
            ops = pkind == TargetKind.KERAS_OPS  # array-API: `def act(x, xp)`, nothing else
            accepts, needs = signature(node.args) if ops else ((), ())
            targets.append(Target(node.name, path, node.lineno, pkind, PORTABLE,
                                  _constants(node, scope), _features(node, scope),
                                  params=function_params(node) if ops else (),
                                  accepts=accepts, needs=needs,
                                  inputs=inputs_of(node.args) if ops else ()))
        elif isinstance(node, ast.FunctionDef) and _is_target_function(node) \
                and node.name not in helpers:
            fkind = decorated_kind(node, scope)
            frameworks = (CUSTOM_KINDS[fkind],) if fkind else inferred(node)
            accepts, needs = signature(node.args)
            needs = () if fkind else needs  # gradcheck binds a custom gradient's extra inputs
            targets.append(Target(node.name, path, node.lineno, fkind or TargetKind.FUNCTION,
                                  frameworks, _constants(node, scope), _features(node, scope),
                                  params=() if fkind else function_params(node),
                                  accepts=accepts, needs=needs,
                                  inputs=() if fkind else inputs_of(node.args)))
        elif isinstance(node, ast.Assign) and (found := _target_lambda(node)):
            name, fn = found
            accepts, needs = signature(fn.args)
            targets.append(Target(name, path, node.lineno, TargetKind.FUNCTION, inferred(fn),
                                  _constants(fn, scope), _features(fn, scope),
                                  accepts=accepts, needs=needs, inputs=inputs_of(fn.args)))
        elif isinstance(node, ast.Assign) and (wrapped := wrapped_custom(node, scope)):
            name, akind, inner = wrapped
            targets.append(Target(name, path, node.lineno, akind, (CUSTOM_KINDS[akind],),
                                  _constants(inner, scope), _features(inner, scope)))
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            kind = _class_kind(node, scope, set()) or custom_class_kind(node, scope, set())
            if kind is None:
                continue
            frameworks = (("tensorflow",) if kind == TargetKind.LAYER
                          else _frameworks(node, scope, set()))
            if kind == TargetKind.LAYER and _keras_only(node, scope):
                frameworks = PORTABLE  # keras.ops inside: every Keras backend runs it
            if kind == TargetKind.MODULE:
                frameworks = ("torch",)
            frameworks = (CUSTOM_KINDS[kind],) if kind in CUSTOM_KINDS else frameworks
            if kind in (TargetKind.NNX, TargetKind.TRAX):
                frameworks = ("jax",)
            cls = class_info(node, scope.classes, lambda d: resolve(d, scope))
            accepts, needs = call_signature(node, kind, scope)
            custom = kind in CUSTOM_KINDS
            needs = () if custom else needs  # gradcheck binds extra inputs
            call = call_arguments(node, kind, scope)
            targets.append(Target(node.name, path, node.lineno, kind, frameworks,
                                  _constants(node, scope), _features(node, scope) | cls.features,
                                  params=cls.params, accepts=accepts, needs=needs,
                                  inputs=inputs_of(call, 1) if call and not custom else ()))
    return targets


def _defines(node: ast.stmt) -> set[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, ast.Assign):
        return {n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return set()


def _collect(tree: ast.Module, module: str = "") -> _Scope:
    """Names of a file; `module` (its dotted name) resolves relative imports."""
    scope = _Scope()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    scope.aliases[a.asname] = a.name
                else:
                    root = a.name.split(".", 1)[0]
                    scope.aliases[root] = root
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                if a.name == "*":
                    scope.stars.append(node.module)
                    continue
                scope.aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        elif isinstance(node, ast.ImportFrom) and node.level > 0 and module:
            package = module.rsplit(".", node.level)[0] if module.count(".") >= node.level \
                else ""
            source = ".".join(p for p in (package, node.module or "") if p)
            for a in node.names:
                if source and a.name != "*":
                    scope.aliases.setdefault(a.asname or a.name, f"{source}.{a.name}")
                elif source:
                    scope.stars.append(source)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            scope.functions[node.name] = node
        elif isinstance(node, ast.ClassDef):
            scope.classes[node.name] = node
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    scope.constants[t.id] = node.value
    for node in _conditional(tree.body):  # `if HAVE_X: from x import B` / `else: class B`
        if isinstance(node, ast.ClassDef):
            scope.classes.setdefault(node.name, node)
    for node in tree.body:  # another name for a class: `Base = nn.Module`, `Alias = Local`
        if isinstance(node, ast.Assign) and (d := dotted_name(node.value)) is not None:
            for t in node.targets:
                if not isinstance(t, ast.Name) or t.id in scope.aliases:
                    continue
                if d in scope.classes:
                    scope.classes.setdefault(t.id, scope.classes[d])
                elif d.split(".", 1)[0] in scope.aliases:
                    scope.aliases[t.id] = resolve(d, scope)
    return scope


def _conditional(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements inside module-level if/try blocks (a fallback base class defined when an
    optional package is missing, as torchmetrics' image/fid.py does)."""
    for node in body:
        if isinstance(node, ast.If):
            blocks = [node.body, node.orelse]
        elif isinstance(node, ast.Try):
            blocks = [node.body, *(h.body for h in node.handlers), node.orelse,
                      node.finalbody]
        else:
            continue
        for block in blocks:
            yield from block
            yield from _conditional(block)


def _is_target_function(node: ast.FunctionDef) -> bool:
    """A public function whose first positional parameter can be the input; other
    required parameters are recorded as `needs` (bound with --arg, or skipped)."""
    if node.name.startswith("_") or node.name.startswith("test"):
        return False
    return bool(node.args.posonlyargs + node.args.args)


def signature(args: ast.arguments, skip: int = 0) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(parameters beyond the input, the required ones among them); `skip` leading
    parameters (self, ctx) come before the input."""
    positional = args.posonlyargs + args.args
    required = len(positional) - len(args.defaults)
    accepts = [a.arg for a in positional[skip + 1:]]
    needs = [a.arg for i, a in enumerate(positional) if skip < i < required]
    accepts += [a.arg for a in args.kwonlyargs]
    needs += [a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)
              if d is None]
    if args.kwarg is not None:
        accepts.append("**")
    return tuple(accepts), tuple(needs)


def inputs_of(args: ast.arguments, skip: int = 0) -> tuple[str, ...]:
    """The required positional parameters, the input first: what --sweep may pick (those
    with defaults are options such as gamma or reduction, set with --arg)."""
    positional = args.posonlyargs + args.args
    required = len(positional) - len(args.defaults)
    return tuple(a.arg for a in positional[skip:required])


_CALL_METHODS: dict[str, tuple[str, int]] = {
    TargetKind.MODULE: ("forward", 1), TargetKind.LAYER: ("call", 1),
    TargetKind.NNX: ("__call__", 1), TargetKind.TRAX: ("forward", 1),
    TargetKind.NUMPY_LAYER: ("forward", 1), TargetKind.AUTOGRAD_FUNCTION: ("forward", 1)}


def call_signature(node: ast.ClassDef, kind: str, scope: _Scope
                   ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The parameters of the method that a class target is called through."""
    args = call_arguments(node, kind, scope)
    return signature(args, _CALL_METHODS.get(kind, ("forward", 1))[1]) if args else ((), ())


def call_arguments(node: ast.ClassDef, kind: str, scope: _Scope,
                   seen: set[str] | None = None) -> ast.arguments | None:
    """The arguments of the method that a class target is called through (here or in a
    base class of the same file)."""
    name, skip = _CALL_METHODS.get(kind, ("forward", 1))
    seen = seen if seen is not None else set()
    for item in node.body:
        if isinstance(item, ast.FunctionDef) and item.name == name \
                and len(item.args.posonlyargs + item.args.args) > skip:
            return item.args
    for base in node.bases:
        dotted = dotted_name(base)
        if dotted in scope.classes and dotted not in seen:
            seen.add(dotted)
            return call_arguments(scope.classes[dotted], kind, scope, seen)
        external = _external_class(resolve(dotted, scope), scope) if dotted else None
        if external is not None and external[0].name not in seen:
            seen.add(external[0].name)
            return call_arguments(external[0], kind, external[1], seen)
    return None


def _target_lambda(node: ast.Assign) -> tuple[str, ast.Lambda] | None:
    """`act = lambda x: ...` at the top of a file: a function like any other."""
    if len(node.targets) != 1 or not isinstance(node.targets[0], ast.Name) \
            or not isinstance(node.value, ast.Lambda):
        return None
    name = node.targets[0].id
    args = node.value.args
    if name.startswith("_") or name.startswith("test") or not args.posonlyargs + args.args:
        return None
    return name, node.value


_ARRAY_API = {
    "abs", "acos", "acosh", "add", "asin", "asinh", "atan", "atan2", "atanh", "clip", "cos",
    "cosh", "divide", "exp", "expm1", "floor", "ceil", "hypot", "log", "log1p", "log2",
    "log10", "logaddexp", "maximum", "minimum", "multiply", "negative", "pow", "round",
    "sign", "sin", "sinh", "sqrt", "square", "subtract", "tan", "tanh", "where", "zeros_like",
    "ones_like", "full_like", "asarray", "astype", "finfo", "pi", "e", "inf", "nan",
    "isfinite", "isnan", "isinf", "greater", "less", "equal", "logical_and", "logical_or",
    "logical_not", "sum", "max", "min", "mean", "erf", "reciprocal", "signbit", "copysign",
    "float16", "float32", "float64", "bfloat16", "trunc", "remainder", "real", "conj"}


def _namespace_param(node: ast.FunctionDef) -> str | None:
    """`def act(x, xp)`: the second positional parameter is the array namespace when it is
    named `xp` or only ever used as `xp.name`."""
    if node.name.startswith("_") or node.name.startswith("test"):
        return None
    args = node.args
    positional = args.posonlyargs + args.args
    required = len(positional) - len(args.defaults)
    if required != 2 or any(d is None for d in args.kw_defaults):
        return None
    name = positional[1].arg
    if name == "xp":
        return name
    uses = [sub for sub in ast.walk(node) if isinstance(sub, ast.Name) and sub.id == name]
    attrs = {id(sub.value): sub.attr for sub in ast.walk(node)
             if isinstance(sub, ast.Attribute)}
    # every use reads a function of the array API (d.pop, s.startswith: not a namespace)
    return name if uses and all(attrs.get(id(u)) in _ARRAY_API for u in uses) else None


def _modules_used(node: ast.AST, scope: _Scope, seen: set[str]) -> set[str]:
    """Module paths of the imported names a function reads, through same-file helpers."""
    found: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            if sub.id in scope.aliases:
                found.add(scope.aliases[sub.id])
            elif sub.id in scope.functions and sub.id not in seen:
                seen.add(sub.id)
                found |= _modules_used(scope.functions[sub.id], scope, seen)
    return found


def portable_kind(node: ast.FunctionDef, scope: _Scope) -> TargetKind | None:
    """"array_api" for `def act(x, xp)`; "keras_ops" for a one-argument function whose only
    framework is Keras 3 (keras.ops, keras.activations), which runs on all three backends."""
    if _namespace_param(node) is not None:
        return TargetKind.ARRAY_API
    if not _is_target_function(node):
        return None
    ml = {m for m in _modules_used(node, scope, set())
          if framework_of_module(m) not in (None, "numpy")}
    if ml and all(m.split(".", 1)[0] == "keras" for m in ml) \
            and not any(m.startswith(("keras.layers", "keras.Layer")) for m in ml):
        return TargetKind.KERAS_OPS
    return None


def _keras_only(node: ast.AST, scope: _Scope) -> bool:
    """Code whose only framework is Keras 3 (keras.ops, keras.layers, keras.initializers)."""
    ml = {m for m in _modules_used(node, scope, set())
          if framework_of_module(m) not in (None, "numpy")}
    return bool(ml) and all(m.split(".", 1)[0] == "keras" for m in ml)


def resolve(name: str, scope: _Scope) -> str:
    head, _, rest = name.partition(".")
    base = scope.aliases.get(head)
    if base is None:
        return name
    return f"{base}.{rest}" if rest else base


def _frameworks(node: ast.AST, scope: _Scope, seen: set[str]) -> tuple[str, ...]:
    if not scope.framework_imports():  # frameworks are found through imports alone
        return ()
    found: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            if sub.id in scope.aliases:
                fw = framework_of_module(scope.aliases[sub.id])
                if fw:
                    found.add(fw)
            elif sub.id in scope.functions and sub.id not in seen:
                seen.add(sub.id)
                found.update(_frameworks(scope.functions[sub.id], scope, seen))
            elif sub.id in scope.classes and sub.id not in seen:
                seen.add(sub.id)
                found.update(_frameworks(scope.classes[sub.id], scope, seen))
    ml = found - {"numpy"}
    if ml:
        return tuple(sorted(ml, key=("torch", "tensorflow", "jax").index))
    return tuple(sorted(found))


def _class_kind(node: ast.ClassDef, scope: _Scope, seen: set[str]) -> TargetKind | None:
    for base in node.bases:
        dotted = dotted_name(base)
        if dotted is None:
            continue
        if dotted in scope.classes and dotted not in seen:
            seen.add(dotted)
            kind = _class_kind(scope.classes[dotted], scope, seen)
            if kind:
                return kind
            continue
        full = resolve(dotted, scope)
        if full.startswith("flax.") and full.rsplit(".", 1)[-1] == "Module":
            return TargetKind.NNX
        if full.startswith("torch.nn.") and full != "torch.nn.functional":
            return TargetKind.MODULE
        if "keras" in full and full.rsplit(".", 1)[-1] == "Layer":
            return TargetKind.LAYER
        if full.startswith("trax."):
            return TargetKind.TRAX
        external = _external_class(full, scope)
        if external is not None and external[0].name not in seen:
            seen.add(external[0].name)
            kind = _class_kind(external[0], external[1], seen)
            if kind:
                return kind
    return TargetKind.TRAX if is_trax_style(node) else None


def is_trax_style(node: ast.ClassDef) -> bool:
    """Trax's layer protocol, duck-typed (trax itself no longer installs): a `forward`
    method plus `init_weights_and_state`, or the `weights` / `_mode` / `rng` attributes."""
    methods = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
    if "forward" not in methods:
        return False
    if "init_weights_and_state" in methods:
        return True
    return any(isinstance(n, ast.Attribute) and n.attr in ("weights", "_mode", "rng")
               and isinstance(n.value, ast.Name) and n.value.id == "self"
               for n in ast.walk(node))


def _number(node: ast.expr) -> float | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
            and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _number(node.operand)
        return -inner if inner is not None else None
    return None


def _constants(node: ast.AST, scope: _Scope) -> tuple[float, ...]:
    """Numeric literals in the target and the module-level names it reads."""
    values: set[float] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.expr):
            v = _number(sub)
            if v is not None and v == v and abs(v) not in (0.0, float("inf")):
                values.add(abs(v))
        if isinstance(sub, ast.Name) and sub.id in scope.constants:
            v = _number(scope.constants[sub.id])
            if v is not None and v != 0:
                values.add(abs(v))
    return tuple(sorted(values))


def _features(node: ast.AST, scope: _Scope, seen: set[str] | None = None) -> frozenset[str]:
    """Syntactic hints used to name a finding before the tracer refines it."""
    seen = set() if seen is None else seen
    feats: set[str] = set()
    masks: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Assign) and _is_mask(sub.value, masks):
            masks.update(t.id for t in sub.targets if isinstance(t, ast.Name))
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            d = dotted_name(sub.func)
            if d and d.rsplit(".", 1)[-1] in _WHERE_NAMES:
                feats.add("where")
            if d in scope.functions and d not in seen:  # a helper in the same file
                seen.add(d)
                feats.update(_features(scope.functions[d], scope, seen))
        if isinstance(sub, ast.BinOp) and isinstance(sub.op, ast.Mult) and (
                _is_mask(sub.left, masks) or _is_mask(sub.right, masks)):
            feats.add("mask_multiply")
    return frozenset(feats)


# calls whose result is a boolean mask, and conversions that keep a mask a mask
_MASK_CALLS = {"gt", "ge", "lt", "le", "eq", "ne", "greater", "greater_equal", "less",
               "less_equal", "equal", "not_equal", "logical_and", "logical_or", "logical_xor",
               "logical_not", "heaviside", "isfinite", "isnan", "isinf", "signbit"}
_MASK_CASTS = {"float", "double", "half", "bfloat16", "type", "type_as", "to", "astype",
               "cast", "asarray", "array", "convert_to_tensor"}


def _call_name(node: ast.Call) -> str:
    """Last part of the called name; works for methods of any expression: `(x > 0).float()`
    (whose dotted name does not exist because its base is not a name)."""
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    if isinstance(node.func, ast.Name):
        return node.func.id
    return ""


def _is_mask(node: ast.expr, masks: set[str]) -> bool:
    if isinstance(node, ast.Compare):
        return True
    if isinstance(node, ast.Name):
        return node.id in masks
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Invert, ast.Not)):
        return _is_mask(node.operand, masks)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub):
        return _is_mask(node.right, masks)  # 1 - mask
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.BitAnd, ast.BitOr, ast.BitXor)):
        return _is_mask(node.left, masks) and _is_mask(node.right, masks)  # (x > a) & (x < b)
    if isinstance(node, ast.Call):
        last = _call_name(node)
        if last in _MASK_CALLS:
            return True
        if last in _MASK_CASTS:
            inner = node.func.value if isinstance(node.func, ast.Attribute) else None
            if inner is not None and _is_mask(inner, masks):
                return True  # mask.float(), (x > 0).to(x.dtype)
            return bool(node.args) and _is_mask(node.args[0], masks)  # tf.cast(mask, ...)
    return False


# --- hand-written gradients (checked by gradcheck in the worker) -------------------------

_AUTOGRAD_FUNCTION = {"torch.autograd.Function", "torch.autograd.function.Function",
                      "torch.autograd.function.InplaceFunction"}
_DECORATORS = {"tensorflow.custom_gradient": TargetKind.CUSTOM_GRADIENT,
               "tensorflow.python.ops.custom_gradient.custom_gradient": TargetKind.CUSTOM_GRADIENT,
               "jax.custom_vjp": TargetKind.CUSTOM_VJP,
               "jax.custom_derivatives.custom_vjp": TargetKind.CUSTOM_VJP,
               "jax.custom_jvp": TargetKind.CUSTOM_JVP,
               "jax.custom_derivatives.custom_jvp": TargetKind.CUSTOM_JVP}
_RULE_METHODS = {"defvjp", "defjvp", "defjvps"}


def _decorator_kind(expr: ast.expr, scope: _Scope) -> TargetKind | None:
    """`@tf.custom_gradient`, `@jax.custom_vjp`, `@partial(jax.custom_vjp, ...)`."""
    if isinstance(expr, ast.Call):
        head = dotted_name(expr.func)
        if head and resolve(head, scope).rsplit(".", 1)[-1] == "partial" and expr.args:
            return _decorator_kind(expr.args[0], scope)
        expr = expr.func
    dotted = dotted_name(expr)
    return _DECORATORS.get(resolve(dotted, scope)) if dotted else None


def decorated_kind(node: ast.FunctionDef, scope: _Scope) -> TargetKind | None:
    for dec in node.decorator_list:
        kind = _decorator_kind(dec, scope)
        if kind:
            return kind
    return None


def wrapped_custom(node: ast.Assign, scope: _Scope) -> tuple[str, TargetKind, ast.AST] | None:
    """`f = jax.custom_vjp(g)` / `f = tf.custom_gradient(g)`: target f, forward g."""
    if len(node.targets) != 1 or not isinstance(node.targets[0], ast.Name):
        return None
    name = node.targets[0].id
    call = node.value
    if name.startswith("_") or not isinstance(call, ast.Call) or len(call.args) != 1:
        return None
    kind = _decorator_kind(call.func, scope)
    if kind is None:
        return None
    inner = call.args[0]
    fn = scope.functions.get(inner.id) if isinstance(inner, ast.Name) else None
    return name, kind, fn if fn is not None else call


def custom_rule_helpers(tree: ast.Module) -> set[str]:
    """Names of the fwd/bwd/jvp rules given to `f.defvjp(fwd, bwd)` and `@f.defjvp`:
    they are parts of a custom derivative, not activations of their own."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in _RULE_METHODS:
            names.update(a.id for a in node.args if isinstance(a, ast.Name))
        if isinstance(node, ast.FunctionDef):
            for dec in node.decorator_list:
                if isinstance(dec, ast.Attribute) and dec.attr in _RULE_METHODS:
                    names.add(node.name)
    return names


def _methods(node: ast.ClassDef) -> set[str]:
    return {b.name for b in node.body if isinstance(b, ast.FunctionDef)}


def custom_class_kind(node: ast.ClassDef, scope: _Scope, seen: set[str]) -> TargetKind | None:
    """`torch.autograd.Function` subclasses, and duck-typed NumPy layers with
    `forward`/`backward` methods (seed 004)."""
    methods = _methods(node)
    for base in node.bases:
        dotted = dotted_name(base)
        if dotted is None:
            continue
        if dotted in scope.classes and dotted not in seen:
            seen.add(dotted)
            inner = custom_class_kind(scope.classes[dotted], scope, seen)
            if inner == TargetKind.AUTOGRAD_FUNCTION:
                return inner
            methods |= _methods(scope.classes[dotted])
            continue
        if resolve(dotted, scope) in _AUTOGRAD_FUNCTION:
            return TargetKind.AUTOGRAD_FUNCTION
    if {"forward", "backward"} <= methods:
        return TargetKind.NUMPY_LAYER
    return None
