"""Real code bases as they are: packages with relative imports, `pkg/pkg.py`, helpers that
are not activations (skipped, never exit bit 2), extra arguments, module names, --domain,
--target that matches nothing. Every test runs the real CLI in a subprocess."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
from conftest import FIXTURES, ROOT, run_cli, run_json

CODEBASES = FIXTURES / "codebases"
RELPKG = str((CODEBASES / "relpkg").relative_to(ROOT))
CUTOFFS = str((CODEBASES / "cutoffs.py").relative_to(ROOT))
SCHEMA = json.loads((ROOT / "gradsafe" / "report" / "schema.json").read_text())


def _by_name(report: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for t in report["targets"]:
        out.setdefault(t["name"], []).append(t)
    return out


def _errors(report: dict[str, Any], name: str) -> list[tuple[str, str, tuple[float, float]]]:
    """Error findings of a target, ranges as float32 values (JSON may write either the
    shortest decimal or the exact float64 of the float32 value)."""
    return sorted((f["code"], f["dtype"], (float(np.float32(f["range"]["low"])),
                                           float(np.float32(f["range"]["high"]))))
                  for t in _by_name(report)[name] for f in t["findings"]
                  if f["severity"] == "error")


def test_package_with_relative_imports_helpers_skipped_and_one_error_per_file() -> None:
    code, report = run_json("check", RELPKG, "--dtype", "float32", "--no-suggest",
                            "--no-param-sweep")
    jsonschema.validate(report, SCHEMA)
    targets = _by_name(report)
    # relative imports (acts.py) and pkg/pkg.py both load and are checked
    assert targets["elu"][0]["status"] == "fail"
    assert _errors(report, "elu") == [("GS101", "float32", (float(np.float32(88.72284)),
                                                            float(np.finfo(np.float32).max)))]
    assert targets["softplus"][0]["status"] == "pass"
    assert targets["mish"][0]["status"] == "pass"
    # helpers: skipped with their reasons, listed in JSON, not errors
    reasons = {n: targets[n][0].get("reason", "") for n in ("permute", "get_activation",
                                                             "positive")}
    assert all(targets[n][0]["status"] == "skipped" for n in reasons), reasons
    assert "needs a value for `order`" in reasons["permute"]
    assert "KeyError" in reasons["get_activation"]
    assert "integer or boolean" in reasons["positive"]
    # the missing dependency: one error for the file, whatever its three targets
    broken = [t for t in report["targets"] if t["file"].endswith("broken.py")]
    assert len(broken) == 1 and broken[0]["status"] == "error", broken
    assert broken[0]["name"] == "<module>"
    assert "gradsafe_no_such_dependency" in broken[0]["error"]
    summary = report["summary"]
    assert (summary["passed"], summary["failed"], summary["skipped"], summary["errors"]) == (
        2, 2, 3, 1)
    assert code == 3  # a finding, and a file that could not be imported


def test_skipped_helpers_never_set_exit_bit_2() -> None:
    proc = run_cli("check", f"{RELPKG}/utils.py", f"{RELPKG}/relpkg.py", "--dtype", "float32",
                   "--no-suggest", "-v")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 skipped" in proc.stdout
    assert "- permute" in proc.stdout and "skipped: needs a value for `order`" in proc.stdout
    quiet = run_cli("check", f"{RELPKG}/utils.py", "--dtype", "float32", "--no-suggest")
    assert "- permute" not in quiet.stdout and "(-v lists them)" in quiet.stdout


def test_named_target_that_cannot_be_checked_is_an_error() -> None:
    code, report = run_json("check", f"{RELPKG}/utils.py", "--target", "permute",
                            "--dtype", "float32")
    assert code == 2
    assert [t["status"] for t in report["targets"]] == ["error"]
    assert "needs a value for `order`" in report["targets"][0]["error"]


def test_unknown_target_lists_the_names_that_exist() -> None:
    proc = run_cli("check", CUTOFFS, "--target", "cosine_cutof")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "--target cosine_cutof: no such function or class" in proc.stderr
    assert "cosine_cutoff" in proc.stderr and "CosineCutoff" in proc.stderr


def test_target_filters_classes_that_need_constructor_values(tmp_path: Path) -> None:
    src = tmp_path / "acts.py"
    src.write_text("import torch\n\n\nclass Needs(torch.nn.Module):\n"
                   "    def __init__(self, order):\n        super().__init__()\n"
                   "        self.order = order\n\n    def forward(self, x):\n"
                   "        return torch.relu(x) * self.order\n\n\n"
                   "def act(x):\n    return torch.tanh(x)\n")
    code, report = run_json("check", str(src), "--target", "act", "--dtype", "float32")
    assert code == 0 and [t["name"] for t in report["targets"]] == ["act"]
    code, report = run_json("check", str(src), "--dtype", "float32")
    needs = _by_name(report)["Needs"][0]
    assert code == 0 and needs["status"] == "skipped"
    assert "pass --param order=VALUE" in needs["reason"]
    # --param keeps an int an int (no annotation, no default: the type is the user's)
    code, report = run_json("check", str(src), "--param", "order=2", "--dtype", "float32")
    checked = _by_name(report)["Needs(order=2)"][0]
    assert code == 0 and checked["status"] == "pass"
    assert isinstance(checked["variant"]["params"]["order"], int)


def test_extra_arguments_int_and_float_and_a_basis_expansion() -> None:
    args = ("--arg", "cutoff=5.0", "--arg", "number=8", "--arg", "start=0.0",
            "--arg", "end=5.0", "--dtype", "float32", "--no-suggest", "--no-param-sweep")
    code, report = run_json("check", CUTOFFS, *args)
    targets = _by_name(report)
    # soft_one_hot's torch.linspace needs number as an int: 8, not 8.0
    assert targets["soft_one_hot"][0]["status"] == "pass", targets["soft_one_hot"]
    assert targets["cosine_cutoff"][0]["status"] in ("pass", "fail")
    assert targets["CosineCutoff"][0]["status"] in ("pass", "fail")
    # without the arguments they are skipped, saying what they need
    code, bare = run_json("check", CUTOFFS, "--dtype", "float32", "--no-suggest")
    reasons = {t["name"]: t.get("reason", "") for t in bare["targets"]}
    assert "needs a value for `start`, `end`, `number`" in reasons["soft_one_hot"]
    assert "--arg cutoff=VALUE" in reasons["CosineCutoff"]
    assert code in (0, 1) and bare["summary"]["errors"] == 0


def test_domain_drops_findings_outside_it() -> None:
    args = ("--arg", "cutoff=5.0", "--dtype", "float32", "--no-suggest", "--target",
            "cosine_cutoff")
    _, everywhere = run_json("check", CUTOFFS, *args)
    outside = [f for t in everywhere["targets"] for f in t["findings"]
               if f["range"]["low"] != "-inf" and float(f["range"]["low"]) < 0]
    assert outside, "without --domain, cos(pi * x / c) at huge negative x is reported"
    code, inside = run_json("check", CUTOFFS, *args, "--domain", "0,5")
    findings = [f for t in inside["targets"] for f in t["findings"]]
    assert code == 0 and findings == [], findings
    # sqrt at 0 lies inside [0, 5]: still found
    code, report = run_json("check", CUTOFFS, "--target", "sqrt_distance", "--domain", "0,5",
                            "--dtype", "float32", "--no-suggest")
    assert code == 1 and [f["code"] for t in report["targets"] for f in t["findings"]] == [
        "GS103"]


def test_per_target_config(tmp_path: Path) -> None:
    shutil_src = (CODEBASES / "cutoffs.py").read_text()
    (tmp_path / "cutoffs.py").write_text(shutil_src)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.gradsafe]\ndtypes = ["float32"]\n'
        '[tool.gradsafe.targets."soft_one_hot"]\n'
        'args = { start = 0.0, end = 5.0, number = 8 }\ndomain = [0, 5]\n')
    _code, report = run_json("check", "cutoffs.py", "--no-suggest", cwd=tmp_path)
    assert _by_name(report)["soft_one_hot"][0]["status"] == "pass", report["targets"]
    shown = run_cli("config", "--domain", "0,inf", cwd=tmp_path).stdout
    assert "domain = [0.0, inf]" in shown and 'targets = ["soft_one_hot"]' in shown
    proc = run_cli("check", "cutoffs.py", "--arg", "number", cwd=tmp_path)
    assert proc.returncode == 2 and "--arg 'number': expected NAME=VALUE" in proc.stderr


def test_module_names_and_module_colon_name() -> None:
    env_root = str(CODEBASES)
    code, report = run_json("check", "relpkg.acts:elu", "--dtype", "float32", "--no-suggest",
                            "--no-param-sweep", cwd=Path(env_root))
    assert [t["name"] for t in report["targets"]] == ["elu"] and code == 1
    code, report = run_json("check", "relpkg.relpkg", "--dtype", "float32", "--no-suggest",
                            cwd=Path(env_root))
    assert [t["name"] for t in report["targets"]] == ["mish"] and code == 0
    proc = run_cli("check", "relpkg.nosuch", cwd=Path(env_root))
    assert proc.returncode == 2 and "no such file, directory or module" in proc.stderr
    proc = run_cli("check", "relpkg.acts:nosuch", cwd=Path(env_root))
    assert proc.returncode == 2 and "has no function or class 'nosuch'" in proc.stderr
    assert "elu" in proc.stderr


def test_fix_verifies_a_rewrite_of_a_package_module() -> None:
    proc = run_cli("fix", f"{RELPKG}/fixable.py", "--diff", "--dtype", "float32")
    assert proc.returncode == 1, proc.stderr
    assert "+    return torch.where(x > 0, x, torch.expm1(torch.where(x > 0, 0.0, x))) * SCALE" \
        in proc.stdout, proc.stdout + proc.stderr


def test_detached_output_is_skipped_unless_named(tmp_path: Path) -> None:
    src = tmp_path / "detached.py"
    src.write_text("import torch\n\n\ndef frozen(x):\n    return torch.tanh(x).detach()\n")
    code, report = run_json("check", str(src), "--dtype", "float32")
    (t,) = report["targets"]
    assert code == 0 and t["status"] == "skipped" and "detached" in t["reason"]
    code, report = run_json("check", str(src), "--target", "frozen", "--dtype", "float32")
    (t,) = report["targets"]
    assert code == 1 and [f["code"] for f in t["findings"]] == ["GS104"]
