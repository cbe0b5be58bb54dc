"""The persistent worker (gradsafe/run/server.py), through the real CLI: a second run is
served by the server that the first one started, gives the same report as a run without
it, sees its own environment, and the server quits when idle."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import cli_env

from gradsafe.run import server

# exp(SCALE * x) overflows for x >= 88.72284 / SCALE in float32: SCALE comes from the
# environment at import, which the server must take from each run, not from the first
SOURCE = '''import os

import torch

SCALE = float(os.environ.get("GS_TEST_SCALE", "1"))


def scaled_softplus(x):
    return torch.log(1 + torch.exp(SCALE * x))
'''


def _run(path: Path, tmp: Path, **env: str) -> tuple[int, dict[str, object]]:
    environ = {**cli_env(), "TMPDIR": str(tmp), **env}
    proc = subprocess.run([sys.executable, "-m", "gradsafe", "check", str(path), "--no-cache",
                           "--dtype", "float32", "--no-suggest", "--format", "json"],
                          capture_output=True, text=True, env=environ, timeout=300)
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def _boundaries(report: dict[str, object]) -> list[float]:
    targets = report["targets"]
    assert isinstance(targets, list)
    return [f["boundary"] for t in targets for f in t["findings"] if f["severity"] == "error"]


def _sockets(tmp: Path) -> list[Path]:
    return sorted((tmp / f"gradsafe-{os.getuid()}").glob("torch-*.sock"))


def test_second_run_is_forked_from_the_server_and_matches(tmp_path: Path) -> None:
    target = tmp_path / "act.py"
    target.write_text(SOURCE)
    # short: the test's own temporary path is too long for a Unix socket
    sockdir = Path(tempfile.mkdtemp(prefix="gs-", dir="/tmp"))
    # without the persistent worker: the reference, and no server is left behind
    code0, plain = _run(target, sockdir, GRADSAFE_WORKER_IDLE="0")
    assert _sockets(sockdir) == []
    code1, first = _run(target, sockdir, GRADSAFE_WORKER_IDLE="8")
    assert len(_sockets(sockdir)) == 1  # the first run started the server...
    code2, second = _run(target, sockdir, GRADSAFE_WORKER_IDLE="8", GS_TEST_SCALE="2")
    assert len(_sockets(sockdir)) == 1  # ...which the second one used
    assert code0 == code1 == code2 == 1
    assert plain["targets"] == first["targets"]
    # the worker imported the file with this run's environment, not the server's
    assert _boundaries(first) == [88.72283935546875]
    assert _boundaries(second) == [44.361419677734375]
    deadline = time.monotonic() + 60
    while _sockets(sockdir) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _sockets(sockdir) == []  # it quit after 8 s without a connection
    shutil.rmtree(sockdir)


def test_socket_path_falls_back_to_tmp_when_too_long(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", "/tmp/" + "x" * 120)
    path = server.socket_path("torch", {})
    assert str(path).startswith("/tmp/gradsafe-") and len(os.fsencode(path)) <= 100


def test_a_folder_open_to_others_is_not_used(tmp_path: Path) -> None:
    folder = tmp_path / "sockets"
    folder.mkdir(mode=0o700)
    assert server._private(folder)
    folder.chmod(0o777)
    assert not server._private(folder)
