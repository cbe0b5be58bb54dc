"""JUnit XML for CI test tabs: one testcase per target x framework x dtype.

A testcase fails when it has findings at or above fail-on (all of them are in the failure
text); lower findings go to system-out. A target that could not be checked is one testcase
with an <error>, since no dtype ran. One testsuite per file. No timings, so the bytes are
the same for the same input.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable

from gradsafe.gate.baseline import relative_path
from gradsafe.model.codes import BY_CODE
from gradsafe.model.types import Finding, Report, TargetResult
from gradsafe.numerics.floats import describe_range, info


def _line(f: Finding) -> str:
    bad = describe_range(f.range.low, f.range.high, info(f.dtype), f.dtype)
    where = f" at {f.location.file}:{f.location.line}" if f.location else ""
    return (f"{f.severity} {f.code} {BY_CODE[f.code].name} ({f.kind}, bad inputs {bad})"
            f"{where}: {f.message}")


def _classname(rel: str, target: str) -> str:
    stem = rel[:-3] if rel.endswith(".py") else rel
    return ".".join(p for p in stem.replace("\\", "/").split("/") if p) + f".{target}" \
        if stem else target


def _cases(t: TargetResult, report: Report, rel: str) -> Iterable[ET.Element]:
    attrs = {"classname": _classname(rel, t.name)}
    if rel:
        attrs["file"] = rel
    if t.line is not None:
        attrs["line"] = str(t.line)
    if t.status == "error":
        case = ET.Element("testcase", {"name": f"{t.name}[{t.framework or 'no framework'}]",
                                       **attrs})
        err = ET.SubElement(case, "error", {"message": t.error or "could not be checked",
                                            "type": "gradsafe-error"})
        err.text = t.error or ""
        yield case
        return
    if t.status == "skipped":  # not a target as it stands; the reason says why
        case = ET.Element("testcase", {"name": f"{t.name}[{t.framework or 'no framework'}]",
                                       **attrs})
        ET.SubElement(case, "skipped", {"message": t.reason or "skipped"})
        yield case
        return
    for dtype in report.dtypes:
        case = ET.Element("testcase", {"name": f"{t.name}[{t.framework}-{dtype}]", **attrs})
        found = [f for f in t.findings if f.dtype == dtype]
        failing = [f for f in found if f.fails(report.fail_on)]
        rest = [f for f in found if f not in failing]
        if failing:
            codes = sorted({f.code for f in failing})
            failure = ET.SubElement(case, "failure", {
                "message": f"{len(failing)} finding{'s' * (len(failing) != 1)}: "
                           f"{failing[0].message}",
                "type": ",".join(codes)})
            failure.text = "\n".join(_line(f) for f in failing)
        if rest:
            out = ET.SubElement(case, "system-out")
            out.text = "\n".join(_line(f) for f in rest)
        yield case


def render(report: Report, color: bool = False) -> str:
    root = ET.Element("testsuites", {"name": "gradsafe"})
    suites: dict[str, ET.Element] = {}
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for t in report.targets:
        rel = relative_path(t.file, report.root)
        suite = suites.get(rel)
        if suite is None:
            suite = ET.SubElement(root, "testsuite", {"name": rel or "built-in"})
            suites[rel] = suite
        for case in _cases(t, report, rel):
            suite.append(case)
    for suite in suites.values():
        cases = suite.findall("testcase")
        counts = {"tests": len(cases),
                  "failures": sum(c.find("failure") is not None for c in cases),
                  "errors": sum(c.find("error") is not None for c in cases),
                  "skipped": sum(c.find("skipped") is not None for c in cases)}
        for k, v in counts.items():
            suite.set(k, str(v))
            totals[k] += v
    for k, v in totals.items():
        root.set(k, str(v))
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"
