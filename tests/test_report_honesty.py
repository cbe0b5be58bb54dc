"""Honest reports (issue 16, point 7): a mark only for what was checked, counts that add up,
no warnings of gradsafe's own on stderr, clean diff headers, hints for unverified rewrites
that leave the cause alone."""

from __future__ import annotations

import json
import warnings

from conftest import ROOT, run_cli

from gradsafe.floats import display, shortest_repr
from gradsafe.model import Finding, Location, ParamSpec, Range, Report, Step, TargetResult
from gradsafe.report import text
from gradsafe.rewrite import unified_diff
from gradsafe.suggest import touches_cause
from gradsafe.variants import grid


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


def _finding(line: int, path_line: int | None = None) -> Finding:
    loc = Location("act.py", line, 5, line, 9)
    path = () if path_line is None else (Step("where", Location("act.py", path_line, 1,
                                                                 path_line, 9)),)
    return Finding("GS101", "gradient", "error", "float32", "torch", 89.0, 89.0, float("nan"),
                   Range(88.7, 3.4e38), 88.7, loc, "m", None, path)


def test_a_rewrite_touches_the_cause_or_is_only_a_hint() -> None:
    old = "def act(x):\n    y = exp(x)\n    z = x + 1\n    return where(x > 0, x, y)\n"
    new_elsewhere = old.replace("z = x + 1", "z = x + 2")
    new_culprit = old.replace("y = exp(x)", "y = exp(min(x, 0))")
    new_where = old.replace("return where(x > 0, x, y)", "return where(x > 0, x, y - 0)")
    r = TargetResult("act", "act.py", 1, "torch", "fail", None, (_finding(2, 4),))
    assert not touches_cause(r, "act.py", old, new_elsewhere)
    assert touches_cause(r, "act.py", old, new_culprit)
    assert touches_cause(r, "act.py", old, new_where)  # the where on the path counts
    # a finding located at the def line says nothing about where the cause is
    r0 = TargetResult("act", "act.py", 1, "torch", "fail", None, (_finding(1),))
    assert touches_cause(r0, "act.py", old, new_elsewhere)


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
