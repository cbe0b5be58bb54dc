"""The import contract (.importlinter): the pipeline's stages depend one way, reporters and
the gate never import a stage that computes. `lint-imports` checks it on the real package."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

CONTRACT = ROOT / ".importlinter"


def _lint_imports(config: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(exe), "--config", str(config), "--no-cache"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_the_import_contract_is_kept() -> None:
    proc = _lint_imports(CONTRACT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def test_every_stage_is_a_layer() -> None:
    """A new folder or top-level module cannot sit outside the contract."""
    parser = configparser.ConfigParser()
    parser.read(CONTRACT)
    layers = parser["importlinter:contract:layers"]["layers"]
    named = {name.strip() for line in layers.splitlines() for name in line.split("|")
             if name.strip()}
    package = ROOT / "gradsafe"
    stages = {f"gradsafe.{p.name}" for p in package.iterdir()
              if p.is_dir() and (p / "__init__.py").exists()}
    modules = {f"gradsafe.{p.stem}" for p in package.glob("*.py")
               if p.stem not in ("__init__", "__main__")}
    assert stages | modules == named


def test_a_violation_fails(tmp_path: Path) -> None:
    """The contract can fail: the same layers upside down are broken."""
    parser = configparser.ConfigParser()
    parser.read(CONTRACT)
    section = parser["importlinter:contract:layers"]
    lines = [line for line in section["layers"].splitlines() if line.strip()]
    section["layers"] = "\n" + "\n".join(reversed(lines))
    section["ignore_imports"] = ""
    upside_down = tmp_path / "contract.ini"
    with upside_down.open("w") as fh:
        parser.write(fh)
    proc = _lint_imports(upside_down)
    assert proc.returncode != 0 and "BROKEN" in proc.stdout, proc.stdout + proc.stderr
