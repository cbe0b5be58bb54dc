"""Every fixture under fixtures/ gives exactly the findings written beside it.

`fixtures/<group>/<case>.py` is checked through the real CLI; `<case>.expected.json` holds:
  "args":      extra command-line arguments (optional; fixtures sharing args run together)
  "exit_code": the expected exit code
  "findings":  [{target, framework, dtype, code, kind, severity, range: [low, high], ...}]
               compared as a multiset on the keys given (any finding field, plus "line"/"col"
               of its location, and "path": "op line:col -> ..." from culprit to output);
               numbers compare value for value in the finding's dtype (see conftest.short);
               an entry with "varies_by_host": "why" may be absent (see HOST below)
  "errors":    [{target, framework, contains}] targets that could not be checked
  "skipped":   [{target, contains}] discovered targets that are not activations as they
               stand, with their reasons (every skipped target must be listed)
  "no_verified_suggestion": {target: "why"} (optional) targets whose where-leaks and
               overflows gradsafe cannot rewrite; every other such finding (FIXABLE, error or
               warning) must carry a verified suggestion

Fixtures in the groups of batch.BATCHED (many small cases) are checked with one CLI call
per set of args, in float32 and float16 (tests/batch.py says why): each case is the part of
that report whose targets come from its file, and its exit code is computed from those
targets the way the CLI computes it; the call's own exit code must be the union of its
parts'.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from batch import expected as _expected
from batch import is_batched, run_batch
from batch import source as _source
from conftest import FIXTURES, ROOT, run_json, short

from gradsafe.model.codes import CODES

CASES = sorted(p for p in FIXTURES.rglob("*.expected.json"))
SEVERITIES = ("error", "warning", "info")
# where-leaks and overflows: gradsafe must offer a verified rewrite for each of them
FIXABLE = {c.code for c in CODES if c.fixable}
NUMBERS = ("example_input", "forward", "gradient", "boundary")
# A golden finding marked {"varies_by_host": "why"} is what a framework kernel's vector path
# decides (Intel and AMD hosts differ, and so do short tails and full vectors): the result of
# a built-in at x = +-inf that its formula does not fix (torch's float16 gelu(+inf) is NaN on
# one x86-64 host, inf on another). It may be reported or not; everything else is asserted
# exactly. Only info findings at x = +-inf may be so marked (test_host_marks_are_narrow).
HOST = "varies_by_host"


@cache
def _run_single(rel: str, args: tuple[str, ...]) -> tuple[int, dict[str, Any]]:
    return run_json("check", rel, *args)


def case_exit_code(targets: list[dict[str, Any]], fail_on: str) -> int:
    limit = SEVERITIES.index(fail_on)
    code = 0
    for t in targets:
        if t["status"] == "error":
            code |= 2
        if any(SEVERITIES.index(f["severity"]) <= limit for f in t["findings"]):
            code |= 1
    return code


def _run_case(case: Path, args: tuple[str, ...]) -> tuple[int, dict[str, Any]]:
    rel = str(_source(case).relative_to(ROOT))
    if not is_batched(case):
        return _run_single(rel, args)
    code, report = run_batch(args)
    per_file: dict[str, list[dict[str, Any]]] = {}
    for t in report["targets"]:
        per_file.setdefault(t["file"] or t["name"], []).append(t)
    fail_on = report["options"]["fail_on"]
    union = 0
    for targets in per_file.values():
        union |= case_exit_code(targets, fail_on)
    assert code == union, f"batch exit code {code}, cases give {union}"
    mine = per_file.get(rel, [])
    assert mine, f"{rel} gave no target"
    return case_exit_code(mine, fail_on), {**report, "targets": mine}


def _project(target: dict[str, Any], finding: dict[str, Any], keys: list[str]) -> tuple[Any, ...]:
    row = []
    n = finding["dtype"]
    for k in keys:
        if k == "target":
            row.append(target["name"])
        elif k == "range":
            row.append((short(finding["range"]["low"], n), short(finding["range"]["high"], n)))
        elif k == "order":  # absent in the JSON for first-order findings
            row.append(finding.get("order", 1))
        elif k in ("line", "col", "end_col"):
            row.append((finding["location"] or {}).get(k))
        elif k == "path":  # "exp 9:76 -> - 9:76 -> where 9:54": op, line, column per step
            row.append(" -> ".join(f"{s['op']} {s['location']['line']}:{s['location']['col']}"
                                   for s in finding["path"]))
        elif k in NUMBERS:
            row.append(short(finding[k], n))
        else:
            row.append(finding[k])
    return tuple(row)


def _golden(f: dict[str, Any], k: str) -> Any:
    """A golden's value as it is compared: numbers as the dtype's shortest decimal, so a
    golden may write the short form (11.09) or the exact one (11.09375)."""
    n = f.get("dtype")
    if k == "range":
        return tuple(short(v, n) if n else v for v in f[k])
    return short(f[k], n) if n and k in NUMBERS else f[k]


def _dtype_value(value: float, dtype: str) -> float:
    """value parsed as the dtype (numpy and ml_dtypes, not gradsafe's own bit arithmetic)."""
    import ml_dtypes

    np_dtype = {"bfloat16": ml_dtypes.bfloat16}.get(dtype, dtype)
    return float(np.array(value, dtype=np.float64).astype(np_dtype))


def finding_numbers(report: dict[str, Any]) -> list[tuple[str, str, float]]:
    """(where, dtype, value) for every finite number a report gives in a finding's dtype."""
    found = [f for t in report["targets"] for f in t["findings"]]
    found += [s["finding"] for s in report.get("suppressed", [])]
    found += [f for c in report.get("comparisons", []) for f in c["findings"]]
    out = []
    for f in found:
        values = {k: f[k] for k in NUMBERS}
        values |= {f"range.{k}": v for k, v in f["range"].items()}
        for k, v in values.items():
            if isinstance(v, str):
                assert v in ("inf", "-inf", "nan"), (k, v)
            else:
                out.append((k, f["dtype"], v))
    return out


def assert_exact_numbers(report: dict[str, Any]) -> None:
    """Each number read back as float64 is the dtype's value itself (11.09375, never the
    float16 shortest decimal 11.09, which a float64 reader takes for another number)."""
    wrong = [(k, n, v, back) for k, n, v in finding_numbers(report)
             if (back := _dtype_value(v, n)) != v
             or math.copysign(1, back) != math.copysign(1, v)]
    assert not wrong, wrong[:5]


def test_host_marks_are_narrow() -> None:
    """A host mark cannot hide a finding at a finite input, or an error or warning."""
    marked = [(c.name, f) for c in CASES for f in _expected(c).get("findings", []) if HOST in f]
    assert marked  # torch's gelu(+inf), see fixtures/builtins/torch_functional.py
    for name, f in marked:
        assert f["severity"] == "info" and f["range"][0] == f["range"][1], (name, f)
        assert f["range"][0] in ("inf", "-inf") and f[HOST].strip(), (name, f)


# The goldens of the fast tier (`pytest -m "not slow"`): one case per stage and framework
# that a change is likely to break (a where-leak with its rewrite in torch and JAX, TensorFlow,
# located causes, a hand-written backward, a constructor grid, the float64 rule, bad input,
# order 2). Every other golden is marked slow; the full suite runs them all.
FAST = {"seed000/elu_where_torch", "seed000/elu_where_jax", "where_elu/elu_tf",
        "causes/gradient_torch", "custom_grad/torch_custom", "params/grid_torch",
        "float64_rule/domain_torch", "errors/syntax_error", "errors/import_error",
        "order2/torch_once"}


def _tier(case: Path) -> Any:
    rel = str(case.relative_to(FIXTURES)).removesuffix(".expected.json")
    return pytest.param(case, id=str(case.relative_to(FIXTURES)),
                        marks=() if rel in FAST else pytest.mark.slow)


def test_fast_goldens_exist() -> None:
    names = {str(c.relative_to(FIXTURES)).removesuffix(".expected.json") for c in CASES}
    assert FAST <= names, sorted(FAST - names)


@pytest.mark.parametrize("case", [_tier(c) for c in CASES])
def test_fixture(case: Path) -> None:
    exp = _expected(case)
    args = tuple(exp.get("args", []))
    code, report = _run_case(case, args)
    assert code == exp["exit_code"], json.dumps(report["targets"], indent=1)[:4000]
    assert_exact_numbers(report)
    targets = report["targets"]
    want = exp.get("findings", [])
    keys = sorted({k for f in want for k in f} - {HOST}) or [
        "target", "framework", "dtype", "code"]
    got = Counter(_project(t, f, keys) for t in targets for f in t["findings"])
    rows = [(tuple(_golden(f, k) for k in keys), HOST in f) for f in want]
    expected = Counter(row for row, varies in rows if not varies)
    optional = Counter(row for row, varies in rows if varies)
    extra = got - expected
    assert not expected - got and not extra - optional, (
        f"keys {keys}\n got: {sorted(got.elements(), key=repr)}\n"
        f"want: {sorted(expected.elements(), key=repr)}\n"
        f"may vary by host: {sorted(optional.elements(), key=repr)}")
    errors = [t for t in targets if t["status"] == "error"]
    want_errors = exp.get("errors", [])
    assert len(errors) == len(want_errors), [t["error"] for t in errors]
    for w in want_errors:
        match = [t for t in errors if t["name"] == w["target"]
                 and t["framework"] == w.get("framework", t["framework"])]
        assert match, (w, errors)
        assert w["contains"] in match[0]["error"], match[0]["error"]
        assert "\n" not in match[0]["error"]
    skipped = sorted((t["name"], t.get("reason", "")) for t in targets
                     if t["status"] == "skipped")
    want_skipped = exp.get("skipped", [])
    assert [n for n, _ in skipped] == sorted(w["target"] for w in want_skipped), skipped
    for w in want_skipped:
        reason = next(r for n, r in skipped if n == w["target"])
        assert w["contains"] in reason and "\n" not in reason, reason
    unfixable = exp.get("no_verified_suggestion", {})
    missing = [(t["name"], t["framework"], f["dtype"], f["code"], f["suggestion"])
               for t in targets if t["name"] not in unfixable for f in t["findings"]
               if f["code"] in FIXABLE and f["severity"] != "info"
               and not (f["suggestion"] or {}).get("verified")]
    assert not missing, missing[:3]
