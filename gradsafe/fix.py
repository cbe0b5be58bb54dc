"""`gradsafe fix`: turn a report's verified suggestions into file edits, and write them safely.

Only rewrites verified on every framework and configuration that has one are applied. A
file is written through a temporary file in the same directory and `os.replace` (readers
see the old or the new file, never half of one), keeps its permission bits, and is refused
when its bytes changed after they were analysed. Never prints.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from gradsafe.discover.targets import discover_file, expand_paths, split_spec
from gradsafe.model.types import Report, Suggestion, Target
from gradsafe.suggest import rewrite


class FixError(Exception):
    """A file cannot be rewritten (changed since analysis, unwritable...)."""


@dataclass(frozen=True)
class FileFix:
    path: str
    digest: str  # sha256 of the bytes that were analysed
    old: str
    new: str
    applied: tuple[str, ...]  # targets rewritten
    skipped: tuple[tuple[str, str], ...]  # (target, why not)

    def diff(self, shown: str) -> str:
        """Unified diff, naming the file as the user gave it."""
        return rewrite.unified_diff(shown, self.old, self.new)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def snapshot(paths: Iterable[str]) -> dict[str, bytes]:
    """The bytes of every file about to be analysed, keyed by its resolved path."""
    out: dict[str, bytes] = {}
    for item in expand_paths(paths):
        p = Path(split_spec(item)[0])  # FILE:NAME is FILE
        if p.is_file():
            out[str(p.resolve())] = p.read_bytes()
    return out


def base_name(label: str) -> str:
    """A variant's label `ELU(alpha=0.0)[mode=train]` -> its definition `ELU`."""
    return label.split("(")[0].split("[")[0]


def plan(report: Report, files: dict[str, bytes]) -> list[FileFix]:
    """One FileFix per analysed file that has at least one suggestion with a diff."""
    by_target: dict[tuple[str, str], list[tuple[str, Suggestion | None]]] = {}
    for t in report.targets:
        if t.file is None or not t.findings:
            continue
        key = (str(Path(t.file).resolve()), base_name(t.name))
        for f in t.findings:
            by_target.setdefault(key, []).append((t.framework or "", f.suggestion))
    fixes: dict[str, tuple[list[tuple[str, str, tuple[str, ...]]], list[tuple[str, str]]]] = {}
    found: dict[str, dict[str, Target]] = {}
    for (path, name), rows in sorted(by_target.items()):
        if path not in found:
            found[path] = {t.name: t for t in discover_file(path)}
        target = found[path].get(name)
        if target is not None:  # portable code: one rewrite in keras.ops / xp names for all
            rows = [(target.dialect(fw), s) for fw, s in rows]
        todo, skipped = fixes.setdefault(path, ([], []))
        # a hint that names transforms is a rewrite that was tried and not verified
        rewrites = [(fw, s) for fw, s in rows if s is not None and (s.diff or s.transforms)]
        if not rewrites:
            continue
        unverified = [s for _, s in rewrites if not s.verified]
        kinds = {(fw, s.transforms) for fw, s in rewrites}
        if unverified:
            title = unverified[0].title  # a hint says itself that it is not verified
            skipped.append((name, title if not unverified[0].diff else f"not verified: {title}"))
        elif len({t for _, t in kinds}) > 1 or len({fw for fw, _ in kinds}) > 1:
            skipped.append((name, "different rewrites were verified for different "
                                  "frameworks or configurations; apply one by hand"))
        else:
            fw, transforms = next(iter(kinds))
            todo.append((name, fw, transforms))
    out = []
    for path, (todo, skipped) in sorted(fixes.items()):
        if path not in files:
            continue
        old = files[path].decode("utf-8")
        new = old
        applied = []
        for name, fw, transforms in todo:
            try:
                new, used = rewrite.apply(new, fw, transforms, name)
            except rewrite.RewriteError as exc:
                skipped.append((name, str(exc)))
                continue
            if used:
                applied.append(name)
        if applied or skipped:
            out.append(FileFix(path, digest(files[path]), old, new, tuple(applied),
                               tuple(skipped)))
    return out


def write(fix: FileFix) -> None:
    """Replace the file atomically with the rewritten source, keeping its mode; refuse when
    it changed since it was analysed."""
    target = Path(fix.path)
    try:
        current = target.read_bytes()
        mode = stat.S_IMODE(target.stat().st_mode)
    except OSError as exc:
        raise FixError(f"cannot read {fix.path}: {exc.strerror or exc}") from None
    if digest(current) != fix.digest:
        raise FixError(f"{fix.path} changed after it was analysed; not rewritten "
                       "(run gradsafe fix again)")
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(fix.new)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        if digest(target.read_bytes()) != fix.digest:  # last look before the swap
            raise FixError(f"{fix.path} changed after it was analysed; not rewritten "
                           "(run gradsafe fix again)")
        os.replace(tmp, target)
    except FixError:
        Path(tmp).unlink(missing_ok=True)
        raise
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise FixError(f"cannot write {fix.path}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


__all__ = ["FileFix", "FixError", "base_name", "plan", "snapshot", "write"]
