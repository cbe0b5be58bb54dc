"""Row-wise activations are checked row by row in torch, TensorFlow and JAX: the naive
softmax is found from x = 88.72284 in float32 (11.09375 in float16), the stable forms are
clean, GLU (which halves the last axis) is checked, and a function that mixes rows is
skipped. Only what IEEE arithmetic fixes is asserted: where exp overflows; the underflow
side (subnormals, flush-to-zero) differs between frameworks and CPUs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import FIXTURES, ROOT, run_json

ROWWISE = FIXTURES / "rowwise"
FRAMEWORKS = ("torch", "tf", "jax")


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
        if name.endswith("_stable") or name == "glu":
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
