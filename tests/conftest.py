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


def pytest_configure(config: pytest.Config) -> None:
    """Tests never read or fill the user's result cache: one fresh directory per test
    process (in-process engine runs and CLI subprocesses inherit it)."""
    os.environ["GRADSAFE_CACHE_DIR"] = tempfile.mkdtemp(prefix="gradsafe-test-cache-")


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(os.environ.get("GRADSAFE_CACHE_DIR", ""), ignore_errors=True)


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


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT
