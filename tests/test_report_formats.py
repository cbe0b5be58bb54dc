"""Every --format has a reporter; SARIF from the fixtures validates against the official
SARIF 2.1.0 schema (vendored in tests/data, since users' clones lack ../shared); JUnit has one
testcase per target x framework x dtype; GitHub annotations follow the runner's escaping."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
from conftest import ROOT, run_cli

from gradsafe.model.codes import CODES
from gradsafe.model.types import Options, Report
from gradsafe.report import Format, renderer
from gradsafe.report.github import command, escape_data, escape_property
from gradsafe.run import engine

SARIF_SCHEMA = ROOT / "tests" / "data" / "sarif-schema-2.1.0.json"
DTYPES = ("float32", "float16")


CASES = ("fixtures/seed000", "fixtures/where_elu", "fixtures/errors/syntax_error.py",
         "fixtures/errors/contract.py", "fixtures/errors/import_error.py")


@pytest.fixture(scope="module")
def report() -> Report:
    """The real engine over fixtures with findings in torch, TensorFlow and JAX, and over
    fixtures that cannot be checked (errors must render in every format too)."""
    return engine.check([str(ROOT / c) for c in CASES], Options(dtypes=DTYPES, root=str(ROOT)))


def test_every_format_has_a_deterministic_reporter(report: Report) -> None:
    assert any(t.findings for t in report.targets)
    # a syntax error and a missing import are errors; contract breakers are skipped
    assert sum(t.status == "error" for t in report.targets) == 2
    assert sum(t.status == "skipped" for t in report.targets) == 4
    for fmt in Format:
        render = renderer(fmt)
        text = render(report, False)
        assert text.strip(), fmt
        assert render(report, False) == text, fmt  # same input, same bytes
    assert {f.value for f in Format} >= {"text", "json", "sarif", "junit", "github"}


def test_sarif_from_the_fixtures_validates(report: Report) -> None:
    schema = json.loads(SARIF_SCHEMA.read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-04/schema#"
    sarif = json.loads(renderer(Format.SARIF)(report, False))
    jsonschema.Draft4Validator(schema).validate(sarif)
    run = sarif["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == [c.code for c in CODES]
    assert all(r["helpUri"].startswith("https://") and r["help"]["text"] for r in rules)
    findings = [(t, f) for t in report.targets for f in t.findings]
    assert len(run["results"]) == len(findings) > 0
    levels = {"error": "error", "warning": "warning", "info": "note"}
    for res, (_t, f) in zip(run["results"], findings, strict=True):
        assert res["ruleId"] == f.code and rules[res["ruleIndex"]]["id"] == f.code
        assert res["level"] == levels[f.severity]
        region = res["locations"][0]["physicalLocation"]["region"]
        assert f.location is not None and region["startLine"] == f.location.line
        uri = res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        assert uri.startswith("fixtures/") and (ROOT / uri).is_file()
        assert re.fullmatch(r"[0-9a-f]{32}", res["partialFingerprints"]["gradsafe/v1"])
        # the where-leaks carry their chain as a code flow: culprit first, the where last
        steps = [s["location"] for flow in res.get("codeFlows", [])
                 for s in flow["threadFlows"][0]["locations"]]
        assert [s["message"]["text"] for s in steps] == [s.op for s in f.path]
        if f.code == "GS101":
            assert steps and steps[-1]["message"]["text"] == "where"
    prints = [r["partialFingerprints"]["gradsafe/v1"] for r in run["results"]]
    assert len(set(prints)) == len(prints)
    notes = run["invocations"][0]["toolExecutionNotifications"]
    assert run["invocations"][0]["executionSuccessful"] is False
    # a syntax error and a missing import, one per file; skipped targets are not errors
    assert sorted(n["message"]["text"].split(" (")[0] for n in notes) == [
        "could not check <module>", "could not check <module>"]


def test_sarif_through_the_cli_is_written_atomically(tmp_path: Path) -> None:
    out = tmp_path / "gradsafe.sarif"
    proc = run_cli("check", "fixtures/where_elu/elu_jax.py", "--dtype", "float32",
                   "--format", "sarif", "--output", str(out))
    assert proc.returncode == 1 and proc.stdout == "", proc.stderr
    sarif = json.loads(out.read_text())
    jsonschema.Draft4Validator(json.loads(SARIF_SCHEMA.read_text())).validate(sarif)
    [res] = sarif["runs"][0]["results"]
    assert res["ruleId"] == "GS101" and res["properties"]["boundary"] == 88.72283935546875
    assert [p.name for p in tmp_path.iterdir()] == ["gradsafe.sarif"]  # no temporary left


def test_junit_has_one_testcase_per_target_framework_dtype(report: Report) -> None:
    root = ET.fromstring(renderer(Format.JUNIT)(report, False))
    cases = root.findall("./testsuite/testcase")
    checked = [t for t in report.targets if t.status in ("pass", "fail")]
    errored = [c for c in cases if c.find("error") is not None]
    skipped = [c for c in cases if c.find("skipped") is not None]
    assert len(errored) == 2 and int(root.get("errors", "-1")) == 2
    assert len(skipped) == 4 and int(root.get("skipped", "-1")) == 4
    assert len(cases) == len(checked) * len(DTYPES) + len(errored) + len(skipped)
    assert int(root.get("tests", "-1")) == len(cases)
    failed = [c for c in cases if c.find("failure") is not None]
    assert int(root.get("failures", "-1")) == len(failed) > 0
    names = {c.get("name") for c in failed}
    assert "elu[jax-float16]" in names and "ELU[torch-float32]" in names
    text = next(c for c in failed if c.get("name") == "elu[tensorflow-float32]")
    failure = text.find("failure")
    assert failure is not None and failure.get("type") == "GS101"
    assert "x >= 88.72284" in (failure.text or "")


def test_github_annotations(report: Report) -> None:
    lines = renderer(Format.GITHUB)(report, False).splitlines()
    findings = [f for t in report.targets for f in t.findings]
    errors = [t for t in report.targets if t.status == "error"]
    assert len(lines) == len(findings) + len(errors)
    lines = [line for line in lines if "title=gradsafe%3A could not check::" not in line]
    pattern = re.compile(r"::(error|warning|notice) file=fixtures/[\w/]+\.py,line=\d+,"
                         r"endLine=\d+,col=\d+,endColumn=\d+,title=GS\d{3}::\S.*")
    for line, f in zip(lines, findings, strict=True):
        assert pattern.fullmatch(line), line
        assert line.startswith({"error": "::error", "warning": "::warning",
                                "info": "::notice"}[f.severity])
        assert f"title={f.code}::" in line


def test_github_escaping() -> None:
    assert escape_data("50% of x\r\ny") == "50%25 of x%0D%0Ay"
    assert escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"
    line = command("warning", {"file": "dir,1/a:b.py", "line": 3, "title": "GS203"},
                   "two\nlines")
    assert line == "::warning file=dir%2C1/a%3Ab.py,line=3,title=GS203::two%0Alines"


def test_a_grid_value_with_only_repeated_findings_is_listed_with_verbose_only() -> None:
    from gradsafe.model.types import REPEATS_NOTE, TargetResult
    from gradsafe.report.text import render

    repeat = TargetResult("elu(alpha=0.0)", "act.py", 5, "torch", "pass", None,
                          notes=(f"3 findings {REPEATS_NOTE}",))
    other = TargetResult("elu(alpha=1e-06)", "act.py", 5, "torch", "pass", None,
                         notes=("rejected alpha=1e-06: not checked",))
    report = Report((repeat, other), ("float32",), 1e4, "error")
    plain = render(report)
    assert "elu(alpha=0.0)" not in plain and "elu(alpha=1e-06)" in plain
    assert "2 checked" in plain  # still counted
    assert "elu(alpha=0.0)" in render(report, verbose=True)
