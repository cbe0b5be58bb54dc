"""--order 2: second derivatives through the real CLI, the float64 rule, and how order shows
in JSON, SARIF, the baseline and the configuration. Fixtures with their expected findings
are in fixtures/order2 (test_fixtures runs them)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from conftest import run_cli, run_json

from gradsafe.check.second import Sample2, masks
from gradsafe.gate.baseline import identity
from gradsafe.model.types import Finding, Range, Report, TargetResult
from gradsafe.report.json_report import SCHEMA_PATH, report_data
from gradsafe.report.sarif import sarif_data


def _torch_second(x: float, dtype: str) -> tuple[float, float]:
    """f'(x) and f''(x) of F.mish by torch's own double backward, in a full-width vector."""
    import torch

    t = torch.full((1024,), x, dtype=getattr(torch, dtype), requires_grad=True)
    y = torch.nn.functional.mish(t)
    (g,) = torch.autograd.grad(y.sum(), t, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), t)
    return float(g[0].detach()), float(h[0])


def test_mish_second_derivative_by_dotted_name() -> None:
    code, report = run_json("check", "torch.nn.functional.mish", "--order", "2",
                            "--dtype", "float32,float16")
    jsonschema.validate(report, json.loads(SCHEMA_PATH.read_text()))
    assert code == 1
    assert report["options"]["order"] == 2
    (target,) = report["targets"]
    second = {f["dtype"]: f for f in target["findings"] if f.get("order") == 2}
    assert set(second) == {"float32", "float16"}, target["findings"]
    assert all(f.get("order", 1) == 1 for f in target["findings"] if f["dtype"] not in second
               or f is not second[f["dtype"]])
    for dtype, f in second.items():
        assert f["code"] == "GS102" and f["severity"] == "error"
        low = float(f["range"]["low"])
        below = float(np.nextafter(getattr(np, dtype)(low), getattr(np, dtype)(0)))
        # the boundary is exact: NaN there, finite one ulp below, f' finite at both
        g_at, h_at = _torch_second(low, dtype)
        g_below, h_below = _torch_second(below, dtype)
        assert np.isfinite(g_at) and np.isnan(h_at), (dtype, low, g_at, h_at)
        assert np.isfinite(g_below) and np.isfinite(h_below), (dtype, below, h_below)
    assert np.float32(second["float32"]["range"]["low"]) == np.float32(88.72284)
    assert np.float16(second["float16"]["range"]["low"]) == np.float16(11.09375)


def test_default_order_reports_no_second_derivative() -> None:
    code, report = run_json("check", "torch.nn.functional.mish", "--dtype", "float32")
    assert code == 0
    assert "order" not in report["options"]
    assert all("order" not in f for t in report["targets"] for f in t["findings"])


def _finding(order: int) -> Finding:
    return Finding(code="GS102", kind="gradient", severity="error", dtype="float32",
                   framework="torch", example_input=89.0, forward=89.0, gradient=float("nan"),
                   range=Range(88.72284362792969, 3.4028234663852886e+38),
                   boundary=88.72284362792969, location=None, message="second derivative is NaN",
                   order=order)


def test_order_in_json_sarif_and_baseline() -> None:
    report = Report((TargetResult("mish", None, None, "torch", "fail", None,
                                  (_finding(1), _finding(2))),),
                    ("float32",), 1e4, "error", order=2)
    data = report_data(report)
    jsonschema.validate(data, json.loads(SCHEMA_PATH.read_text()))
    first, second = data["targets"][0]["findings"]
    assert "order" not in first and second["order"] == 2
    assert data["options"]["order"] == 2
    results = sarif_data(report)["runs"][0]["results"]
    assert [r["properties"].get("order") for r in results] == [None, 2]
    # a second-order finding is its own baseline entry; first-order identities are unchanged
    one, two = (identity("mish", None, f, "") for f in (_finding(1), _finding(2)))
    assert "order" not in one and two["order"] == 2


def test_float64_rule_for_the_second_derivative() -> None:
    nan, inf = float("nan"), float("inf")
    s = Sample2(x=np.array([1.0, 2.0, 3.0, 4.0, 5.0]),
                first=np.array([1.0, 1.0, 1.0, 1.0, nan]),
                second=np.array([nan, inf, nan, nan, nan]),
                # true 0; beyond float32 (an honest overflow); unknown; true 5; f' not finite
                reference=np.array([0.0, 1e40, nan, 5.0, 0.0]))
    proven, loose = masks(s, "float32")
    assert proven.tolist() == [True, False, False, True, False]
    assert loose.tolist() == [True, False, True, True, False]


def test_order_from_config_and_bad_values(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.gradsafe]\norder = 2\n")
    proc = run_cli("config", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert any(line.startswith("order = 2 ") for line in proc.stdout.splitlines())
    (tmp_path / "pyproject.toml").write_text("[tool.gradsafe]\norder = 3\n")
    proc = run_cli("config", cwd=tmp_path)
    assert proc.returncode == 2
    assert "order: expected 1 or 2, got 3" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("value", ["3", "0", "two"])
def test_bad_order_flag_is_refused(value: str) -> None:
    proc = run_cli("check", "torch.nn.functional.mish", "--order", value)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr


def test_exhaustive_sweep_of_the_second_derivative_finds_the_exact_transition() -> None:
    """--exhaustive at order 2 runs the compiled mask sweep on f' (so its 'gradient' mask is
    f''): in a window of float32 bit patterns around 88.72 it must put mish's first bad f''
    and the good value just below it into the plan."""
    import torch

    from gradsafe.backends.derivative import derivative
    from gradsafe.backends.torch_backend import BACKEND
    from gradsafe.check.exhaustive import sweep as exhaustive_sweep
    from gradsafe.numerics.floats import values_to_keys
    from gradsafe.numerics.probes import plan

    d = derivative(BACKEND, torch.nn.functional.mish)
    extended, note = exhaustive_sweep(BACKEND, d, "float32", plan("float32"),
                                      window=(0x42B00000, 0x42B40000), chunk=1 << 16)
    assert note is None
    first_bad = int(values_to_keys(np.array([88.72284]), "float32")[0])
    keys = set(extended.keys.tolist())
    assert {first_bad - 1, first_bad} <= keys
    _, h_bad = _torch_second(88.72284, "float32")
    _, h_good = _torch_second(float(np.nextafter(np.float32(88.72284), np.float32(0))),
                              "float32")
    assert np.isnan(h_bad) and np.isfinite(h_good)
