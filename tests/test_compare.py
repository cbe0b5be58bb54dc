"""`gradsafe compare` and `--plot`: the kink table measured from the frameworks, planted
disagreements between hand ports, the JSON contract, and PNGs that get written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
from conftest import ROOT, run_cli

from gradsafe.compare.groups import analyse_group, close, tolerance
from gradsafe.model.samples import Group, SideData
from gradsafe.model.types import Options, Side, Target, TargetKind

SCHEMA = json.loads((ROOT / "gradsafe" / "report" / "schema.json").read_text())
KINKS = [f"fixtures/compare/kinks_{fw}.py" for fw in ("torch", "jax", "tf")]
PNG = b"\x89PNG\r\n\x1a\n"


def _group(*labels: str) -> Group:
    return Group("f", tuple((Side(fw, "f", None, None, fw, "function"),
                             Target("f", None, None, TargetKind.FUNCTION, (fw,))) for fw in labels))


def test_analysis_separates_kink_conventions_from_disagreements() -> None:
    """Pure NumPy: |x| with two conventions at 0, and a port with a sign slip for x < -2."""
    x = np.array([-3.0, -2.5, -1.0, -1e-45, -0.0, 0.0, 1e-45, 1.0, 2.0])
    f = np.abs(x)
    g = np.sign(x)
    g_one = np.where(x >= 0, 1.0, -1.0)  # JAX's abs'(0) = 1 (and on -0.0)
    slip = np.where(x < -2, -f, f)
    values = {"torch": {"float32": SideData(f, g)}, "jax": {"float32": SideData(f, g_one)},
              "port": {"float32": SideData(slip, np.where(x < -2, 1.0, g))}}
    c = analyse_group(_group("torch", "jax", "port"), {"float32": x}, values, (),
                      Options(dtypes=("float32",)))
    (kink,) = c.kinks
    assert (kink.x, kink.left, kink.right) == (0.0, -1.0, 1.0)
    assert dict(kink.gradients) == {"torch": 0.0, "jax": 1.0, "port": 0.0}
    status = {(r.a, r.b): r.status for r in c.rows}
    assert status == {("torch", "jax"): "kink", ("torch", "port"): "differ",
                      ("jax", "port"): "differ"}
    row = next(r for r in c.rows if r.b == "port" and r.a == "torch")
    assert row.forward is not None and row.forward.count == 2
    assert (row.forward.low, row.forward.high, row.forward.max_diff) == (-3.0, -2.5, 6.0)
    codes = sorted(f.code for f in c.findings)
    assert codes == ["GS401", "GS401", "GS401", "GS401", "GS402"]
    # a tolerance of a few ulps: float32 rounding differences are not disagreements
    one = np.array([1.0])
    assert close(one, one + 8 * 2.0**-23, tolerance("float32"))[0]
    assert not close(one, one + 1e-3, tolerance("float32"))[0]
    assert close(np.array([np.nan, np.inf]), np.array([np.nan, np.inf]), 1e-6).all()


def _comparison(report: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in report["comparisons"] if c["name"] == name)
    return found


def test_compare_built_ins_measures_the_kink_table(tmp_path: Path) -> None:
    png = tmp_path / "kinks.png"
    proc = run_cli("compare", *KINKS, "--dtype", "float32", "--format", "json",
                   "--plot", str(png))
    assert proc.returncode == 1, proc.stderr  # leaky_relu: TF's default slope is 0.2
    report = json.loads(proc.stdout)
    jsonschema.validate(report, SCHEMA)
    # kernels that flush subnormals to zero add rows at x = ±1e-45 next to a kink at 0
    subnormal = [k for c in report["comparisons"] for k in c["kinks"]
                 if 0 < abs(k["x"]) < 1.2e-38]
    assert all(len(set(k["gradients"].values())) > 1 for k in subnormal)
    table = {c["name"]: {k["x"]: k["gradients"] for k in c["kinks"] if k not in subnormal}
             for c in report["comparisons"]}
    assert table == {
        "absolute": {0.0: {"torch": 0.0, "jax": 1.0, "tensorflow": 0.0}},
        "maximum0": {0.0: {"torch": 0.5, "jax": 0.5, "tensorflow": 1.0}},
        "clip": {-1.0: {"torch": 1.0, "jax": 0.5, "tensorflow": 1.0},
                 1.0: {"torch": 1.0, "jax": 0.5, "tensorflow": 1.0}},
        "hardtanh": {-1.0: {"torch": 0.0, "jax": 1.0, "tensorflow": 1.0},
                     1.0: {"torch": 0.0, "jax": 1.0, "tensorflow": 1.0}},
        # JSON numbers are exact float64 values of the float32 slopes 0.01 and 0.2
        "leaky_relu": {0.0: {"torch": 0.009999999776482582, "jax": 1.0,
                             "tensorflow": 0.20000000298023224}},
    }
    leaky = _comparison(report, "leaky_relu")
    rows = {(r["a"], r["b"]): r for r in leaky["rows"]}
    assert rows["torch", "jax"]["status"] == "kink"
    assert rows["torch", "tensorflow"]["status"] == "differ"
    assert rows["torch", "tensorflow"]["forward"]["high"] < 0  # only x < 0 differs
    assert {f["code"] for f in leaky["findings"]} == {"GS401", "GS402"}
    clip = _comparison(report, "clip")
    assert [r["status"] for r in clip["rows"]] == ["kink", "agree", "kink"]
    assert all(f["severity"] == "info" for f in clip["findings"])
    assert png.read_bytes().startswith(PNG) and png.stat().st_size > 20_000


def test_compare_catches_planted_disagreements_between_ports() -> None:
    proc = run_cli("compare", "fixtures/compare/ports_torch.py", "fixtures/compare/ports_jax.py",
                   "--dtype", "float32", "--format", "json")
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    elu, swish = _comparison(report, "elu"), _comparison(report, "swish")
    (row,) = elu["rows"]
    assert row["status"] == "differ"
    assert row["forward"]["high"] < 0 and row["gradient"]["high"] < 1e-30  # the x < 0 branch
    assert row["gradient"]["a"] == -row["gradient"]["b"]  # a sign slip
    grad = next(f for f in elu["findings"] if f["kind"] == "gradient")
    assert grad["code"] == "GS401" and grad["framework"] == "torch vs jax"
    assert grad["location"]["file"] == "fixtures/compare/ports_jax.py"
    assert "at x = -0.1: torch 0.9048374, jax -0.9048374" in grad["message"]
    (srow,) = swish["rows"]  # a different constant: both sides of 0 differ
    assert srow["status"] == "differ" and srow["forward"]["low"] < 0 < srow["forward"]["high"]


def test_compare_bad_input_is_one_line(tmp_path: Path) -> None:
    cases = [("compare", "nope.py", KINKS[0]), ("compare", *KINKS, KINKS[0]),
             ("compare", f"{KINKS[0]}::missing", KINKS[1]),
             ("compare", "fixtures/compare/ports_torch.py::elu"),
             ("compare", *KINKS[:2], "--plot", str(tmp_path / "x.jpg"))]
    for args in cases:
        proc = run_cli(*args)
        assert proc.returncode == 2, (args, proc.stdout)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_check_plot_writes_a_png(tmp_path: Path) -> None:
    png = tmp_path / "elu.png"
    proc = run_cli("check", "fixtures/portable/array_api.py", "--target", "elu_leak",
                   "--dtype", "float32", "--plot", str(png))
    assert proc.returncode == 1, proc.stderr
    assert f"wrote {png}" in proc.stderr
    assert png.read_bytes().startswith(PNG) and png.stat().st_size > 20_000
    assert [p.name for p in tmp_path.iterdir()] == ["elu.png"]  # no temporary left


def test_check_plot_draws_classes_as_built_with_their_defaults() -> None:
    """A Module with parameter variants is drawn once, built with its default arguments and
    named like the report's default variant (whose findings get shaded)."""
    from gradsafe.discover import variants
    from gradsafe.discover.targets import discover_file
    from gradsafe.run.samples import plot_groups

    options = Options(dtypes=("float32",))
    found = discover_file(str(ROOT / "fixtures" / "params" / "learnable_elu_torch.py"))
    expanded = [v for t in found for v in variants.expand(t, options)]
    assert len(expanded) > len(found)  # alpha is swept: several variants per class
    gs, left_out = plot_groups(expanded, options, 6)
    assert [g.name for g in gs] == ["LearnableELU(alpha=1.0)", "LearnableCELU(alpha=1.0)"]
    assert left_out == 0
    assert all(t.variant is None and side.framework == "torch" for g in gs
               for side, t in g.sides)
