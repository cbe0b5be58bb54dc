"""Import a user's file inside a worker, as Python would, and look up targets by name.

A file inside a package (a directory with `__init__.py`, walked up to the package root; src
layouts and installed namespace packages included) is imported by its dotted name with the
root's parent on sys.path, so relative imports, sibling imports and `pkg/pkg.py` work. A file
outside any package is imported on its own, under a private name, with its directory on
sys.path (its neighbours stay importable).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import site
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

_MODULES: dict[str, ModuleType] = {}
_FAILED: dict[str, str] = {}  # resolved path -> why importing it failed (said once per file)
_COPIES: dict[str, str] = {}  # a rewritten copy (suggestions) -> the file it copies


class LoadError(Exception):
    """The file could not be imported or the target is missing."""


@dataclass(frozen=True)
class Identity:
    """Where a file sits in Python's module namespace."""

    root: str  # the directory to put on sys.path
    module: str | None  # dotted name inside a package; None: a file on its own

    @property
    def package(self) -> str | None:
        if self.module is None:
            return None
        head, _, _ = self.module.rpartition(".")
        return head or None


def _site_dirs() -> list[Path]:
    dirs = [*site.getsitepackages(), site.getusersitepackages()]
    return [Path(d).resolve() for d in dirs if Path(d).is_dir()]


def identity(path: str) -> Identity:
    """The package root of a file and its dotted module name."""
    file = Path(path).resolve()
    is_init = file.name == "__init__.py"
    parts = [] if is_init else [file.stem]
    folder = file.parent
    while (folder / "__init__.py").is_file() and folder.parent != folder:
        parts.insert(0, folder.name)
        folder = folder.parent
    for base in _site_dirs():  # installed: namespace packages above the root count too
        if folder != base and folder.is_relative_to(base):
            names = [*folder.relative_to(base).parts, *parts]
            if all(p.isidentifier() for p in names):
                return Identity(str(base), ".".join(names))
    if (folder == file.parent and not is_init) or not all(p.isidentifier() for p in parts):
        return Identity(str(file.parent), None)  # a file on its own
    return Identity(str(folder), ".".join(parts))


def register_copy(copy: str, original: str) -> None:
    """A rewritten copy of `original` imports as if it sat beside it (same package)."""
    _COPIES[str(Path(copy).resolve())] = str(Path(original).resolve())


def _on_path(folder: str) -> None:
    if folder not in sys.path:
        sys.path.insert(0, folder)


def load_module(path: str) -> ModuleType:
    resolved = str(Path(path).resolve())
    if resolved in _MODULES:
        return _MODULES[resolved]
    if resolved in _FAILED:
        raise LoadError(_FAILED[resolved])
    original = _COPIES.get(resolved, resolved)
    ident = identity(original)
    try:
        if ident.module is not None and original == resolved:
            module = _import_package_module(ident, resolved)
        else:
            module = _import_file(resolved, ident)
    except LoadError as exc:
        _FAILED[resolved] = str(exc)
        raise
    _MODULES[resolved] = module
    return module


def _import_package_module(ident: Identity, resolved: str) -> ModuleType:
    assert ident.module is not None
    _on_path(ident.root)
    try:
        module = importlib.import_module(ident.module)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise LoadError(f"importing {ident.module} failed: {one_line(exc, resolved)}") from None
    found = getattr(module, "__file__", None)
    if found is None or str(Path(found).resolve()) != resolved:
        raise LoadError(f"importing {ident.module} found {found or 'a namespace'} instead of "
                        f"{resolved} (another package of that name comes first on sys.path)")
    return module


def _import_file(resolved: str, ident: Identity) -> ModuleType:
    """A file on its own, or a copy imported into the package of the file it copies."""
    digest = hashlib.sha1(resolved.encode()).hexdigest()[:12]
    package = ident.package if ident.module is not None else None
    if package is not None:
        _on_path(ident.root)
        try:
            importlib.import_module(package)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise LoadError(f"importing {package} failed: {one_line(exc)}") from None
        name = f"{package}._gradsafe_{digest}"
    else:
        name = "gradsafe_user_" + digest
        _on_path(ident.root)
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise LoadError(f"cannot import {resolved}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        sys.modules.pop(name, None)
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise LoadError(f"importing the file failed: {one_line(exc, resolved)}") from None
    return module


def namespace_of(path: str) -> dict[str, Any]:
    """Globals for executing an instrumented copy of a file as if it were the module itself
    (relative imports resolve against its package, which is imported first)."""
    ident = identity(path)
    _on_path(ident.root)
    package = ident.package
    if package is not None:
        importlib.import_module(package)
    return {"__package__": package, "__name__": ident.module or "gradsafe_traced"}


def load_target(path: str, name: str) -> Any:
    module = load_module(path)
    obj: Any = module
    for part in name.split("."):
        if not hasattr(obj, part):
            raise LoadError(f"'{name}' is not defined in {path}")
        obj = getattr(obj, part)
    return obj


def one_line(exc: BaseException, user_file: str | None = None) -> str:
    """`Type: message (file.py:12)` pointing at the deepest frame in the user's file."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    if len(first) > 160:  # a tensor's repr in a KeyError says nothing in a report
        first = first[:157] + "..."
    msg = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    where = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if user_file and str(Path(frame.filename).resolve()) == user_file:
            where = f"{Path(frame.filename).name}:{frame.lineno}"
    return f"{msg} ({where})" if where else msg
