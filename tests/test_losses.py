"""Losses, metrics and geometry ops: functions of several tensors (issue 21).

The findings of fixtures/losses/ with the options each needs are goldens (test_fixtures);
here: what happens without those options (every target skipped with what it needs, in every
format), --sweep from the command line and from config, and the separability test that
decides how a reduction is checked.
"""

from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES, run_cli, run_json

from gradsafe.discover import selection
from gradsafe.discover.targets import discover_file
from gradsafe.model.types import Options, TargetSettings, missing_args

LOSSES = FIXTURES / "losses"
BOXES = str(LOSSES / "boxes_torch.py")


def test_without_options_every_target_is_skipped_with_what_it_needs() -> None:
    """Every function of several tensors in the group, in all three frameworks, is listed
    as skipped with the argument it needs; only the one whose extra argument has a default
    (quartic_cutoff's radius) and the one-tensor smooth-AP sigmoid are checked as written."""
    files = sorted(str(p) for p in LOSSES.glob("*.py"))
    code, report = run_json("check", *files, "--framework", "torch", "--dtype", "float32",
                            "--no-suggest")
    by_status: dict[str, list[dict[str, object]]] = {}
    for t in report["targets"]:
        by_status.setdefault(str(t["status"]), []).append(t)
    skipped = by_status["skipped"]
    assert len(skipped) == 3 * 5 + 1 + 3  # 5 per framework, softmax_xent in torch, boxes_rows
    for t in skipped:
        assert "needs a value for `" in str(t["reason"]), t
        assert "--arg " in str(t["reason"])
    checked = by_status.get("pass", []) + by_status.get("fail", [])
    assert {str(t["name"]) for t in checked} == {"quartic_cutoff", "sigmoid_temp_torch"} | {
        f"quartic_cutoff(radius={v})" for v in ("0.0", "-1.0", "1e-06", "1000.0")}
    assert code & 2 == 0  # skipped is never "could not be checked"
    # the automatic grid sweeps a function's keyword like a constructor argument: findings
    # at its values are warnings naming the value (radius = 1e-06: scale = 1e24 is inf in
    # float16... and at float32, (radius - x) ** 4 * 1e24 overflows for |x| >= 1.8e-4)
    grid = [f for t in checked if t["name"] != "quartic_cutoff" for f in t["findings"]]
    assert grid and {f["severity"] for f in grid} <= {"warning", "info"}
    assert all("a value of gradsafe's automatic grid" in f["message"] and "radius=" in
               f["message"] for f in grid if f["severity"] == "warning")


@pytest.mark.parametrize("fmt", ["text", "junit"])
def test_skipped_reason_in_text_and_junit(fmt: str) -> None:
    args = ["check", BOXES, "-v"] if fmt == "text" else ["check", BOXES, "--format", "junit"]
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    if fmt == "text":
        assert "box_aspect_loss" in proc.stdout and "skipped: needs a value for `y1`" \
            in proc.stdout.replace("\n", " ")
    else:
        case = ET.fromstring(proc.stdout).find(".//testcase")
        assert case is not None
        skip = case.find("skipped")
        assert skip is not None and "needs a value for `y1`" in skip.get("message", "")


def test_sweep_another_argument_needs_the_first() -> None:
    """--sweep y2: the first parameter (x1) becomes one that needs a value."""
    code, report = run_json("check", BOXES, "--sweep", "y2", "--arg", "y1=0", "--arg", "x2=1")
    (t,) = report["targets"]
    assert t["name"] == "box_aspect_loss[y2]" and t["status"] == "skipped"
    assert "needs a value for `x1`" in t["reason"]
    assert code == 0


def test_sweep_from_config_finds_the_height_boundary(tmp_path: Path) -> None:
    """Per-target config: sweep and args; the gradient with respect to the box's height is
    NaN for 0 < h <= 5.421011e-20 in float32 (atan(w / h) with w / h = inf)."""
    (tmp_path / "pyproject.toml").write_text(
        '[tool.gradsafe.targets."box_aspect_loss"]\nsweep = "y2"\n'
        'args = { x1 = 0, y1 = 0, x2 = 1 }\n', encoding="utf-8")
    (tmp_path / "boxes.py").write_text(Path(BOXES).read_text(encoding="utf-8"),
                                       encoding="utf-8")
    code, report = run_json("check", "boxes.py", "--dtype", "float32", "--no-suggest",
                            cwd=tmp_path)
    (t,) = report["targets"]
    assert t["name"] == "box_aspect_loss[y2]", t
    (f,) = [f for f in t["findings"] if f["severity"] == "error"]
    assert (f["code"], f["kind"]) == ("GS102", "gradient")
    assert f["range"]["high"] == float(np.float32(5.421011e-20))
    assert code == 1


@pytest.mark.parametrize("sweep, row, says", [
    ("1x", None, "expected a parameter name, NAME[INDEX]"),
    ("boxes1[4]", "[0.0, 0.0, 1.0, 1.0]", "index 4 is out of range for a row of 4"),
    ("boxes1[..., 1]", None, "needs the rest of the row: pass --arg boxes1=[...]"),
])
def test_bad_sweep_value_is_one_line(sweep: str, row: str | None, says: str) -> None:
    """Bad syntax, an index out of range, a column sweep without its row: one line, exit 2
    (before any framework starts)."""
    extra = ["--arg", f"boxes1={row}"] if row else []
    proc = run_cli("check", str(LOSSES / "boxes_rows_torch.py"), "--sweep", sweep, *extra)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert says in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_column_sweep_binds_the_row(tmp_path: Path) -> None:
    """--sweep boxes1[3] and per-target config `sweep = "boxes1[-1]"`: the same canonical
    column, reported as boxes1[..., 3]; the row stays bound (it is the rest of the tensor);
    a target without that parameter sweeps its first as before."""
    from gradsafe.gate import config

    found = {t.name: t for t in discover_file(str(LOSSES / "boxes_rows_torch.py"))}
    t = found["aspect_torch"]
    row = (("boxes1", "[0.0, 0.0, 1.0, 1.0]"), ("boxes2", "(0.0, 0.0, 1.0, 1.0)"))
    bound = selection.bind(t, Options(args=row, sweep="boxes1[..., 3]"))
    assert bound.sweep == "boxes1[..., 3]" and bound.label == "aspect_torch[boxes1[..., 3]]"
    assert dict(bound.args) == dict(row) and missing_args(bound) == ()
    (tmp_path / "pyproject.toml").write_text(
        '[tool.gradsafe.targets."aspect_torch"]\nsweep = "boxes1[-1]"\n'
        'args = { boxes1 = [0.0, 0.0, 1.0, 1.0], boxes2 = [0.0, 0.0, 1.0, 1.0] }\n',
        encoding="utf-8")
    opts = config.resolve({}, cwd=tmp_path).options
    assert dict(opts.per_target)["aspect_torch"].sweep == "boxes1[..., -1]"
    assert selection.bind(t, opts).sweep == "boxes1[..., 3]"
    assert selection.bind(_box(), Options(sweep="boxes1[3]")).sweep is None  # type: ignore[arg-type]
    with pytest.raises(selection.SelectionError, match="is not a list of numbers"):
        selection.bind(t, Options(args=(("boxes1", "'a'"),), sweep="boxes1[..., 0]"))


def _box() -> object:
    (t,) = discover_file(BOXES)
    return t


def test_inputs_are_the_required_positional_parameters() -> None:
    t = _box()
    assert t.inputs == ("x1", "y1", "x2", "y2")  # type: ignore[attr-defined]
    (focal,) = [t for t in discover_file(str(LOSSES / "losses_torch.py"))
                if t.name == "focal_loss"]
    assert focal.inputs == ("logits", "labels")  # gamma has a default: an option


def test_bind_and_sweeps() -> None:
    t = _box()
    opts = Options(args=(("x1", "0"), ("y1", "0"), ("x2", "1"), ("y2", "1")))
    bound = selection.bind(t, opts)  # type: ignore[arg-type]
    assert bound.sweep is None and "x1" not in dict(bound.args)  # x1 is the input
    assert missing_args(bound) == ()
    swept = selection.bind(t, dataclasses.replace(opts, sweep="y2"))  # type: ignore[arg-type]
    assert swept.sweep == "y2" and swept.label == "box_aspect_loss[y2]"
    assert dict(swept.args) == {"x1": "0", "y1": "0", "x2": "1"}
    every = selection.sweeps(bound, dataclasses.replace(opts, sweep="all"))
    assert [s.label for s in every] == ["box_aspect_loss", "box_aspect_loss[y1]",
                                        "box_aspect_loss[x2]", "box_aspect_loss[y2]"]
    assert all(missing_args(s) == () for s in every)
    assert [dict(s.args).get(s.sweep or "x1") for s in every] == [None] * 4
    own = dataclasses.replace(Options(), per_target=(("box_aspect_loss",
                                                      TargetSettings(sweep="x2")),))
    assert selection.bind(t, own).sweep == "x2"  # type: ignore[arg-type]
    assert missing_args(selection.bind(t, own)) == ("x1", "y1", "y2")  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def torch_backend() -> object:
    pytest.importorskip("torch")
    from gradsafe.backends import get_backend

    return get_backend("torch")


def test_separable_reductions(torch_backend: object) -> None:
    """Sums and means of per-element terms are separable; a norm, a max and a softmax
    cross-entropy mix their elements."""
    import torch

    from gradsafe.check.reduction import reduces, separable

    b = torch_backend
    cases = {
        "mean": (lambda x: torch.log(torch.cosh(x)).mean(), True),
        "sum": (lambda x: (x * x).sum(), True),
        "norm": (lambda x: torch.sqrt((x * x).sum()), False),
        "max": (lambda x: x.max(), False),
        "xent": (lambda x: -torch.log_softmax(x, -1).mean(), False),
    }
    for name, (fn, want) in cases.items():
        assert reduces(b, fn), name  # type: ignore[arg-type]
        assert separable(b, fn) is want, name  # type: ignore[arg-type]
    assert not reduces(b, torch.tanh)  # type: ignore[arg-type]


def test_per_element_gives_each_term(torch_backend: object) -> None:
    import torch

    b = torch_backend
    fn = b.per_element(lambda x: torch.log(torch.cosh(x)).mean())  # type: ignore[attr-defined]
    xs = np.linspace(-3, 3, 64)
    ev = b.evaluate(fn, xs, "float64")  # type: ignore[attr-defined]
    assert np.allclose(ev.forward, np.log(np.cosh(xs)), rtol=1e-12)
    assert np.allclose(ev.gradient, np.tanh(xs), rtol=1e-12)
    json.dumps(ev.forward.tolist())


def test_base_class_in_another_module_is_followed() -> None:
    """`from .base import TorchBaseLoss`: the class's kind and the arguments of the call
    method it inherits come from base.py."""
    found = {t.name: t for t in discover_file(str(LOSSES / "baseloss" / "losses.py"))}
    assert {n: (t.kind, t.inputs, t.needs) for n, t in found.items()} == {
        "TorchLogCosh": ("module", ("preds", "target"), ("target",)),
        "KerasLogCosh": ("layer", ("preds", "target"), ("target",)),
        "NNXLogCosh": ("nnx", ("preds", "target"), ("target",)),
    }


def test_fix_rewrites_log_cosh_and_the_check_after_is_clean(tmp_path: Path) -> None:
    """`gradsafe fix --write` on a two-tensor loss with --arg: the verified log-cosh rewrite
    is written, and the check after it (same options) is clean."""
    src = (LOSSES / "losses_torch.py").read_text(encoding="utf-8")
    path = tmp_path / "losses.py"
    path.write_text(src, encoding="utf-8")
    proc = run_cli("fix", "losses.py:log_cosh_error", "--arg", "target=0.0", "--dtype",
                   "float32,float16", "--write", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    new = path.read_text(encoding="utf-8")
    assert "torch.exp(d) + torch.exp(-d)" not in new
    assert "torch.abs(d)" in new and "0.6931471805599453" in new
    compile(new, str(path), "exec")


def test_param_sets_a_functions_keyword_arguments() -> None:
    """--param radius=0.04,1.0 on `quartic_cutoff(x, radius=1.0)`: one target per value,
    named with it; --arg radius wins over --param; an unknown name is still an error."""
    from gradsafe.discover import variants

    (t,) = [t for t in discover_file(str(LOSSES / "losses_torch.py"))
            if t.name == "quartic_cutoff"]
    assert variants.keywords(t) == ("radius",)
    opts = Options(param_values=(("radius", (0.04, 1.0)),))
    got = variants.function_settings(t, opts)
    assert [(s.label, dict(s.args)) for s in got] == [
        ("quartic_cutoff(radius=0.04)", {"radius": "0.04"}),
        ("quartic_cutoff(radius=1.0)", {"radius": "1.0"})]
    bound = dataclasses.replace(t, args=(("radius", "0.5"),))
    assert variants.function_settings(bound, opts) == [bound]
    variants.check_param_names([t], opts)
    with pytest.raises(variants.VariantError):
        variants.check_param_names([t], Options(param_values=(("radiu", (1.0,)),)))


def test_grid_of_a_functions_keywords() -> None:
    """With the grid on (the default), each numeric keyword not set by --param or --arg is
    varied one at a time around its default, as constructor arguments are, each value marked
    as the grid's; a function skipped for a missing argument gets no grid, and a function
    skipped as written is listed once (its grid settings are left out of the report)."""
    from gradsafe.discover import variants
    from gradsafe.model.types import TargetResult

    found = {t.name: t for t in discover_file(str(LOSSES / "losses_torch.py"))}
    cutoff = found["quartic_cutoff"]
    got = variants.function_settings(cutoff, Options())
    assert [(s.label, s.grid) for s in got] == [("quartic_cutoff", ())] + [
        (f"quartic_cutoff(radius={v})", ("radius",)) for v in ("0.0", "-1.0", "1e-06", "1000.0")]
    assert variants.function_settings(cutoff, Options(param_sweep=False)) == [cutoff]
    assert variants.function_settings(found["focal_loss"], Options()) == [found["focal_loss"]]
    bound = dataclasses.replace(found["focal_loss"], args=(("labels", "1.0"),))
    assert [s.label for s in variants.function_settings(bound, Options())][:2] == [
        "focal_loss", "focal_loss(gamma=0.0)"]
    results = [TargetResult(s.label, s.file, s.line, "torch", "pass", None, (), ())
               for s in got]
    results[0] = dataclasses.replace(results[0], status="skipped", reason="raised")
    assert [r.name for r in selection.grid_of_skipped(got, results)] == ["quartic_cutoff"]
    results[0] = dataclasses.replace(results[0], status="error", reason=None)
    assert [r.name for r in selection.grid_of_skipped(got, results)] == ["quartic_cutoff"]
    results[0] = dataclasses.replace(results[0], status="pass")
    assert len(selection.grid_of_skipped(got, results)) == 5
    # a grid value's findings that the defaults already have are not repeated
    from gradsafe.model.types import Finding, Range
    leak = Finding(code="GS101", kind="gradient", severity="error", dtype="float16",
                   framework="torch", example_input=26.5, forward=0.0, gradient=float("nan"),
                   range=Range(26.40625, 65504.0), boundary=26.40625, location=None, message="")
    new = dataclasses.replace(leak, range=Range(-0.3, 0.04), severity="warning")
    results[0] = dataclasses.replace(results[0], status="fail", findings=(leak,))
    results[1] = dataclasses.replace(results[1], status="pass", findings=(
        dataclasses.replace(leak, severity="warning"), new))
    folded = selection.grid_repeats(got, results, "warning")
    assert folded[0] == results[0] and folded[1].findings == (new,)
    assert "1 finding the same as at the defaults" in folded[1].notes[-1]
