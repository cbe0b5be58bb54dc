"""`[tool.gradsafe]` in pyproject.toml + command-line options -> one frozen Options.

The configuration file is the nearest pyproject.toml with a `[tool.gradsafe]` table, found by
walking up from the current directory (as ruff does), or the file given with `--config`.
Command-line values override file values, which override defaults; every value remembers where
it came from so `gradsafe config` can say so. Paths in the file are relative to the file's
directory, which is also the project root for `exclude`, `per-file-ignores` and fingerprints.
"""

from __future__ import annotations

import difflib
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gradsafe.discover.variants import is_number, literal
from gradsafe.model.codes import CODES
from gradsafe.model.types import (
    DEFAULT_DTYPES,
    DTYPES,
    FRAMEWORKS,
    SEVERITIES,
    Options,
    ParamValue,
    TargetSettings,
    column_sweep,
    column_text,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

DEFAULT_SOURCE = "default"
CLI_SOURCE = "command line"


class ConfigError(Exception):
    """Bad configuration; the message is one line and names the file and key."""


@dataclass(frozen=True)
class Setting:
    key: str
    value: Any
    source: str


@dataclass(frozen=True)
class Resolved:
    options: Options
    settings: tuple[Setting, ...]
    config_file: str | None


def _strings(value: Any, key: str) -> list[str]:
    """A list of strings; a single string may hold several items separated by commas."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) for v in items):
        raise ConfigError(f"{key}: expected a list of strings, got {json.dumps(value)}")
    out: list[str] = []
    for item in items:
        for part in item.split(","):
            part = part.strip()
            if part and part not in out:
                out.append(part)
    return out


def _choices(allowed: tuple[str, ...], what: str, aliases: Mapping[str, str] | None = None
             ) -> Callable[[Any, str], tuple[str, ...]]:
    def parse(value: Any, key: str) -> tuple[str, ...]:
        out: list[str] = []
        for item in _strings(value, key):
            item = item.lower()
            item = (aliases or {}).get(item, item)
            if item not in allowed:
                raise ConfigError(f"{key}: unknown {what} '{item}' (choose from "
                                  f"{', '.join(allowed)})")
            if item not in out:
                out.append(item)
        return tuple(out)
    return parse


# "numpy" selects NumPy forward/backward layers (their lane imports no ML framework)
_frameworks = _choices((*FRAMEWORKS, "numpy"), "framework",
                       {"tf": "tensorflow", "pytorch": "torch"})
_dtypes_list = _choices(DTYPES, "dtype")


def _dtypes(value: Any, key: str) -> tuple[str, ...]:
    out = _dtypes_list(value, key)
    if not out:
        raise ConfigError(f"{key}: give at least one dtype (choose from {', '.join(DTYPES)})")
    return out


def _codes(value: Any, key: str) -> tuple[str, ...]:
    out: list[str] = []
    for item in _strings(value, key):
        item = item.upper()
        if item != "ALL" and not any(c.code.startswith(item) for c in CODES):
            raise ConfigError(f"{key}: unknown code '{item}' (codes: "
                              f"{', '.join(c.code for c in CODES)}, or a prefix like GS1)")
        out.append(item)
    return tuple(out)


def _positive(kind: type) -> Callable[[Any, str], float]:
    def parse(value: Any, key: str) -> float:
        ok = is_number(value)
        if kind is int:
            ok = ok and isinstance(value, int)
        if not ok or not value > 0 or value != value or value == float("inf"):
            what = "a positive integer" if kind is int else "a positive number"
            raise ConfigError(f"{key}: expected {what}, got {json.dumps(value)}")
        return kind(value)  # type: ignore[no-any-return]
    return parse


def _integer(value: Any, key: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{key}: expected an integer, got {json.dumps(value)}")
    return value


def _order(value: Any, key: str) -> int:
    """The highest derivative to check: 1 (gradients) or 2 (also second derivatives)."""
    if isinstance(value, bool) or value not in (1, 2, "1", "2"):
        raise ConfigError(f"{key}: expected 1 or 2, got {json.dumps(value)}")
    return int(value)


def _severity(value: Any, key: str) -> str:
    if value not in SEVERITIES:
        raise ConfigError(f"{key}: expected one of {', '.join(SEVERITIES)}, got "
                          f"{json.dumps(value)}")
    return str(value)


def _string(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key}: expected a file name, got {json.dumps(value)}")
    return value


def _sweep(value: Any, key: str) -> str:
    """A parameter name, `all`, or a column of one, `NAME[C]` / `NAME[..., C]` (kept in the
    canonical spelling `NAME[..., C]`)."""
    column = column_sweep(value) if isinstance(value, str) else None
    if column is not None:
        return column_text(*column)
    if not isinstance(value, str) or not value.isidentifier():
        raise ConfigError(f"{key}: expected a parameter name, NAME[INDEX] or 'all', got "
                          f"{json.dumps(value)}")
    return value


def _patterns(value: Any, key: str) -> tuple[str, ...]:
    return tuple(_strings(value, key))


def _per_file(value: Any, key: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key}: expected a table of glob = [codes], got {json.dumps(value)}")
    return tuple((str(pattern), _codes(codes, f"{key}.{pattern}"))
                 for pattern, codes in sorted(value.items()))


def arg_source(value: Any, key: str) -> str:
    """A call argument as Python literal source: TOML numbers, strings, booleans and arrays
    (tuples), or command-line text parsed as a literal (a bare word is a string)."""
    if isinstance(value, str) and key.startswith("--"):
        text = value.strip()
        try:
            parsed = literal(text)
        except ValueError:
            if not text.isidentifier():
                raise ConfigError(f"{key}: '{value}' is not a Python literal") from None
            parsed = text
        value = parsed
    if isinstance(value, list):
        value = tuple(value)
    if not _is_literal(value):
        raise ConfigError(f"{key}: expected a number, string, boolean or list, "
                          f"got {value!r}")
    return repr(value)


def _is_literal(value: Any) -> bool:
    if isinstance(value, tuple):
        return all(_is_literal(v) for v in value)
    return value is None or isinstance(value, (int, float, str, bool))


def _args(value: Any, key: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key}: expected a table of name = value, got {json.dumps(value)}")
    return tuple((str(k), arg_source(v, f"{key}.{k}")) for k, v in sorted(value.items()))


def domain(value: Any, key: str) -> tuple[float, float]:
    """[low, high] (the file) or "LOW,HIGH" (the command line); inf allowed."""
    items = value.split(",") if isinstance(value, str) else value
    try:
        low, high = (float(v) for v in items)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: expected LOW,HIGH (two numbers), got {value!r}") from None
    if not low <= high:
        raise ConfigError(f"{key}: LOW must not exceed HIGH, got {low!r}, {high!r}")
    return low, high


def _param_values(value: Any, key: str) -> tuple[tuple[str, tuple[ParamValue, ...]], ...]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key}: expected a table of name = value(s)")
    out = []
    for name, raw in sorted(value.items()):
        items = raw if isinstance(raw, list) else [raw]
        if not all(is_number(v) for v in items):
            raise ConfigError(f"{key}.{name}: expected a number or a list of numbers")
        out.append((str(name), tuple(items)))
    return tuple(out)


def _targets(value: Any, key: str) -> tuple[tuple[str, TargetSettings], ...]:
    """[tool.gradsafe.targets."Name"]: args, params, domain and sweep of one target."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key}: expected a table of target names")
    out = []
    for name, table in sorted(value.items()):
        where = f"{key}.{name}"
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where}: expected a table with args, params, domain or sweep")
        unknown = set(table) - {"args", "params", "domain", "sweep"}
        if unknown:
            raise ConfigError(f"{where}: unknown key '{sorted(unknown)[0]}' "
                              "(use args, params, domain or sweep)")
        out.append((str(name), TargetSettings(
            _args(table.get("args", {}), f"{where}.args"),
            _param_values(table.get("params", {}), f"{where}.params"),
            domain(table["domain"], f"{where}.domain") if "domain" in table else None,
            _sweep(table["sweep"], f"{where}.sweep") if "sweep" in table else None)))
    return tuple(out)


# key in [tool.gradsafe] -> (Options field, parser, default); the order is the display order
KEYS: dict[str, tuple[str, Callable[[Any, str], Any], Any]] = {
    "paths": ("paths", _patterns, ()),
    "exclude": ("exclude", _patterns, ()),
    "frameworks": ("frameworks", _frameworks, None),
    "dtypes": ("dtypes", _dtypes, DEFAULT_DTYPES),
    "range": ("operating_range", _positive(float), 1e4),
    "fail-on": ("fail_on", _severity, "error"),
    "select": ("select", _codes, ()),
    "ignore": ("ignore", _codes, ()),
    "per-file-ignores": ("per_file_ignores", _per_file, ()),
    "timeout": ("timeout", _positive(float), 60.0),
    "jobs": ("jobs", _positive(int), None),
    "baseline": ("baseline", _string, None),
    "seed": ("seed", _integer, 0),
    "order": ("order", _order, 1),
    "args": ("args", _args, ()),
    "domain": ("domain", domain, None),
    "sweep": ("sweep", _sweep, None),
    "targets": ("per_target", _targets, ()),
}
CLI_FLAGS = {"frameworks": "--framework", "dtypes": "--dtype", "paths": "PATHS", "args": "--arg"}


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None


def _table(path: Path, data: dict[str, Any]) -> dict[str, Any] | None:
    """The gradsafe table: [tool.gradsafe] in a pyproject.toml, the whole file otherwise."""
    if path.name != "pyproject.toml":
        return data
    tool = data.get("tool")
    table = tool.get("gradsafe") if isinstance(tool, dict) else None
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.gradsafe] must be a table")
    return table


def find(start: Path) -> Path | None:
    """The nearest pyproject.toml with a [tool.gradsafe] table, from start upwards."""
    for directory in (start, *start.parents):
        candidate = directory / "pyproject.toml"
        if candidate.is_file() and _table(candidate, _read_toml(candidate)) is not None:
            return candidate
    return None


def _display_path(path: Path, cwd: Path) -> str:
    try:
        return path.relative_to(cwd).as_posix() or "."
    except ValueError:
        return str(path)


def _from_file(key: str, value: Any, base: Path, cwd: Path) -> Any:
    if key == "paths":
        return tuple(_display_path((base / p).resolve(), cwd) for p in value)
    if key == "baseline":
        return _display_path((base / value).resolve(), cwd)
    return value


def load(config: str | None, cwd: Path) -> tuple[Path | None, dict[str, Any]]:
    """The config file in use and its validated values (by key, paths made cwd-relative)."""
    if config is not None:
        path: Path | None = (cwd / config).resolve()
        assert path is not None
        if not path.is_file():
            raise ConfigError(f"config file not found: {config}")
        table = _table(path, _read_toml(path)) or {}
    else:
        path = find(cwd)
        table = (_table(path, _read_toml(path)) or {}) if path else {}
    values: dict[str, Any] = {}
    for key, raw in table.items():
        if key not in KEYS:
            close = difflib.get_close_matches(key.replace("_", "-"), list(KEYS), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"{path}: unknown key '{key}' in [tool.gradsafe]{hint}")
        _, parse, _ = KEYS[key]
        try:
            value = parse(raw, key)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        assert path is not None
        values[key] = _from_file(key, value, path.parent, cwd)
    return path, values


def resolve(cli: Mapping[str, Any], config: str | None = None, cwd: Path | None = None,
            targets: tuple[str, ...] = ()) -> Resolved:
    """Merge defaults < config file < command line. `cli` holds only the options given
    (raw values, keyed like the file); raises ConfigError with a one-line message."""
    here = (cwd or Path.cwd()).resolve()
    path, file_values = load(config, here)
    settings: list[Setting] = []
    fields: dict[str, Any] = {}
    for key, (field_name, parse, default) in KEYS.items():
        if key in cli:
            flag = CLI_FLAGS.get(key, f"--{key}")
            value, source = parse(cli[key], flag), CLI_SOURCE
        elif key in file_values:
            value, source = file_values[key], str(path)
        else:
            value, source = default, DEFAULT_SOURCE
        if key == "frameworks" and value == ():
            value = None  # an empty list means "infer from each target", like the default
        settings.append(Setting(key, value, source))
        fields[field_name] = value
    root = _display_path(path.parent, here) if path else ""
    options = Options(targets=targets, root="" if root == "." else root, **fields)
    return Resolved(options, tuple(settings), str(path) if path else None)


def _toml_value(key: str, value: Any) -> str:
    if key == "args":
        return "{ " + ", ".join(f"{k} = {v}" for k, v in value) + " }" if value else "{}"
    if key == "targets":
        return json.dumps([name for name, _ in value])
    if key == "domain":  # TOML spells infinity inf, not JSON's Infinity
        return "[" + ", ".join(repr(float(v)) for v in value) + "]"
    if key == "per-file-ignores":
        inner = ", ".join(f"{json.dumps(k)} = {json.dumps(list(v))}" for k, v in value)
        return "{ " + inner + " }" if inner else "{}"
    if isinstance(value, tuple):
        return json.dumps(list(value))
    if isinstance(value, float):
        return repr(value)
    return json.dumps(value)


def render(resolved: Resolved) -> str:
    """The effective configuration as TOML, each line commented with where it came from."""
    lines = [f"# config file: {resolved.config_file or 'none found (defaults)'}",
             "[tool.gradsafe]"]
    rows = []
    for s in resolved.settings:
        if s.value is None:
            text = f"# {s.key} = (not set: {_UNSET[s.key]})"
        else:
            text = f"{s.key} = {_toml_value(s.key, s.value)}"
        rows.append((text, s.source))
    width = max(len(t) for t, _ in rows)
    lines.extend(f"{t:<{width}}  # {src}" for t, src in rows)
    return "\n".join(lines) + "\n"


_UNSET = {
    "frameworks": "inferred from each target's imports",
    "jobs": "one per core",
    "baseline": "no baseline",
    "domain": "every input",
    "sweep": "each target's first argument",
}

