"""SARIF 2.1.0 for code-scanning tools (GitHub's upload-sarif among them).

Rules come from codes.CODES; each finding is a result with a physical location (the culprit
expression when the finding has one, else the target's def line), a level from its severity and
a partial fingerprint that survives edits elsewhere in the file (baseline.fingerprint). Findings
hidden by a comment or the baseline are kept with a `suppressions` entry, as SARIF intends.
Paths are relative to the project root and anchored at %SRCROOT%, so the bytes do not depend
on where the checkout lives.
"""

from __future__ import annotations

import json
from typing import Any

from gradsafe import __version__
from gradsafe.gate.baseline import fingerprint, relative_path
from gradsafe.model.codes import BY_CODE, CODES
from gradsafe.model.types import Finding, Report, Suppressed, TargetResult
from gradsafe.numerics.floats import json_number

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/gradsafe/gradsafe"
# the documentation site (mkdocs.yml's site_url): each code has its page at codes/<code>/
DOCS_URL = "https://gradsafe.github.io/gradsafe/"
FINGERPRINT_KEY = "gradsafe/v1"
_LEVEL = {"error": "error", "warning": "warning", "info": "note"}
_RULE_INDEX = {c.code: i for i, c in enumerate(CODES)}


def help_uri(code: str) -> str:
    """The code's page on the documentation site (docs/codes/<code>.md)."""
    return f"{DOCS_URL}codes/{code.lower()}/"


def _rules() -> list[dict[str, Any]]:
    rules = []
    for c in CODES:
        text = (f"{c.summary}\n\n{c.explanation}\n\nBefore:\n    {c.before}\n\n"
                f"After:\n    {c.after}")
        markdown = (f"**{c.code} {c.name}**: {c.summary}\n\n{c.explanation}\n\n"
                    f"Before:\n```python\n{c.before}\n```\n\nAfter:\n```python\n{c.after}\n```")
        if c.links:
            markdown += "\n\nSee also: " + ", ".join(f"<{link}>" for link in c.links)
        rules.append({
            "id": c.code,
            "name": "".join(part.capitalize() for part in c.name.split("-")),
            "shortDescription": {"text": c.summary},
            "fullDescription": {"text": c.explanation},
            "help": {"text": text, "markdown": markdown},
            "helpUri": help_uri(c.code),
            # codes that are not bugs by themselves are lower; each result follows its severity
            "defaultConfiguration": {"level": c.sarif_level},
            "properties": {"tags": ["numerics", "gradients", c.name]},
        })
    return rules


def _region(f: Finding, t_line: int | None) -> dict[str, int] | None:
    if f.location is not None:
        return {"startLine": f.location.line, "startColumn": max(f.location.col, 1),
                "endLine": max(f.location.end_line, f.location.line),
                "endColumn": max(f.location.end_col, 1)}
    if t_line is not None:
        return {"startLine": t_line}
    return None


def _result(name: str, file: str | None, line: int | None, f: Finding, root: str,
            suppressed: Suppressed | None = None) -> dict[str, Any]:
    c = BY_CODE[f.code]
    n = f.dtype
    loc_file = f.location.file if f.location is not None else file
    locations: dict[str, Any] = {}
    if loc_file is not None:
        physical: dict[str, Any] = {"artifactLocation": {
            "uri": relative_path(loc_file, root), "uriBaseId": "%SRCROOT%"}}
        region = _region(f, line)
        if region is not None:
            physical["region"] = region
        locations["physicalLocation"] = physical
    locations["logicalLocations"] = [{"name": name, "kind": "function"}]
    result: dict[str, Any] = {
        "ruleId": f.code,
        "ruleIndex": _RULE_INDEX[f.code],
        "level": _LEVEL[f.severity],
        "message": {"text": f"{c.name}: {f.message} [{f.framework}, {f.dtype}; "
                            f"target {name}]"},
        "locations": [locations],
        "partialFingerprints": {FINGERPRINT_KEY: fingerprint(name, file, f, root)},
        "properties": {
            "target": name, "framework": f.framework, "dtype": f.dtype, "kind": f.kind,
            "severity": f.severity,
            "range": {"low": json_number(f.range.low, n), "high": json_number(f.range.high, n)},
            "boundary": json_number(f.boundary, n),
            "exampleInput": json_number(f.example_input, n),
            **({"order": f.order} if f.order != 1 else {}),
        },
    }
    if f.path:  # culprit -> ... -> the where that discards it: a code flow viewers can step
        result["codeFlows"] = [{"threadFlows": [{"locations": [
            {"location": {
                "physicalLocation": {
                    "artifactLocation": {"uri": relative_path(s.location.file, root),
                                         "uriBaseId": "%SRCROOT%"},
                    "region": {"startLine": s.location.line,
                               "startColumn": max(s.location.col, 1),
                               "endLine": max(s.location.end_line, s.location.line),
                               "endColumn": max(s.location.end_col, 1)}},
                "message": {"text": s.op}}}
            for s in f.path]}]}]
    if f.suggestion is not None:
        result["properties"]["suggestion"] = {"title": f.suggestion.title,
                                              "diff": f.suggestion.diff,
                                              "verified": f.suggestion.verified}
    if suppressed is not None:
        if suppressed.comment is not None:
            codes = suppressed.comment.codes
            text = f"# gradsafe: ignore[{', '.join(codes)}]" if codes else "# gradsafe: ignore"
            result["suppressions"] = [{"kind": "inSource", "justification": text}]
        else:
            result["suppressions"] = [{"kind": "external", "justification": "baseline"}]
    return result


def _notification(t: TargetResult, root: str) -> dict[str, Any]:
    note: dict[str, Any] = {
        "level": "error",
        "message": {"text": f"could not check {t.name} ({t.framework or 'no framework'}): "
                            f"{t.error}"},
        "descriptor": {"id": "gradsafe-error"},
    }
    if t.file is not None:
        physical: dict[str, Any] = {"artifactLocation": {
            "uri": relative_path(t.file, root), "uriBaseId": "%SRCROOT%"}}
        if t.line is not None:
            physical["region"] = {"startLine": t.line}
        note["locations"] = [{"physicalLocation": physical}]
    return note


def sarif_data(report: Report) -> dict[str, Any]:
    results = [_result(t.name, t.file, t.line, f, report.root)
               for t in report.targets for f in t.findings]
    results += [_result(s.target, s.file, s.line, s.finding, report.root, s)
                for s in report.suppressed]
    errors = [_notification(t, report.root) for t in report.targets if t.status == "error"]
    code = report.exit_code
    invocation: dict[str, Any] = {"executionSuccessful": not code & 2, "exitCode": code}
    if errors:
        invocation["toolExecutionNotifications"] = errors
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "gradsafe",
                "version": __version__,
                "informationUri": INFORMATION_URI,
                "rules": _rules(),
            }},
            "invocations": [invocation],
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    }


def render(report: Report, color: bool = False) -> str:
    return json.dumps(sarif_data(report), indent=2, ensure_ascii=False) + "\n"
