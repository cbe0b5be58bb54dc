"""The CI gate end to end: a sample project with [tool.gradsafe], a suppression comment and a
baseline, checked through the real CLI (torch, float32, as its pyproject.toml says)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from conftest import ROOT, run_cli

SAMPLE = ROOT / "tests" / "sample_project"
SARIF_SCHEMA = ROOT / "tests" / "data" / "sarif-schema-2.1.0.json"
REPORT_SCHEMA = ROOT / "gradsafe" / "report" / "schema.json"

NEW_BAD = '''"""A new activation added after the baseline was written."""
import torch


def new_elu(x):
    return torch.where(x > 0, x, 2.0 * (torch.exp(x) - 1))
'''


@pytest.fixture
def project(tmp_path: Path) -> Path:
    dest = tmp_path / "project"
    shutil.copytree(SAMPLE, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def _json(proc: Any) -> dict[str, Any]:
    assert proc.stdout, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def _findings(report: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted((t["name"], f["code"]) for t in report["targets"] for f in t["findings"])


def test_clean_with_baseline_and_suppression() -> None:
    proc = run_cli("check", "--format", "json", cwd=SAMPLE)
    report = _json(proc)
    assert proc.returncode == 0, proc.stdout[:3000]
    assert proc.stderr == ""  # no unused suppression warnings, no progress (not a TTY)
    names = sorted({t["name"] for t in report["targets"]})
    assert names == ["celu", "elu", "legacy_elu", "safe_elu"]  # experimental/ is excluded
    assert _findings(report) == []  # GS202 in legacy_mask.py is dropped by per-file-ignores
    hidden = sorted((s["target"], s["reason"], s["finding"]["code"])
                    for s in report["suppressed"])
    assert hidden == [("celu", "comment", "GS101"), ("elu", "baseline", "GS101")]
    assert report["unused_suppressions"] == []
    jsonschema.validate(report, json.loads(REPORT_SCHEMA.read_text()))


def test_new_finding_fails(project: Path) -> None:
    (project / "activations" / "new.py").write_text(NEW_BAD)
    proc = run_cli("check", "--format", "json", cwd=project)
    assert proc.returncode == 1, proc.stderr
    report = _json(proc)
    assert _findings(report) == [("new_elu", "GS101")]
    [f] = [f for t in report["targets"] for f in t["findings"]]
    assert f["boundary"] == 88.72283935546875 and f["dtype"] == "float32"


def test_baseline_survives_edits_above_and_comment_removal_fails(project: Path) -> None:
    elu = project / "activations" / "elu.py"
    text = elu.read_text()
    elu.write_text(text.replace("import torch\n", "import torch\n\nSCALE = 1.0\n\n\n"))
    celu = project / "activations" / "celu.py"
    celu.write_text(celu.read_text().replace("  # gradsafe: ignore[GS101]", ""))
    proc = run_cli("check", "--format", "json", cwd=project)
    report = _json(proc)
    assert proc.returncode == 1
    assert _findings(report) == [("celu", "GS101")]  # elu moved 3 lines down, still baselined
    assert [s["target"] for s in report["suppressed"]] == ["elu"]


def test_stale_suppression_is_a_warning(project: Path) -> None:
    celu = project / "activations" / "celu.py"
    celu.write_text(celu.read_text().replace(
        "torch.where(x > 0, x, torch.exp(x) - 1)",
        "torch.where(x > 0, x, torch.expm1(torch.where(x > 0, 0.0, x)))"))
    proc = run_cli("check", "--format", "json", cwd=project)
    assert proc.returncode == 0
    report = _json(proc)
    assert report["unused_suppressions"] == [
        {"file": "activations/celu.py", "line": 5, "codes": ["GS101"]}]
    jsonschema.validate(report, json.loads(REPORT_SCHEMA.read_text()))
    assert proc.stderr.strip() == ("activations/celu.py:5: warning: unused suppression "
                                   "'# gradsafe: ignore[GS101]' (nothing to suppress here)")


def test_update_baseline_reproduces_the_committed_file(project: Path) -> None:
    baseline = project / "gradsafe-baseline.json"
    baseline.unlink()
    proc = run_cli("check", "--update-baseline", cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "gradsafe: wrote 1 finding to gradsafe-baseline.json"
    assert proc.stdout == ""
    assert baseline.read_bytes() == (SAMPLE / "gradsafe-baseline.json").read_bytes()


def test_missing_baseline_is_a_one_line_error(project: Path) -> None:
    (project / "gradsafe-baseline.json").unlink()
    proc = run_cli("check", cwd=project)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == ("Error: baseline file not found: gradsafe-baseline.json "
                           "(create it with --update-baseline)\n")


def test_sarif_in_project(project: Path) -> None:
    (project / "activations" / "new.py").write_text(NEW_BAD)
    out = project / "report.sarif"
    proc = run_cli("check", "--format", "sarif", "--output", str(out), cwd=project)
    assert proc.returncode == 1 and proc.stdout == ""
    sarif = json.loads(out.read_text())
    jsonschema.Draft4Validator(json.loads(SARIF_SCHEMA.read_text())).validate(sarif)
    results = sarif["runs"][0]["results"]
    by_target = {r["properties"]["target"]: r for r in results}
    assert sorted(by_target) == ["celu", "elu", "new_elu"]
    assert "suppressions" not in by_target["new_elu"]
    assert by_target["celu"]["suppressions"][0]["kind"] == "inSource"
    assert by_target["elu"]["suppressions"][0]["kind"] == "external"
    # the fingerprint written to the baseline by an earlier run is the one SARIF reports now
    committed = json.loads((SAMPLE / "gradsafe-baseline.json").read_text())["findings"][0]
    assert by_target["elu"]["partialFingerprints"]["gradsafe/v1"] == committed["fingerprint"]
    loc = by_target["new_elu"]["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"]["uri"] == "activations/new.py"
    # the culprit expression, `torch.exp(x)` on the line after the def
    assert (loc["region"]["startLine"], loc["region"]["startColumn"]) == (6, 41)


def test_quiet_verbose_and_color(project: Path) -> None:
    (project / "activations" / "new.py").write_text(NEW_BAD)
    quiet = run_cli("check", "--quiet", cwd=project)
    assert quiet.returncode == 1
    assert quiet.stdout.startswith("✗ new_elu  activations/new.py:5  torch")
    assert "checked" not in quiet.stdout and "safe_elu" not in quiet.stdout
    assert "\x1b[" not in quiet.stdout  # not a TTY: no colour
    loud = run_cli("check", "--verbose", "--color", "always", cwd=project)
    assert loud.returncode == 1
    assert "\x1b[" in loud.stdout
    plain = re.sub(r"\x1b\[[0-9;]*m", "", loud.stdout)
    assert "safe_elu" in plain and "5 checked" in plain and "1 suppressed" not in plain
    assert "GS101 torch float32: gradient is NaN for x >= 88.72284" in plain


def test_bare_ignore_is_shown_under_show_suppressed(project: Path) -> None:
    celu = project / "activations" / "celu.py"
    celu.write_text(celu.read_text().replace("ignore[GS101]", "ignore"))
    proc = run_cli("check", "--show-suppressed", cwd=project)
    assert proc.returncode == 0, proc.stdout
    assert "GS101 celu  activations/celu.py:5  torch float32 gradient  by '# gradsafe: " \
           "ignore' at line 5" in proc.stdout
    assert "GS101 elu  activations/elu.py:6  torch float32 gradient  by the baseline" \
        in proc.stdout
    assert ("activations/celu.py:5: bare '# gradsafe: ignore' hides every code; name them: "
            "'# gradsafe: ignore[GS101]'") in proc.stdout
