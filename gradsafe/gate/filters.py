"""The filter stage, run by the engine after the sweep: which findings count.

In order: `exclude` drops files before anything runs; `select`/`ignore`/`per-file-ignores`
drop findings as if they were never looked for; `# gradsafe: ignore[...]` comments and the
baseline file move findings to Report.suppressed (kept, shown under --show-suppressed and in
machine formats, but out of the exit code). Comments that suppressed nothing are returned so
the CLI can warn about them.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from gradsafe.gate import baseline, suppressions
from gradsafe.model.types import (
    Finding,
    Options,
    Status,
    Suppressed,
    Suppression,
    Target,
    TargetResult,
)

BARE = "*"  # stands for "every code" in the set of used (file, line, code) triples


@dataclass(frozen=True)
class Outcome:
    results: tuple[TargetResult, ...]
    suppressed: tuple[Suppressed, ...]
    unused: tuple[Suppression, ...]


def path_matches(rel: str, pattern: str) -> bool:
    """Glob match on a root-relative path: the file or any parent directory; a pattern
    without '/' also matches any single path component (`build`, `*_test.py`)."""
    pat = pattern.strip().rstrip("/")
    if pat.startswith("./"):
        pat = pat[2:]
    if not pat:
        return False
    parts = rel.split("/")
    if any(fnmatchcase("/".join(parts[:i]), pat) for i in range(1, len(parts) + 1)):
        return True
    return "/" not in pat and any(fnmatchcase(part, pat) for part in parts)


def excluded(target: Target, options: Options) -> bool:
    if target.file is None or not options.exclude:
        return False
    rel = baseline.relative_path(target.file, options.root)
    return any(path_matches(rel, p) for p in options.exclude)


def _code_in(code: str, prefixes: Sequence[str]) -> bool:
    return any(p == "ALL" or code.startswith(p) for p in prefixes)


def selected(code: str, file: str | None, options: Options) -> bool:
    if options.select and not _code_in(code, options.select):
        return False
    if _code_in(code, options.ignore):
        return False
    if file is not None and options.per_file_ignores:
        rel = baseline.relative_path(file, options.root)
        for pattern, codes in options.per_file_ignores:
            if path_matches(rel, pattern) and _code_in(code, codes):
                return False
    return True


def _comment_for(t: TargetResult, f: Finding, used: set[tuple[str, int, str]]
                 ) -> Suppression | None:
    """The comment that suppresses f: on the culprit line first, then on the def line."""
    places: list[tuple[str, int]] = []
    if f.location is not None:
        places.append((f.location.file, f.location.line))
    if t.file is not None and t.line is not None and (t.file, t.line) not in places:
        places.append((t.file, t.line))
    for file, line in places:
        s = suppressions.by_line(file).get(line)
        if s is None:
            continue
        if not s.codes:
            used.add((file, line, BARE))
            return s
        if f.code in s.codes:
            used.add((file, line, f.code))
            return s
    return None


def _status(t: TargetResult, findings: tuple[Finding, ...], options: Options) -> Status:
    if t.status in ("error", "skipped"):
        return t.status
    return "fail" if any(f.fails(options.fail_on) for f in findings) else "pass"


def apply(results: Sequence[TargetResult], options: Options) -> Outcome:
    """Filter findings; raises baseline.BaselineError when the baseline cannot be read."""
    available: Counter[str] = baseline.load(options.baseline) if options.baseline else Counter()
    used: set[tuple[str, int, str]] = set()
    out: list[TargetResult] = []
    hidden: list[Suppressed] = []
    for t in results:
        kept: list[Finding] = []
        for f in t.findings:
            if not selected(f.code, t.file, options):
                continue
            comment = _comment_for(t, f, used)
            if comment is not None:
                hidden.append(Suppressed(t.name, t.file, t.line, t.framework, f, "comment",
                                         comment))
                continue
            if options.baseline and baseline.take(
                    available, [baseline.fingerprint(t.name, t.file, f, options.root)])[0]:
                hidden.append(Suppressed(t.name, t.file, t.line, t.framework, f, "baseline"))
                continue
            kept.append(f)
        findings = tuple(kept)
        status = _status(t, findings, options)
        out.append(dataclasses.replace(t, findings=findings, status=status))
    return Outcome(tuple(out), tuple(hidden), _unused(out, used, options))


def _unused(results: Sequence[TargetResult], used: set[tuple[str, int, str]],
            options: Options) -> tuple[Suppression, ...]:
    """Comments in fully checked files that suppressed nothing, one entry per stale code.

    A file is fully checked when every target in it ran (no errors) and --target did not pick
    a subset; otherwise a comment may belong to a target this run did not look at.
    """
    if options.targets:
        return ()
    files: dict[str, bool] = {}
    for t in results:
        if t.file is not None:
            files[t.file] = files.get(t.file, True) and t.status != "error"
    stale: list[Suppression] = []
    for file, complete in files.items():
        if not complete:
            continue
        for s in suppressions.read(file):
            for code in s.codes or (BARE,):
                if (file, s.line, code) not in used:
                    stale.append(Suppression(file, s.line, () if code == BARE else (code,)))
    return tuple(stale)
