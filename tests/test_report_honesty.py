"""Honest reports (issue 16, point 7): a mark only for what was checked, counts that add up,
no warnings of gradsafe's own on stderr, clean diff headers, hints for unverified rewrites
that leave the cause alone."""

from __future__ import annotations

import json
import warnings

from conftest import ROOT, run_cli

from gradsafe.discover.variants import grid
from gradsafe.model.types import ParamSpec, Report, TargetResult
from gradsafe.numerics.floats import display, shortest_repr
from gradsafe.report import text
from gradsafe.suggest.rewrite import unified_diff


def _report(*targets: TargetResult) -> str:
    return text.render(Report(targets, ("float32",), 1e4, "error"))


def _result(name: str, status: str = "pass", notes: tuple[str, ...] = (),
            error: str | None = None) -> TargetResult:
    return TargetResult(name, f"/src/{name}.py", 3, "torch", status,  # type: ignore[arg-type]
                        error, (), notes)


def test_a_check_mark_only_for_what_was_checked() -> None:
    out = _report(_result("ok"),
                  _result("rejected", notes=("not checked: Act rejects alpha=-1.0 (default "
                                             "1.0) (ValueError: alpha must be > 0)",)),
                  _result("half", notes=("float16: not checked: the framework has no float16 "
                                         "kernel here (RuntimeError: x)",)),
                  _result("broken", "error", error="raised ValueError: no"))
    lines = {line.split()[1]: line.split()[0] for line in out.splitlines()
             if line[:1] in "✓~-!✗" and len(line.split()) > 1}
    assert lines == {"ok": "✓", "rejected": "-", "half": "~", "broken": "!"}
    # checked + could not be checked = the 4 targets
    assert "3 checked, 0 failed, 1 could not be checked" in out


def test_diff_headers_of_absolute_paths_have_one_slash() -> None:
    diff = unified_diff("/home/me/act.py", "a = 1\n", "a = 2\n")
    assert diff.startswith("--- a/home/me/act.py\n+++ b/home/me/act.py\n")
    assert unified_diff("act.py", "a\n", "b\n").startswith("--- a/act.py\n+++ b/act.py\n")


def test_no_numpy_warnings_for_values_beyond_the_dtype() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert shortest_repr(131008.0, "float16") == "131008.0"  # a difference of two values
        assert display(1e300, "float32") == "1e+300"
        assert grid(ParamSpec("a", 1.0, "float", (1e300,)))[-2:] == [float("inf")] * 2


def test_cli_absolute_path_no_warnings_and_clean_diffs() -> None:
    path = str(ROOT / "fixtures" / "where_elu" / "elu_lambda.py")
    proc = run_cli("check", path, "--dtype", "float16", "--format", "json")
    assert proc.returncode in (0, 1), proc.stderr
    assert "Warning" not in proc.stderr, proc.stderr
    report = json.loads(proc.stdout)
    diffs = [f["suggestion"]["diff"] for t in report["targets"] for f in t["findings"]
             if f["suggestion"] and f["suggestion"]["diff"]]
    assert diffs
    for d in diffs:
        assert d.startswith(f"--- a{path}\n+++ b{path}\n") and "a//" not in d
