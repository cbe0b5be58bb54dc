"""Every elementwise activation of torch.nn.functional, jax.nn, tf.nn and keras.activations,
checked by dotted name in float32 and float16, in the CLI run that also checks the batched
fixtures (tests/batch.py: one worker per framework, in parallel; why not bfloat16).

A built-in must come out clean: no error or warning findings (info at x = +-inf is allowed:
x * 0 there is NaN in any formula). The exceptions are real framework bugs, kept as
fixtures in fixtures/builtins/ with the evidence in their docstrings; their expected file
maps a wrapper target to the dotted name ("builtins"), and the dotted name must give the
wrapper's findings exactly. Rules are never tuned to make a built-in pass.

Left out, because they are not elementwise functions of one tensor: softmax, log_softmax,
glu, sparsemax, crelu (changes the shape), prelu (needs a weight), threshold (needs the
threshold and value); in-place variants (elu_, relu_ ...) run the same kernels as their
out-of-place forms; jax.nn.log1mexp is not an activation (defined for x > 0 only).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from batch import BUILTINS, run_batch
from conftest import FIXTURES, short

FRAMEWORK = {"torch": "torch", "jax": "jax", "tf": "tensorflow", "keras": "tensorflow"}
KEYS = ("kind", "dtype", "severity", "range", "boundary")


def _row(finding: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(tuple(finding[k]) if k == "range" else finding[k] for k in KEYS)


def documented() -> dict[str, list[tuple[Any, ...]]]:
    """Dotted name -> the non-info findings its fixture in fixtures/builtins expects."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    for path in sorted((FIXTURES / "builtins").glob("*.expected.json")):
        exp = json.loads(path.read_text())
        for target, dotted in exp["builtins"].items():
            fw = FRAMEWORK[dotted.split(".")[0]]
            out[dotted] = [_row(f) for f in exp["findings"]
                           if f["target"] == target and f["framework"] == fw
                           and f["severity"] != "info"]
    return out


@pytest.fixture(scope="module")
def report() -> dict[str, dict[str, Any]]:
    _code, data = run_batch(())
    return {t["name"]: t for t in data["targets"] if t["file"] is None}


def test_documented_bugs_are_checked_builtins() -> None:
    docs = documented()
    assert docs and set(docs) <= set(BUILTINS)
    assert all(docs.values()), "a documented built-in must have findings"


@pytest.mark.parametrize("dotted", BUILTINS)
def test_builtin(report: dict[str, dict[str, Any]], dotted: str) -> None:
    target = report[dotted]
    assert target["status"] != "error", target["error"]
    assert target["framework"] == FRAMEWORK[dotted.split(".")[0]]
    got = Counter(_row({**f, "boundary": short(f["boundary"], f["dtype"]),
                        "range": [short(f["range"][k], f["dtype"]) for k in ("low", "high")]})
                  for f in target["findings"] if f["severity"] != "info")
    assert got == Counter(documented().get(dotted, [])), dotted
