"""Start, feed, time out and restart worker processes; one lane per framework, in parallel.

A worker that hangs is killed at the time limit and one that crashes (segfault, out of
memory) is noticed by its closed pipe; either way the job at hand becomes an error result
and a fresh worker takes the next job.
"""

from __future__ import annotations

import dataclasses
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

from gradsafe.model.types import Options, Target, TargetResult
from gradsafe.run import codec, server
from gradsafe.run.cache import default_dir
from gradsafe.run.interrupt import INTERRUPTED
from gradsafe.suggest.policy import SUGGEST_BUDGET

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


def threads_per_worker(workers: int) -> int:
    """Compute threads for each worker: the cores shared among the workers, and one when the
    machine is already busy. Measured on a shared 2-core CI box under load: two spinning
    OpenMP threads per worker made torch 10 to 100 times slower than one thread."""
    cpus = os.cpu_count() or 1
    threads = max(1, cpus // max(workers, 1))
    try:
        if os.getloadavg()[0] >= cpus:
            threads = 1
    except OSError:
        pass
    return threads


def worker_env(threads: int, device: str = "cpu",
               compile_cache: str | None = None) -> dict[str, str]:
    """The environment of a worker; the user's own thread settings win. A CPU worker sees no
    GPU (JAX and TensorFlow would otherwise pick one up by themselves). compile_cache: where
    JAX keeps compiled XLA programs between runs (None: it does not)."""
    env = dict(os.environ)
    if compile_cache is not None:
        # eager JAX compiles every primitive for every shape and dtype (tens of ms each):
        # that was most of a JAX check, and it is the same from run to run
        env.setdefault("JAX_COMPILATION_CACHE_DIR", compile_cache)
        env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
        env.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
        env["JAX_PLATFORMS"] = "cpu"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env.setdefault("PYTHONUNBUFFERED", "1")
    n = str(threads)
    env.setdefault("OMP_NUM_THREADS", n)  # torch (and NumPy's BLAS)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle threads sleep instead of spinning
    env.setdefault("TF_NUM_INTRAOP_THREADS", n)
    env.setdefault("TF_NUM_INTEROP_THREADS", n)
    if threads == 1 and "XLA_FLAGS" not in env:
        env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    return env


class Worker:
    def __init__(self, framework: str, threads: int = 1, device: str = "cpu",
                 compile_cache: str | None = None) -> None:
        self.framework = framework
        self.log: IO[bytes] = tempfile.TemporaryFile()
        env = worker_env(threads, device, compile_cache)
        forked = (server.fork_worker(framework, env, self.log, STARTUP_TIMEOUT)
                  if server.usable(framework, device) else None)
        self.proc: subprocess.Popen[str] | server.Forked = forked or subprocess.Popen(
            [sys.executable, "-m", "gradsafe.run.worker", framework],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=env,
            text=True, bufsize=1, start_new_session=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.version = ""
        self.checked: dict[str, Any] | None = None  # see request

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

    def request(self, payload: dict[str, Any], timeout: float,
                tick: Callable[[int, int], None] | None = None,
                suggest_timeout: float | None = None) -> dict[str, Any]:
        """Send one job and wait for its result; progress lines ({"progress": [done, all]})
        go to tick and restart the time limit, which bounds the time between them. A
        {"checked": result} line ends the check: the suggestion's verification that follows
        has its own limit, and `self.checked` keeps the result in case it fails."""
        assert self.proc.stdin is not None
        self.checked = None
        try:
            self.proc.stdin.write(json.dumps(payload) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise WorkerFailed(self._death()) from None
        doing = "checking"
        while True:
            reply = self._read(timeout, doing)
            if "checked" in reply:
                self.checked = reply["checked"]
                timeout, doing = suggest_timeout or timeout, "verifying a suggestion"
                continue
            if "progress" not in reply:
                return reply
            if tick is not None:
                done, total = reply["progress"]
                tick(int(done), int(total))

    def interrupt(self) -> None:
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGINT)
            except ProcessLookupError:
                pass

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


# another worker started by the pool costs a framework import: only worth it with work; one
# forked by a persistent worker (run/server.py) costs a fork
MIN_JOBS_PER_WORKER = 3
MIN_JOBS_PER_FORKED_WORKER = 1


Progress = Callable[[Job], None]
# (job, values done, values in all) while an exhaustive sweep runs
Ticks = Callable[[Job, int, int], None]


@dataclass
class _Shared:
    options: Options
    results: dict[int, TargetResult]
    versions: dict[str, str]
    progress: Progress | None
    ticks: Ticks | None
    stop: threading.Event
    workers: list[Worker]
    lock: threading.Lock
    threads: int = 1
    raw: dict[int, dict[str, Any]] | None = None


def suggest_timeout(options: Options) -> float:
    """Verification re-sweeps: gradsafe.suggest.propose stops starting new candidates after
    SUGGEST_BUDGET x --timeout; one more check's worth of time is the margin."""
    return options.timeout * (SUGGEST_BUDGET + 1)


def _compile_cache(options: Options) -> str | None:
    """JAX's compiled programs live beside the result cache, and not at all with --no-cache."""
    if not options.cache:
        return None
    return str(default_dir() / "xla")


def _lane(framework: str, jobs: queue.Queue[Job], shared: _Shared) -> None:
    """One worker: takes this framework's jobs from the shared queue until it is empty."""
    worker: Worker | None = None
    fatal: str | None = None
    payload_options = codec.encode(shared.options)
    while True:
        try:
            job = jobs.get_nowait()
        except queue.Empty:
            break
        t = job.target
        if shared.stop.is_set():
            shared.results[job.index] = TargetResult(t.label, t.file, t.line, framework,
                                                     "error", INTERRUPTED, variant=t.variant)
            continue
        if fatal is None and worker is None:
            worker = Worker(framework, shared.threads, shared.options.device,
                            _compile_cache(shared.options))
            with shared.lock:
                shared.workers.append(worker)
            try:
                worker.start()
                shared.versions[framework] = worker.version
            except WorkerFailed as exc:
                fatal = str(exc)
                worker.close()
                worker = None
        if fatal is not None or worker is None:
            if shared.stop.is_set():
                fatal = INTERRUPTED
            shared.results[job.index] = TargetResult(t.label, t.file, t.line, framework,
                                                     "error", fatal, variant=t.variant)
            continue

        def tick(done: int, total: int, job: Job = job) -> None:
            if shared.ticks:
                shared.ticks(job, done, total)

        try:
            reply = worker.request({"target": codec.encode(t), "options": payload_options,
                                    **(job.extra or {})}, shared.options.timeout, tick,
                                   suggest_timeout(shared.options))
            if job.extra is not None and shared.raw is not None:
                shared.raw[job.index] = reply["result"]
            else:
                shared.results[job.index] = codec.target_result(reply["result"])
        except WorkerFailed as exc:
            why = INTERRUPTED if shared.stop.is_set() else str(exc)
            if worker.checked is not None and not shared.stop.is_set():
                # checked, but verifying its suggestion failed: keep the check's result
                done = codec.target_result(worker.checked)
                shared.results[job.index] = dataclasses.replace(
                    done, notes=(*done.notes, f"no suggestion: {why}"))
            else:
                shared.results[job.index] = TargetResult(t.label, t.file, t.line, framework,
                                                         "error", why, variant=t.variant)
            worker.kill()
            worker.close()
            worker = None
        if shared.progress and job.extra is None:
            shared.progress(job)
    if worker is not None:
        worker.close()


def lane_sizes(counts: dict[str, int], jobs: int | None,
               per_worker: dict[str, int] | None = None) -> dict[str, int]:
    """Workers per framework: one each, then the rest of --jobs (default: the cores) to the
    frameworks with the most targets, never more than one per `per_worker[fw]` targets
    (default MIN_JOBS_PER_WORKER)."""
    total = jobs or os.cpu_count() or 1
    sizes = {fw: 1 for fw in counts}
    least = {fw: (per_worker or {}).get(fw, MIN_JOBS_PER_WORKER) for fw in counts}
    spare = total - len(sizes)
    while spare > 0:
        room = [fw for fw in counts if sizes[fw] * least[fw] < counts[fw]]
        if not room:
            break
        fw = max(room, key=lambda f: (counts[f] / sizes[f], f))
        sizes[fw] += 1
        spare -= 1
    return sizes


def run(jobs: list[Job], options: Options, progress: Progress | None = None,
        ticks: Ticks | None = None, raw: dict[int, dict[str, Any]] | None = None
        ) -> tuple[dict[int, TargetResult], dict[str, str]]:
    """Results by job index (deterministic whatever finishes first) and framework versions.

    Jobs with `extra` put their reply in `raw` instead; one that could not run still gets an
    error TargetResult.

    Ctrl-C stops the run: workers get SIGINT (an exhaustive sweep returns what it has swept,
    marked partial), jobs not started become INTERRUPTED errors. A second Ctrl-C kills."""
    by_framework: dict[str, queue.Queue[Job]] = {}
    counts: dict[str, int] = {}
    for job in jobs:
        by_framework.setdefault(job.framework, queue.Queue()).put(job)
        counts[job.framework] = counts.get(job.framework, 0) + 1
    shared = _Shared(options, {}, {}, progress, ticks, threading.Event(), [],
                     threading.Lock(), raw=raw)
    finished = threading.Semaphore(0)

    def lane(fw: str) -> None:
        try:
            _lane(fw, by_framework[fw], shared)
        finally:
            finished.release()

    sizes = lane_sizes(counts, options.jobs, {
        fw: MIN_JOBS_PER_FORKED_WORKER for fw in counts if server.usable(fw, options.device)})
    shared.threads = threads_per_worker(sum(sizes.values()))
    threads = [threading.Thread(target=lane, args=(fw,), daemon=True)
               for fw, n in sizes.items() for _ in range(n)]
    for th in threads:
        th.start()
    waiting = [len(threads)]
    try:
        _join(waiting, finished)
    except KeyboardInterrupt:
        shared.stop.set()
        with shared.lock:
            for w in shared.workers:
                w.interrupt()
        try:
            _join(waiting, finished)
        except KeyboardInterrupt:
            with shared.lock:
                for w in shared.workers:
                    w.kill()
            _join(waiting, finished)
    return shared.results, shared.versions


def _join(running: list[int], finished: threading.Semaphore) -> None:
    """Wait until running[0] lanes have finished, counting down (so a wait cut short by
    Ctrl-C can resume). Not Thread.join: a KeyboardInterrupt inside join can leave the
    thread looking finished while it runs on (CPython 3.11), and the interrupted sweep's
    partial result would be lost."""
    while running[0] > 0:
        if finished.acquire(timeout=0.2):
            running[0] -= 1
