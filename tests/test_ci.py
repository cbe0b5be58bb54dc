"""CI runs the README's test command and nothing besides it; the fast tier selects tests."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def _readme_command() -> str:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if "run the tests" in line)
    return next(line for line in lines[start:] if line.startswith("python3 -m venv"))


def test_ci_runs_the_readme_test_command() -> None:
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = [line for line in script.splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    assert commands == ["set -euo pipefail", 'cd "$(dirname "$0")/.."', _readme_command()]
    # without `|| true` or a pipe, pytest's exit code (5 included: nothing collected) is CI's


def test_fast_tier_selects_tests_and_leaves_the_rest() -> None:
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m",
                           "not slow", "tests/test_fixtures.py"], capture_output=True,
                          text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:]
    last = proc.stdout.strip().splitlines()[-1]
    picked, total = (int(n) for n in last.split(" tests collected")[0].split("/"))
    assert 0 < picked < total, last


def test_slow_modules_exist() -> None:
    from conftest import SLOW_MODULES

    assert all((ROOT / "tests" / f"{m}.py").is_file() for m in SLOW_MODULES), SLOW_MODULES
