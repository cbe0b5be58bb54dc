"""Result cache: an unchanged target is not swept again.

One file per (target, framework) result, named by a SHA-256 of everything the result depends
on: the target (name, kind, constants, variant), the source of its file, gradsafe's version,
the Python and framework versions (read from package metadata: the CLI process never imports
a framework) and the options that reach the worker. Results that are errors (a timeout, a
crash, an import failure) are not cached: they may be transient.

Writes go to a temporary file in the cache directory and are renamed into place, so
concurrent runs (a CI matrix on one machine, two terminals) never read half a file; a file
that cannot be read or parsed is a miss. Directory: $GRADSAFE_CACHE_DIR, else
$XDG_CACHE_HOME/gradsafe, else ~/.cache/gradsafe.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

from gradsafe import __version__
from gradsafe.discover.targets import discover, discover_file
from gradsafe.model.types import Options, Target, TargetResult
from gradsafe.run import codec

FORMAT = 1  # bump when the cached data or the key changes meaning
# Options fields that change what a worker computes (the CI-gate ones are applied afterwards)
SWEEP_FIELDS = ("dtypes", "operating_range", "fail_on", "seed", "param_values", "param_sweep",
                "exhaustive", "device", "suggest", "order")


def default_dir() -> Path:
    env = os.environ.get("GRADSAFE_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "gradsafe"


# import names whose installation decides a framework's results (and its discovery: the
# classes of a framework are read from its installed sources)
PACKAGES: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "tensorflow": ("tensorflow", "keras", "tf_keras"),
    "jax": ("jax", "jaxlib", "flax"),
    "numpy": (),
}


@cache
def framework_versions(framework: str) -> str:
    """A fingerprint of the installed packages: where each lives and its __init__'s size and
    modification time. Cheaper than package metadata (which scans every installed
    distribution) and it changes with any reinstall; importing is out of the question."""
    found = []
    for name in ("numpy", *PACKAGES.get(framework, ())):
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.origin:
            continue
        try:
            st = os.stat(spec.origin)
        except OSError:
            continue
        found.append(f"{name}:{spec.origin}:{st.st_size}:{st.st_mtime_ns}")
    return ";".join(found)


@cache
def own_fingerprint() -> str:
    """gradsafe's own code: the size and modification time of every module of the package.
    The version number alone would serve stale results to anyone running gradsafe from a
    changing checkout (an editable install, a contributor, CI of a fork)."""
    package = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        try:
            st = path.stat()
        except OSError:
            continue
        h.update(f"{path.relative_to(package)}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()


@cache
def _source(file: str) -> str:
    try:
        return hashlib.sha256(Path(file).read_bytes()).hexdigest()
    except OSError:
        return "unreadable"


def forget_sources() -> None:
    """Files were rewritten (gradsafe fix --write): hash their contents again."""
    _source.cache_clear()


def key(target: Target, framework: str, options: Options) -> str:
    opts = codec.encode(options)
    data: dict[str, Any] = {
        "format": FORMAT,
        "gradsafe": __version__,
        "code": own_fingerprint(),
        "python": sys.version,
        "framework": framework,
        "versions": framework_versions(framework),
        "target": codec.encode(target),
        "source": _source(target.file) if target.file else None,
        "options": {k: opts.get(k) for k in SWEEP_FIELDS},
    }
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class Cache:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, k: str) -> Path:
        return self.directory / k[:2] / f"{k}.json"

    def _read(self, k: str) -> Any:
        try:
            data = json.loads(self._path(k).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data.get("data") if isinstance(data, dict) and data.get("key") == k else None

    def get(self, k: str) -> TargetResult | None:
        data = self._read(k)
        try:
            return None if data is None else codec.target_result(data)
        except (KeyError, TypeError, ValueError):
            return None

    def put(self, k: str, result: TargetResult) -> None:
        if result.status == "error":
            return
        self._write(k, codec.encode(result))

    def targets(self, path: str) -> list[Target]:
        """discover_file(path), remembered by the file's content: discovery reads the
        framework's sources to find a class's constructor arguments, which takes longer
        than the rest of a cached run."""
        try:
            source = Path(path).read_bytes()
        except OSError:
            return discover_file(path)
        k = hashlib.sha256(json.dumps({
            "format": FORMAT, "gradsafe": __version__, "code": own_fingerprint(), "path": path,
            "source": hashlib.sha256(source).hexdigest(),
            "versions": [framework_versions(fw) for fw in sorted(PACKAGES)],
        }, sort_keys=True).encode()).hexdigest()
        data = self._read(k)
        if isinstance(data, list):
            try:
                return [codec.target(t) for t in data]
            except (KeyError, TypeError, ValueError):
                pass
        found = discover_file(path)
        self._write(k, [codec.encode(t) for t in found])
        return found

    def discover(self, paths: list[str] | tuple[str, ...]) -> list[Target]:
        """discover.discover, with files served by `targets`."""
        return discover(paths, self.targets)

    def _write(self, k: str, data: Any) -> None:
        path = self._path(k)
        text = json.dumps({"key": k, "data": data})
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        except OSError:
            return  # a read-only or full cache directory must not fail the check
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, path)
        except OSError:
            Path(tmp).unlink(missing_ok=True)
