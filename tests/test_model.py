"""The data model's rules, written once: a finding fails at or above --fail-on, and a
report's exit code has bit 1 for such findings and bit 2 for what could not be checked."""

from __future__ import annotations

import itertools

import pytest

from gradsafe.model.codes import BRANCH_LEAK
from gradsafe.model.types import (
    SEVERITIES,
    Finding,
    Range,
    Report,
    Severity,
    TargetResult,
    fails,
)


def _finding(severity: Severity) -> Finding:
    return Finding(code=BRANCH_LEAK, kind="gradient", severity=severity, dtype="float32",
                   framework="torch", example_input=100.0, forward=100.0, gradient=float("nan"),
                   range=Range(88.7, 3.4e38), boundary=88.7, location=None, message="a where leaks")


@pytest.mark.parametrize(("severity", "fail_on"),
                         list(itertools.product(SEVERITIES, SEVERITIES)))
def test_a_finding_fails_at_or_above_fail_on(severity: Severity, fail_on: Severity) -> None:
    expected = {"error": 0, "warning": 1, "info": 2}
    assert _finding(severity).fails(fail_on) == (expected[severity] <= expected[fail_on])
    assert fails(severity, fail_on) == _finding(severity).fails(fail_on)


def _report(*targets: TargetResult, fail_on: Severity = "error",
            partial: bool = False) -> Report:
    return Report(targets, ("float32",), 1e4, fail_on, partial=partial)


def test_exit_code_bits() -> None:
    warn = TargetResult("f", "f.py", 1, "torch", "pass", None, (_finding("warning"),))
    broken = TargetResult("g", "f.py", 5, "torch", "error", "it raised")
    assert _report().exit_code == 0
    assert _report(warn).exit_code == 0
    assert _report(warn, fail_on="warning").exit_code == 1
    assert _report(broken).exit_code == 2
    assert _report(warn, broken, fail_on="info").exit_code == 3
    assert _report(partial=True).exit_code == 2
