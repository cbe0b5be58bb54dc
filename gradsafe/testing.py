"""`assert_grad_safe` for users' own pytest suites.

    from gradsafe.testing import assert_grad_safe

    def test_my_elu_is_grad_safe():
        assert_grad_safe(my_elu, frameworks="torch", dtypes=("float32", "float16"))

The function (or class) must be defined at module level: gradsafe finds its file with
`inspect`, checks it the same way the CLI does (in worker processes, which import that file),
and raises AssertionError with the text report when anything at or above `fail_on` is found or
the target could not be checked.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gradsafe.model.types import DEFAULT_DTYPES, Options, Report, Severity
from gradsafe.run import engine

__all__ = ["assert_grad_safe", "check_object"]


def _names(value: str | Sequence[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, str) else list(value)
    return tuple(part.strip() for item in items for part in item.split(",") if part.strip())


def _where(fn: Any) -> tuple[list[str], str]:
    """The path to check and the target name for a function, a class or a dotted name."""
    if isinstance(fn, str):
        return [fn], fn
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    if not isinstance(name, str):
        raise TypeError(f"assert_grad_safe needs a function, a class or a dotted name, "
                        f"not {type(fn).__name__}")
    if "<locals>" in name or "." in name:
        raise TypeError(f"assert_grad_safe needs a module-level function or class; '{name}' "
                        "is nested (its file is imported in a worker, which looks it up by "
                        "name)")
    try:
        source = inspect.getsourcefile(fn)
    except TypeError:
        source = None
    if source is None or not Path(source).is_file():
        module = getattr(fn, "__module__", "")
        return [f"{module}.{name}"], f"{module}.{name}"
    return [source], name


def check_object(fn: Any, frameworks: str | Sequence[str] | None = None,
                 dtypes: str | Sequence[str] | None = None, range: float = 1e4,
                 fail_on: Severity = "error", timeout: float = 120.0, seed: int = 0) -> Report:
    """Run the engine on one function, class or dotted built-in and return its Report."""
    paths, name = _where(fn)
    options = Options(frameworks=_names(frameworks), dtypes=_names(dtypes) or DEFAULT_DTYPES,
                      targets=(name,), operating_range=range, fail_on=fail_on,
                      timeout=timeout, seed=seed)
    report = engine.check(paths, options)
    if not any(t.name == name for t in report.targets):
        raise ValueError(f"gradsafe found no target '{name}' in {paths[0]}: a target is a "
                         "module-level function of one required argument (not named test* or "
                         "_*) or an nn.Module / Keras layer class")
    return report


def assert_grad_safe(fn: Any, frameworks: str | Sequence[str] | None = None,
                     dtypes: str | Sequence[str] | None = None, range: float = 1e4,
                     fail_on: Severity = "error", timeout: float = 120.0,
                     seed: int = 0) -> None:
    """Fail (AssertionError with the text report) if fn has findings at or above fail_on or
    could not be checked; return None when it is safe."""
    __tracebackhide__ = True  # pytest shows the caller's line, not this function's body
    report = check_object(fn, frameworks, dtypes, range, fail_on, timeout, seed)
    if engine.exit_code(report) != 0:
        from gradsafe.report.text import render  # rich, only when there is a failure

        raise AssertionError("\n" + render(report, False, verbose=True))
