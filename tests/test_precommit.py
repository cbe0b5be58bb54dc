"""The pre-commit hook, run by pre-commit itself, offline.

`.pre-commit-hooks.yaml` says `language: python`, so pre-commit would build a virtualenv and
pip-install gradsafe with numpy, rich and libcst from the network. Tests must run offline, so
the test hands `pre-commit try-repo` a throwaway hook repository whose manifest is ours with
only `language: system` changed (the same id, entry, types), and puts a `gradsafe` command that
runs this checkout on PATH. Everything else (file selection, passing file names, exit codes)
is pre-commit's real behaviour. The manifest itself is validated with pre-commit's own schema.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, cli_env

MANIFEST = ROOT / ".pre-commit-hooks.yaml"
PRE_COMMIT = shutil.which("pre-commit", path=str(Path(sys.executable).parent)) or \
    shutil.which("pre-commit")

BAD = "import torch\n\n\ndef elu(x):\n    return torch.where(x > 0, x, torch.exp(x) - 1)\n"
GOOD = ("import torch\n\n\ndef elu(x):\n"
        "    return torch.where(x > 0, x, torch.expm1(torch.where(x > 0, 0.0, x)))\n")

pytestmark = pytest.mark.skipif(PRE_COMMIT is None, reason="pre-commit is not installed")


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c",
                    "commit.gpgsign=false", *args], cwd=cwd, check=True, capture_output=True)


def test_manifest_is_valid() -> None:
    proc = subprocess.run([str(PRE_COMMIT), "validate-manifest", str(MANIFEST)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [hook] = yaml.safe_load(MANIFEST.read_text())
    assert (hook["id"], hook["entry"], hook["language"], hook["types"]) == (
        "gradsafe", "gradsafe check", "python", ["python"])


def test_try_repo_runs_the_hook_offline(tmp_path: Path) -> None:
    hooks = tmp_path / "hookrepo"
    hooks.mkdir()
    manifest = MANIFEST.read_text()
    assert manifest.count("language: python") == 1
    (hooks / ".pre-commit-hooks.yaml").write_text(
        manifest.replace("language: python", "language: system"))
    _git(hooks, "init", "-q")
    _git(hooks, "add", ".")
    _git(hooks, "commit", "-qm", "hooks")

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "gradsafe"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m gradsafe "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)

    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text('[tool.gradsafe]\ndtypes = ["float32"]\n')
    (project / "bad_act.py").write_text(BAD)
    (project / "good_act.py").write_text(GOOD)
    (project / "notes.txt").write_text("not python\n")
    _git(project, "init", "-q")
    _git(project, "add", ".")

    env = cli_env()
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PRE_COMMIT_HOME"] = str(tmp_path / "cache")

    def try_repo(*files: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(PRE_COMMIT), "try-repo", str(hooks), "gradsafe",
                               "--verbose", "--files", *files], cwd=project, env=env,
                              capture_output=True, text=True, timeout=600)

    bad = try_repo("bad_act.py", "notes.txt")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "gradsafe" in bad.stdout and "Failed" in bad.stdout
    assert "- exit code: 1" in bad.stdout
    assert "GS101" in bad.stdout and "x >= 88.72284" in bad.stdout
    assert "(dtypes float32;" in bad.stdout  # the project's [tool.gradsafe] was used

    good = try_repo("good_act.py", "notes.txt")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "Passed" in good.stdout and "1 checked, 0 failed" in good.stdout
