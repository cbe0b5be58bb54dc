"""ruff and mypy --strict are part of the test command."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def test_ruff_is_clean() -> None:
    dirs = [d for d in ("gradsafe", "tests", "benchmarks") if (ROOT / d).is_dir()]
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", *dirs],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict_is_clean() -> None:
    proc = subprocess.run([sys.executable, "-m", "mypy", "--strict", "gradsafe"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
