"""Start, feed, time out and restart worker processes; one lane per framework, in parallel.

A worker that hangs is killed at the time limit and one that crashes (segfault, out of
memory) is noticed by its closed pipe; either way the job at hand becomes an error result
and a fresh worker takes the next job.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from gradsafe import codec
from gradsafe.model import Options, Target, TargetResult

STARTUP_TIMEOUT = 180.0


@dataclass(frozen=True)
class Job:
    index: int
    target: Target
    framework: str
    # extra request fields: {"op": "sample", "xs": ...} asks for raw values (compare, plots)
    # instead of a check; the reply is kept as it came, in `raw`
    extra: dict[str, Any] | None = field(default=None, compare=False)


class WorkerFailed(Exception):
    pass


class Worker:
    def __init__(self, framework: str) -> None:
        self.framework = framework
        self.log: IO[bytes] = tempfile.TemporaryFile()
        env = dict(os.environ)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gradsafe.worker", framework],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=env,
            text=True, bufsize=1, start_new_session=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.version = ""

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def start(self) -> None:
        reply = self._read(STARTUP_TIMEOUT, "starting")
        if "fatal" in reply:
            self.kill()
            raise WorkerFailed(str(reply["fatal"]))
        self.version = str(reply.get("ready", ""))

    def request(self, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(payload) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise WorkerFailed(self._death()) from None
        return self._read(timeout, "checking")

    def _read(self, timeout: float, doing: str) -> dict[str, Any]:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            raise WorkerFailed(f"timed out after {timeout:g} s while {doing}") from None
        if line is None:
            raise WorkerFailed(self._death())
        reply: dict[str, Any] = json.loads(line)
        return reply

    def _death(self) -> str:
        code = self.proc.wait()
        if code < 0:
            name = signal.Signals(-code).name
            hint = " (out of memory?)" if name == "SIGKILL" else ""
            return f"worker crashed with {name}{hint}"
        self.log.seek(0)
        tail = [ln for ln in self.log.read().decode(errors="replace").splitlines() if ln.strip()]
        last = tail[-1].strip() if tail else ""
        return f"worker exited with code {code}" + (f": {last}" if last else "")

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()

    def close(self) -> None:
        if self.proc.stdin:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
        self.log.close()


def _lane(framework: str, jobs: list[Job], options: Options,
          results: dict[int, TargetResult], versions: dict[str, str],
          progress: Callable[[Job], None] | None,
          raw: dict[int, dict[str, Any]] | None = None) -> None:
    worker: Worker | None = None
    fatal: str | None = None
    payload_options = codec.encode(options)
    for job in jobs:
        t = job.target
        if fatal is None and worker is None:
            worker = Worker(framework)
            try:
                worker.start()
                versions[framework] = worker.version
            except WorkerFailed as exc:
                fatal = str(exc)
                worker.close()
                worker = None
        if fatal is not None or worker is None:
            results[job.index] = TargetResult(t.label, t.file, t.line, framework, "error",
                                               fatal, variant=t.variant)
            continue
        try:
            reply = worker.request({"target": codec.encode(t), "options": payload_options,
                                    **(job.extra or {})}, options.timeout)
            if job.extra is not None and raw is not None:
                raw[job.index] = reply["result"]
            else:
                results[job.index] = codec.target_result(reply["result"])
        except WorkerFailed as exc:
            results[job.index] = TargetResult(t.label, t.file, t.line, framework, "error",
                                               str(exc), variant=t.variant)
            worker.kill()
            worker.close()
            worker = None
        if progress and job.extra is None:
            progress(job)
    if worker is not None:
        worker.close()


def run(jobs: list[Job], options: Options,
        progress: Callable[[Job], None] | None = None,
        raw: dict[int, dict[str, Any]] | None = None) -> tuple[dict[int, TargetResult],
                                                                dict[str, str]]:
    """Results by job index (deterministic whatever finishes first) and framework versions.

    Jobs with `extra` put their reply in `raw` instead; one that could not run still gets an
    error TargetResult."""
    by_framework: dict[str, list[Job]] = {}
    for job in jobs:
        by_framework.setdefault(job.framework, []).append(job)
    results: dict[int, TargetResult] = {}
    versions: dict[str, str] = {}
    threads = [threading.Thread(target=_lane, args=(fw, js, options, results, versions,
                                                    progress, raw), daemon=True)
               for fw, js in by_framework.items()]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return results, versions
