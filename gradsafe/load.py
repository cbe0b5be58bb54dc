"""Import a user's file inside a worker and look up targets by name."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

_MODULES: dict[str, ModuleType] = {}


class LoadError(Exception):
    """The file could not be imported or the target is missing."""


def load_module(path: str) -> ModuleType:
    resolved = str(Path(path).resolve())
    if resolved in _MODULES:
        return _MODULES[resolved]
    name = "gradsafe_user_" + hashlib.sha1(resolved.encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise LoadError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    parent = str(Path(resolved).parent)
    if parent not in sys.path:
        sys.path.insert(0, parent)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        sys.modules.pop(name, None)
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise LoadError(f"importing the file failed: {one_line(exc, resolved)}") from None
    _MODULES[resolved] = module
    return module


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
    msg = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    where = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if user_file and str(Path(frame.filename).resolve()) == user_file:
            where = f"{Path(frame.filename).name}:{frame.lineno}"
    return f"{msg} ({where})" if where else msg
