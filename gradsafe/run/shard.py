"""`--shard i/n` and `gradsafe merge`: spread a large code base over CI machines.

Targets are split by file (a dotted built-in counts as its own file), round-robin over the
files in discovery order, so every shard sees the same split for the same PATHS and a file's
targets, suppression comments and notes all land in one shard. `merge` joins the per-shard
JSON reports into the report an unsharded run writes, byte for byte: targets, suppressed
findings and unused suppressions are stably re-sorted the way the engine sorts them, notes
are a sorted set, and the summary and exit code are recomputed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from gradsafe.model.types import FRAMEWORKS, SEVERITIES, Target, fails

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
FRAMEWORK_ORDER: dict[str, int] = {fw: i for i, fw in enumerate((*FRAMEWORKS, "numpy"))}


class ShardError(Exception):
    """Bad --shard value or reports that cannot be merged; the message is one line."""


def parse(text: str) -> tuple[int, int]:
    m = _SHARD.match(text)
    if not m:
        raise ShardError(f"--shard: expected I/N such as 1/4, got '{text}'")
    i, n = int(m.group(1)), int(m.group(2))
    if n < 1 or not 1 <= i <= n:
        raise ShardError(f"--shard: I must be between 1 and N, got '{text}'")
    return i, n


def select(targets: Sequence[Target], shard: tuple[int, int]) -> list[Target]:
    """The targets of shard i of n (1-based)."""
    i, n = shard
    files: dict[str, int] = {}
    for t in targets:
        files.setdefault(t.file or t.name, len(files))
    return [t for t in targets if files[t.file or t.name] % n == i - 1]


def _target_key(t: dict[str, Any]) -> tuple[str, int, str, int]:
    return (t.get("file") or "", t.get("line") or 0, t["name"],
            FRAMEWORK_ORDER.get(t.get("framework") or "", 99))


def _suppressed_key(s: dict[str, Any]) -> tuple[str, int, str, int]:
    return (s.get("file") or "", s.get("line") or 0, s["target"],
            FRAMEWORK_ORDER.get(s.get("framework") or "", 99))


def merge(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One report from the JSON reports of all shards of one run."""
    if not reports:
        raise ShardError("merge: give the JSON reports of every shard")
    first = reports[0]
    for r in reports:
        if r.get("schema") != first.get("schema") or "targets" not in r:
            raise ShardError("merge: not all inputs are gradsafe JSON reports of one schema")
        for field in ("gradsafe_version", "options"):
            if r.get(field) != first.get(field):
                raise ShardError(f"merge: the reports differ in {field} (they are not shards "
                                 "of one run)")
    shards = [r.get("shard") for r in reports]
    if any(s is None for s in shards):
        if len(reports) > 1:
            raise ShardError("merge: an input is not a shard (it was run without --shard)")
    else:
        counts = {s["count"] for s in shards if s}
        seen = sorted(s["index"] for s in shards if s)
        if len(counts) != 1:
            raise ShardError("merge: the reports come from different --shard N")
        n = counts.pop()
        if seen != list(range(1, n + 1)):
            missing = sorted(set(range(1, n + 1)) - set(seen))
            dup = sorted({i for i in seen if seen.count(i) > 1})
            what = (f"missing {', '.join(f'{i}/{n}' for i in missing)}" if missing
                    else f"duplicate {', '.join(f'{i}/{n}' for i in dup)}")
            raise ShardError(f"merge: shards {what}")
    targets = sorted((t for r in reports for t in r["targets"]), key=_target_key)
    suppressed = sorted((s for r in reports for s in r.get("suppressed", [])),
                        key=_suppressed_key)
    unused = sorted((u for r in reports for u in r.get("unused_suppressions", [])),
                    key=lambda u: u["file"])
    notes = sorted({n for r in reports for n in r.get("notes", [])})
    partial = any(r.get("partial") for r in reports)
    out = dict(first)
    out["summary"] = _summary(targets, first["options"]["fail_on"], partial)
    out["targets"] = targets
    out["suppressed"] = suppressed
    out["unused_suppressions"] = unused
    out["notes"] = notes
    out["partial"] = partial
    out["shard"] = None
    return out


def _summary(targets: list[dict[str, Any]], fail_on: str, partial: bool) -> dict[str, Any]:
    counts = {s: 0 for s in SEVERITIES}
    code = 2 if partial else 0
    for t in targets:
        if t["status"] == "error":
            code |= 2
        for f in t["findings"]:
            counts[f["severity"]] += 1
            if fails(f["severity"], fail_on):
                code |= 1
    statuses = [t["status"] for t in targets]
    return {"targets": len(statuses), "passed": statuses.count("pass"),
            "failed": statuses.count("fail"), "errors": statuses.count("error"),
            "skipped": statuses.count("skipped"),
            "findings": counts, "exit_code": code}


def load(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise ShardError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError:
        raise ShardError(f"{path}: not a JSON report") from None
    if not isinstance(data, dict):
        raise ShardError(f"{path}: not a gradsafe JSON report")
    return data


def render(data: dict[str, Any]) -> str:
    """The same serialisation as report/json_report.render."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
