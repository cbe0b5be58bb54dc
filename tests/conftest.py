"""Shared helpers: run the real CLI in a subprocess, load fixture expectations."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
_SHARED_OWNER = pytest.StashKey[bool]()


def pytest_configure(config: pytest.Config) -> None:
    """Tests never read or fill the user's result cache: one fresh directory per test
    process (in-process engine runs and CLI subprocesses inherit it)."""
    os.environ["GRADSAFE_CACHE_DIR"] = tempfile.mkdtemp(prefix="gradsafe-test-cache-")
    # the suite's persistent workers (gradsafe/run/server.py) outlive it by a minute only
    os.environ.setdefault("GRADSAFE_WORKER_IDLE", "60")
    # one directory for the whole run, made by the controller before it starts the xdist
    # workers (they inherit it): batch reports shared between workers (tests/batch.py)
    if "GRADSAFE_TEST_SHARED" not in os.environ:
        os.environ["GRADSAFE_TEST_SHARED"] = tempfile.mkdtemp(prefix="gradsafe-test-shared-")
        config.stash[_SHARED_OWNER] = True


# Modules that run the CLI end to end over many files or frameworks: the full suite runs them,
# the fast tier (`pytest -m "not slow"`) does not; it keeps the unit tests, test_cli, the lint
# and docs checks and the ten goldens of test_fixtures.FAST.
SLOW_MODULES = frozenset({
    "test_builtins", "test_codebases", "test_compare", "test_fix", "test_float64_rule",
    "test_order2", "test_params", "test_precommit", "test_report_honesty", "test_rewrite_fix",
    "test_rows", "test_sample_project", "test_scale"})


# Tests of a minute or more on 2 cores: run first, so that under `-n 2` neither worker is left
# idle at the end while the other finishes one of them
LONGEST = ("test_rewrite_fix.py", "test_fix.py::test_fix_write_end_to_end", "test_builtins.py",
           "test_docs.py::test_before_has_the_code")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.stem in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
    # a stable sort: the same order in every xdist worker, which the scheduler requires
    items.sort(key=lambda item: not any(k in item.nodeid for k in LONGEST))


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(os.environ.get("GRADSAFE_CACHE_DIR", ""), ignore_errors=True)
    if config.stash.get(_SHARED_OWNER, False):
        shutil.rmtree(os.environ.pop("GRADSAFE_TEST_SHARED"), ignore_errors=True)


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env.pop("NO_COLOR", None)
    return env


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gradsafe", *args], capture_output=True,
                          text=True, cwd=cwd or ROOT, timeout=timeout, env=env or cli_env())


def run_json(*args: str, cwd: Path | None = None) -> tuple[int, dict[str, Any]]:
    proc = run_cli(*args, "--format", "json", cwd=cwd)
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def short(value: Any, dtype: str) -> Any:
    """A report number as goldens write it: the shortest decimal that is the same value in
    the dtype. Reports carry the exact float64 value of the dtype's number (88.72283935546875
    for float32's 88.72284); goldens stay readable and compare value for value."""
    from gradsafe.numerics.floats import shortest_repr

    return float(shortest_repr(value, dtype)) if isinstance(value, float) else value


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT
