"""Stable finding fingerprints and the baseline file built from them.

A fingerprint hashes what identifies a finding to a reader (code, file relative to the project
root, target name, framework, dtype, kind, boundary) and no line numbers, so editing code above a
target keeps its findings in the baseline. SARIF's partialFingerprints use the same value.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gradsafe.model.types import Finding, Report
from gradsafe.numerics.floats import short_number

SCHEMA = "gradsafe-baseline/1"


class BaselineError(Exception):
    """The baseline file cannot be read or is not a gradsafe baseline."""


def relative_path(file: str | None, root: str) -> str:
    """The file as a forward-slash path relative to the project root ('' for built-ins)."""
    if file is None:
        return ""
    base = Path(root or ".").resolve()
    path = Path(file).resolve()
    try:
        rel = path.relative_to(base)
    except ValueError:
        rel = Path(os.path.relpath(path, base))
    return rel.as_posix()


def identity(target: str, file: str | None, finding: Finding, root: str) -> dict[str, Any]:
    return {
        "code": finding.code,
        "file": relative_path(file, root),
        "target": target,
        "framework": finding.framework,
        "dtype": finding.dtype,
        "kind": finding.kind,
        # the shortest decimal, as since the first release: existing baselines keep matching
        "boundary": short_number(finding.boundary, finding.dtype),
        # order-1 identities (and so every existing baseline) stay as they were
        **({"order": finding.order} if finding.order != 1 else {}),
    }


def fingerprint(target: str, file: str | None, finding: Finding, root: str) -> str:
    ident = identity(target, file, finding, root)
    blob = json.dumps(list(ident.values()), separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def entries(report: Report) -> list[dict[str, Any]]:
    """One entry per unsuppressed finding, sorted, fingerprint first."""
    out = []
    for t in report.targets:
        for f in t.findings:
            ident = identity(t.name, t.file, f, report.root)
            out.append({"fingerprint": fingerprint(t.name, t.file, f, report.root), **ident})
    out.sort(key=lambda e: (e["file"], e["target"], e["code"], e["framework"], e["dtype"],
                            e["kind"], e["fingerprint"]))
    return out


def dumps(report: Report) -> str:
    data = {"schema": SCHEMA, "findings": entries(report)}
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def load(path: str) -> Counter[str]:
    """Fingerprints in a baseline file, as a multiset (the same finding may occur twice)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BaselineError(f"baseline file not found: {path} (create it with "
                            "--update-baseline)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(f"cannot read baseline {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise BaselineError(f"baseline {path} is not JSON: {exc.msg} (line {exc.lineno})") \
            from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise BaselineError(f"{path} is not a gradsafe baseline (expected \"schema\": "
                            f"\"{SCHEMA}\")")
    items = data.get("findings")
    if not isinstance(items, list) or not all(
            isinstance(e, dict) and isinstance(e.get("fingerprint"), str) for e in items):
        raise BaselineError(f"baseline {path}: 'findings' must be a list of objects with a "
                            "'fingerprint'")
    return Counter(str(e["fingerprint"]) for e in items)


def take(available: Counter[str], prints: Iterable[str]) -> list[bool]:
    """For each fingerprint in order, whether the baseline still had one left to cover it."""
    out = []
    for fp in prints:
        if available[fp] > 0:
            available[fp] -= 1
            out.append(True)
        else:
            out.append(False)
    return out
