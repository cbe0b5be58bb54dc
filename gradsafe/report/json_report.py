"""JSON report, schema "gradsafe-report/1": deterministic bytes for the same input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gradsafe import __version__
from gradsafe.model.types import (
    SEVERITIES,
    Comparison,
    Difference,
    Finding,
    Location,
    Report,
    Suppressed,
    TargetResult,
    Variant,
)
from gradsafe.numerics.floats import json_number

SCHEMA_PATH = Path(__file__).with_name("schema.json")


def _location(loc: Location | None) -> dict[str, Any] | None:
    if loc is None:
        return None
    return {"file": loc.file, "line": loc.line, "col": loc.col, "end_line": loc.end_line,
            "end_col": loc.end_col}


def finding_data(f: Finding) -> dict[str, Any]:
    n = f.dtype
    return {
        "code": f.code,
        "kind": f.kind,
        "severity": f.severity,
        "dtype": f.dtype,
        "framework": f.framework,
        "example_input": json_number(f.example_input, n),
        "forward": json_number(f.forward, n),
        "gradient": json_number(f.gradient, n),
        "range": {"low": json_number(f.range.low, n), "high": json_number(f.range.high, n)},
        "boundary": json_number(f.boundary, n),
        "location": _location(f.location),
        "message": f.message,
        "suggestion": None if f.suggestion is None else {
            "title": f.suggestion.title, "diff": f.suggestion.diff,
            "verified": f.suggestion.verified},
        "path": [{"op": s.op, "location": _location(s.location)} for s in f.path],
        # the derivative order the finding is about; absent means 1 (reports of default
        # runs keep their bytes)
        **({"order": f.order} if f.order != 1 else {}),
    }


def target_data(t: TargetResult) -> dict[str, Any]:
    return {
        "name": t.name,
        "file": t.file,
        "line": t.line,
        "framework": t.framework,
        "status": t.status,
        "error": t.error,
        "notes": list(t.notes),
        "findings": [finding_data(f) for f in t.findings],
        "variant": variant_data(t.variant),
        **({"reason": t.reason} if t.status == "skipped" else {}),
    }


def variant_data(v: Variant | None) -> dict[str, Any] | None:
    """The configuration that reproduces a class's findings; null for plain functions."""
    if v is None:
        return None
    params = {k: x if isinstance(x, int) else json_number(float(x), "float64")
              for k, x in v.params}
    return {"params": params, "mode": v.mode, "seed": v.seed, "layout": v.layout,
            "channels": v.channels, "grid": list(v.grid)}


def report_data(report: Report) -> dict[str, Any]:
    counts = {s: 0 for s in SEVERITIES}
    for t in report.targets:
        for f in t.findings:
            counts[f.severity] += 1
    for c in report.comparisons:
        for f in c.findings:
            counts[f.severity] += 1
    statuses = [t.status for t in report.targets]
    return {
        "schema": report.schema,
        "gradsafe_version": __version__,
        "options": {"dtypes": list(report.dtypes), "range": report.operating_range,
                    "fail_on": report.fail_on,
                    **({"order": report.order} if report.order != 1 else {})},
        "summary": {"targets": len(statuses), "passed": statuses.count("pass"),
                    "failed": statuses.count("fail"), "errors": statuses.count("error"),
                    "skipped": statuses.count("skipped"),
                    "findings": counts, "exit_code": report.exit_code},
        "targets": [target_data(t) for t in report.targets],
        "suppressed": [suppressed_data(s) for s in report.suppressed],
        "unused_suppressions": [{"file": s.file, "line": s.line, "codes": list(s.codes)}
                                for s in report.unused_suppressions],
        "notes": list(report.notes),
        "partial": report.partial,
        "shard": None if report.shard is None else {"index": report.shard[0],
                                                    "count": report.shard[1]},
        **({"comparisons": [comparison_data(c) for c in report.comparisons]}
           if report.comparisons else {}),
    }


def _difference(d: Difference | None, dtype: str) -> dict[str, Any] | None:
    if d is None:
        return None
    n = dtype
    return {"count": d.count, "low": json_number(d.low, n), "high": json_number(d.high, n),
            "at": json_number(d.at, n), "a": json_number(d.a, n), "b": json_number(d.b, n),
            "max_diff": json_number(d.max_diff, "float64")}


def comparison_data(c: Comparison) -> dict[str, Any]:
    """`gradsafe compare`: one row per pair of sides and dtype, the kink table, findings."""
    return {
        "name": c.name,
        "sides": [{"label": s.label, "name": s.name, "file": s.file, "line": s.line,
                   "framework": s.framework, "kind": s.kind} for s in c.sides],
        "rows": [{"dtype": r.dtype, "a": r.a, "b": r.b, "status": r.status,
                  "probes": r.probes, "tolerance": json_number(r.tolerance, "float64"),
                  "forward": _difference(r.forward, r.dtype),
                  "gradient": _difference(r.gradient, r.dtype), "kinks": r.kinks}
                 for r in c.rows],
        "kinks": [{"dtype": k.dtype, "x": json_number(k.x, k.dtype),
                   "left": json_number(k.left, k.dtype), "right": json_number(k.right, k.dtype),
                   "gradients": {label: json_number(v, k.dtype) for label, v in k.gradients}}
                  for k in c.kinks],
        "findings": [finding_data(f) for f in c.findings],
        "errors": [{"side": side, "error": err} for side, err in c.errors],
    }


def suppressed_data(s: Suppressed) -> dict[str, Any]:
    comment = None if s.comment is None else {
        "file": s.comment.file, "line": s.comment.line, "codes": list(s.comment.codes)}
    return {"target": s.target, "file": s.file, "line": s.line, "framework": s.framework,
            "reason": s.reason, "comment": comment, "finding": finding_data(s.finding)}


def render(report: Report, color: bool = False) -> str:
    return json.dumps(report_data(report), indent=2, ensure_ascii=False) + "\n"
