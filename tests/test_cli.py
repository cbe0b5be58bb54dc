"""The real CLI in a subprocess: contracts other tools rely on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
from conftest import ROOT, cli_env, run_cli

SCHEMA = json.loads((ROOT / "gradsafe" / "report" / "schema.json").read_text())
ELU = "fixtures/seed000/elu_where_torch.py"


def test_json_report_validates_and_is_byte_identical(tmp_path: Path) -> None:
    args = ("check", ELU, "fixtures/errors/import_error.py", "--format", "json")
    first, second = run_cli(*args), run_cli(*args)
    assert first.returncode == second.returncode == 3
    assert first.stdout == second.stdout
    report = json.loads(first.stdout)
    jsonschema.validate(report, SCHEMA)
    assert report["schema"] == "gradsafe-report/1"
    elu = next(t for t in report["targets"] if t["name"] == "ELU")
    f32 = next(f for f in elu["findings"] if f["dtype"] == "float32")
    # the exact float64 value of the float32 number 88.72284 (what every JSON reader parses)
    assert f32["boundary"] == 88.72283935546875 and f32["gradient"] == "nan"
    assert f32["range"] == {"low": 88.72283935546875, "high": 3.4028234663852886e38}
    assert '"boundary": 88.72283935546875,' in first.stdout


def test_output_file_and_exit_codes(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    proc = run_cli("check", ELU, "--format", "json", "--output", str(out))
    assert proc.returncode == 1 and proc.stdout == ""
    assert json.loads(out.read_text())["summary"]["exit_code"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temporary left


def test_fail_on_and_range_change_the_exit_code() -> None:
    # the where-ELU only fails above 88.7, so an operating range of 50 makes it a warning
    assert run_cli("check", ELU, "--range", "50", "--dtype", "float32").returncode == 0
    assert run_cli("check", ELU, "--range", "50", "--dtype", "float32",
                   "--fail-on", "warning").returncode == 1


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    cases = [
        ("check", "no/such/file.py"),
        ("check", ELU, "--dtype", "float8"),
        ("check", ELU, "--framework", "mxnet"),
        ("check", ELU, "--output", str(tmp_path / "missing" / "r.json")),
        ("explain", "GS999"),
    ]
    for args in cases:
        proc = run_cli(*args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert "Error:" in proc.stderr, proc.stderr
    assert not (tmp_path / "missing").exists()


def test_colour_only_when_asked_or_on_a_tty() -> None:
    plain = run_cli("check", ELU, "--dtype", "float32")
    assert "\x1b[" not in plain.stdout and "✗ ELU" in plain.stdout
    forced = run_cli("check", ELU, "--dtype", "float32", "--color", "always")
    assert "\x1b[" in forced.stdout
    env = cli_env()
    env["NO_COLOR"] = "1"
    no_color = run_cli("check", ELU, "--dtype", "float32", "--color", "auto", env=env)
    assert "\x1b[" not in no_color.stdout


def test_text_report_names_the_range_per_dtype() -> None:
    out = run_cli("check", ELU).stdout
    assert "x >= 88.72284" in out and "x >= 11.09375" in out and "x >= 89.0" in out
    assert "GS101" in out and "exit 1" in out


def test_directories_recurse_and_builtins_by_dotted_name(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "act.py").write_text(
        "import torch\n\n\ndef softplus(x):\n    return torch.log(1 + torch.exp(x))\n")
    proc = run_cli("check", str(tmp_path), "torch.nn.functional.softplus", "--format", "json",
                   "--dtype", "float32")
    report = json.loads(proc.stdout)
    names = [t["name"] for t in report["targets"]]
    assert names == ["torch.nn.functional.softplus", "softplus"]
    builtin, hand = report["targets"]
    assert builtin["status"] == "pass" and builtin["file"] is None
    assert hand["status"] == "fail" and proc.returncode == 1


def test_explain_lists_and_explains_codes() -> None:
    listing = run_cli("explain")
    assert listing.returncode == 0 and "GS101" in listing.stdout and "GS502" in listing.stdout
    one = run_cli("explain", "gs101")
    assert "pytorch/pytorch/issues/68425" in one.stdout
    assert "faq.html#gradients-contain-nan-where-using-where" in one.stdout
    assert "tensorflow.org/api_docs/python/tf/where" in one.stdout
    for title in ("PyTorch", "TensorFlow", "JAX"):
        assert f"{title} before:" in one.stdout and f"{title} after:" in one.stdout


def test_cli_process_imports_no_framework() -> None:
    code = (
        "import sys\n"
        "from gradsafe.run import engine\n"
        "from gradsafe.model.types import Options\n"
        "from gradsafe.report import Format, renderer\n"
        f"r = engine.check([{ELU!r}], Options(dtypes=('float32',)))\n"
        "renderer(Format.TEXT)(r, False); renderer(Format.JSON)(r, False)\n"
        "print(sorted(m for m in ('torch', 'tensorflow', 'jax', 'keras') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, env=cli_env(), timeout=300)
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stderr


def test_plain_python_functions_are_skipped_with_a_reason_unless_asked() -> None:
    path = "fixtures/errors/no_framework.py"
    proc = run_cli("check", path, "--format", "json")
    report = json.loads(proc.stdout)
    assert proc.returncode == 0
    (skipped,) = report["targets"]
    assert skipped["status"] == "skipped" and skipped["name"] == "square_plus"
    assert skipped["reason"] == ("cannot infer the framework of 'square_plus' (it uses no "
                                 "torch, tensorflow or jax API); pass --framework "
                                 "torch|tensorflow|jax")
    forced = json.loads(run_cli("check", path, "--framework", "jax", "--dtype", "float32",
                                "--format", "json").stdout)
    (target,) = forced["targets"]
    assert target["framework"] == "jax" and target["status"] in ("pass", "fail")
