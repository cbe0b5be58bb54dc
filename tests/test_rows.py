"""Row-wise activations are checked row by row in torch, TensorFlow and JAX: the naive
softmax is found from x = 88.72284 in float32 (11.09375 in float16), the stable forms are
clean, GLU (which halves the last axis) is checked, and a function that mixes rows is
skipped. Row-wise classes (a torch module, a Keras layer, a Flax NNX module) are checked the
same way, built like any class (constructor grid, dtype policy). Only what IEEE arithmetic
fixes is asserted: where exp overflows; the underflow side (subnormals, flush-to-zero)
differs between frameworks and CPUs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import FIXTURES, ROOT, run_json

ROWWISE = FIXTURES / "rowwise"
FRAMEWORKS = ("torch", "tf", "jax")
STABLE_CLASSES = ("SoftmaxStable(temperature=1.0)", "SoftmaxStableLayer", "LogSoftmaxStable",
                  "SoftmaxLearnableStable")


@pytest.fixture(scope="module")
def reports() -> dict[str, tuple[int, dict[str, Any]]]:
    """One run over the three files (the frameworks' workers run side by side); each
    framework's part of the report, with the exit code of the whole run."""
    files = {fw: str((ROWWISE / f"softmax_{fw}.py").relative_to(ROOT)) for fw in FRAMEWORKS}
    # a generous per-target limit: what is asserted is findings, not speed (a loaded
    # machine runs the JAX row-wise sweep several times slower)
    code, report = run_json("check", *files.values(), "--dtype", "float32,float16",
                            "--no-suggest", "--timeout", "300")
    return {fw: (code, {**report, "targets": [t for t in report["targets"]
                                              if t["file"] == path]})
            for fw, path in files.items()}


def _targets(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in report["targets"]}


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_naive_softmax_overflows_where_exp_does(
        reports: dict[str, tuple[int, dict[str, Any]]], fw: str) -> None:
    code, report = reports[fw]
    naive = _targets(report)["softmax_naive"]
    assert naive["status"] == "fail" and code & 1
    lows = {f["dtype"]: float(f["range"]["low"]) for f in naive["findings"]
            if f["code"] == "GS201" and f["severity"] == "error" and f["range"]["high"] != "inf"
            and float(f["range"]["low"]) > 0}
    assert np.float32(lows["float32"]) == np.float32(88.72284), lows
    assert np.float16(lows["float16"]) == np.float16(11.09375), lows
    assert any("row-wise" in f["message"] for f in naive["findings"])


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_stable_forms_have_no_errors(reports: dict[str, tuple[int, dict[str, Any]]],
                                     fw: str) -> None:
    _, report = reports[fw]
    for name, t in _targets(report).items():
        # the classes at their defaults (grid values such as temperature=1e-06 really
        # overflow x / temperature in float16: warnings there)
        if name.endswith("_stable") or name in STABLE_CLASSES or name == "glu":
            errors = [f for f in t["findings"] if f["severity"] != "info"]
            assert t["status"] == "pass" and not errors, (name, errors)
            assert any("row-wise" in n for n in t["notes"]), t["notes"]


def test_mixing_rows_is_skipped(reports: dict[str, tuple[int, dict[str, Any]]]) -> None:
    _, report = reports["torch"]
    t = _targets(report)["normalise_all"]
    assert t["status"] == "skipped" and "neither elementwise nor row-wise" in t["reason"]
    assert report["summary"]["errors"] == 0


def test_keras_softmax_and_glu_by_dotted_name() -> None:
    code, report = run_json("check", "keras.activations.softmax", "keras.activations.glu",
                            "--framework", "tensorflow", "--dtype", "float32", "--no-suggest")
    statuses = {t["name"]: t["status"] for t in report["targets"]}
    assert statuses == {"keras.activations.softmax": "pass", "keras.activations.glu": "pass"}, \
        report["targets"]
    assert code == 0


# a row-wise class and the function it wraps: the same findings, in the same rows
TWINS = {"torch": ("SoftmaxNaive(temperature=1.0)", "softmax_naive"),
         "tf": ("SoftmaxNaiveLayer", "softmax_naive")}


def _found(t: dict[str, Any]) -> set[tuple[Any, ...]]:
    return {(f["code"], f["dtype"], f["kind"], f["severity"], f["range"]["low"],
             f["range"]["high"]) for f in t["findings"]}


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_row_wise_classes(reports: dict[str, tuple[int, dict[str, Any]]], fw: str) -> None:
    targets = _targets(reports[fw][1])
    if fw in TWINS:
        cls, fn = TWINS[fw]
        assert targets[cls]["status"] == "fail" and _found(targets[cls]) == _found(targets[fn])
        assert any("row-wise" in n for n in targets[cls]["notes"])
        return
    # Flax NNX: log(softmax) from exp; in a row of four equal elements the sum overflows
    # from x = log(FLT_MAX / 4) = 87.33655 and the log gives -inf (the truth: log(1/4))
    naive = targets["LogSoftmaxNaive"]
    lows = {np.float32(float(f["range"]["low"])) for f in naive["findings"]
            if f["code"] == "GS201" and f["dtype"] == "float32" and f["forward"] == "-inf"
            and float(f["range"]["high"]) > 1e38}
    assert naive["status"] == "fail" and np.float32(87.33655) in lows, naive["findings"]


def test_row_wise_class_grid(reports: dict[str, tuple[int, dict[str, Any]]]) -> None:
    """The constructor grid applies to a row-wise class: at temperature=1000 (a grid value)
    the overflow moves to x = 88722.836 and is a warning naming the value."""
    t = _targets(reports["torch"][1])["SoftmaxNaive(temperature=1000.0)"]
    at = {np.float32(float(f["range"]["low"])) for f in t["findings"] if f["code"] == "GS201"
          and f["dtype"] == "float32" and float(f["range"]["high"]) > 1e38}
    assert np.float32(88722.836) in at, t["findings"]
    assert {f["severity"] for f in t["findings"]} <= {"warning", "info"}
    assert all("temperature=1000.0" in f["message"] for f in t["findings"]
               if f["severity"] == "warning")


def test_row_wise_class_parameter_gradient(
        reports: dict[str, tuple[int, dict[str, Any]]]) -> None:
    """A learnable scale inside a naive softmax: its gradient is NaN in rows whose exp
    underflows (x <= -88.72284 in float32, the other elements at its negative; float64 gives
    a tiny finite value), GS501 in the row-wise message; the stable twin has none."""
    targets = _targets(reports["torch"][1])
    found = [f for f in targets["SoftmaxLearnable"]["findings"] if f["code"] == "GS501"]
    highs = {(f["dtype"], np.float32(float(f["range"]["high"]))) for f in found}
    assert ("float32", np.float32(-88.72284)) in highs, found
    assert all("'scale'" in f["message"] and "row-wise" in f["message"] for f in found)
    assert not [f for f in targets["SoftmaxLearnableStable"]["findings"] if f["code"] == "GS501"]
