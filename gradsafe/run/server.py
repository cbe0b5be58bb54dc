"""The persistent worker: a process that has imported a framework once and forks a fresh
worker for each connection, so a run after the first skips the framework's import.

Importing torch, TensorFlow or JAX is most of a small run (1.4 s, 3 s, 0.5 s and more); the
pre-commit case checks one changed file and would pay it every time. The server imports the
framework and the worker's modules, listens on a Unix socket, and quits after
GRADSAFE_WORKER_IDLE seconds (default 600; 0 turns it off) without a connection.

Each connection gets a *supervisor* (forked from the server) that forks the worker proper
and, once it has ended, writes {"exited": status} on the connection: the pool learns exit
codes and signals as it does from a child of its own. The worker runs in its own session
with the client's environment, working directory and log file (passed over the socket),
speaks the worker protocol (gradsafe.run.worker) on the socket, and first sends its pid (for
SIGINT and SIGKILL). Forking keeps runs apart: no user module, seed or setting of one run
is seen by the next.

Only what a framework reads when it is imported is part of the server's key (see KEY_VARS):
the thread settings are read later, in the worker, from the client's environment.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import IO, Any

from gradsafe.run import worker
from gradsafe.run.cache import framework_versions, own_fingerprint

IDLE_VAR = "GRADSAFE_WORKER_IDLE"
DEFAULT_IDLE = 600.0
# environment read at import by each framework or by Python itself: a server serves clients
# whose values are the same (thread counts and XLA_FLAGS are read later, in each worker)
KEY_PREFIXES: dict[str, tuple[str, ...]] = {
    "torch": ("TORCH_", "OMP_WAIT_POLICY", "MKL_", "KMP_"),
    "tensorflow": ("TF_CPP_", "TF_ENABLE_", "TF_USE_"),
    "jax": ("JAX_", "XLA_PYTHON_")}
COMMON_PREFIXES = ("PYTHON", "LD_", "CUDA_", "KERAS_")
FRAMEWORKS = ("torch", "tensorflow", "jax")


def idle_seconds() -> float:
    raw = os.environ.get(IDLE_VAR, "")
    try:
        return max(0.0, float(raw)) if raw.strip() else DEFAULT_IDLE
    except ValueError:
        return DEFAULT_IDLE


def usable(framework: str, device: str) -> bool:
    """Linux only: macOS system libraries are not safe to use in a child forked after they
    were loaded (Python's multiprocessing stopped forking there for that reason). A GPU
    context must not be shared by forked children."""
    return (framework in FRAMEWORKS and device == "cpu" and sys.platform.startswith("linux")
            and idle_seconds() > 0)


def key(framework: str, env: dict[str, str]) -> str:
    h = hashlib.sha256()
    prefixes = (*COMMON_PREFIXES, *KEY_PREFIXES[framework])
    fixed = sorted((k, v) for k, v in env.items() if k.startswith(prefixes))
    h.update(json.dumps([sys.executable, sys.version, own_fingerprint(),
                         framework_versions(framework), framework, fixed]).encode())
    return h.hexdigest()[:20]


SOCKET_PATH_MAX = 100  # bytes: a Unix socket's path is limited to 104 (macOS) or 108


def socket_path(framework: str, env: dict[str, str]) -> Path:
    """In the temporary directory, or /tmp when that one's path is too long for a socket."""
    name = f"gradsafe-{os.getuid()}/{framework[:5]}-{key(framework, env)}.sock"
    path = Path(tempfile.gettempdir()) / name
    if len(os.fsencode(path)) > SOCKET_PATH_MAX:
        path = Path("/tmp") / name
    path.parent.mkdir(mode=0o700, exist_ok=True)
    return path


def _private(folder: Path) -> bool:
    """Ours and closed to others: a folder someone else made under that name could hand
    our runs to a server of theirs."""
    try:
        st = folder.stat()
    except OSError:
        return False
    return st.st_uid == os.getuid() and not st.st_mode & 0o077


# ---------------------------------------------------------------- client side (the pool)

_spawning: dict[str, threading.Lock] = {}
_spawning_lock = threading.Lock()
_servers: list[subprocess.Popen[bytes]] = []  # kept so they are not reaped as garbage


class _Input:
    """The worker's stdin: closing it ends the worker's input, as closing a pipe would."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.file = conn.makefile("w", encoding="utf-8", newline="\n")

    def write(self, text: str) -> int:
        return self.file.write(text)

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.file.close()
        with contextlib.suppress(OSError):
            self.conn.shutdown(socket.SHUT_WR)


class Forked:
    """A worker forked by a server, with the part of Popen's interface the pool uses."""

    def __init__(self, conn: socket.socket, log: IO[bytes], env: dict[str, str],
                 timeout: float) -> None:
        self.conn = conn
        header = json.dumps({"env": env, "cwd": os.getcwd()}) + "\n"
        socket.send_fds(conn, [b"L"], [log.fileno()])
        conn.sendall(header.encode())
        conn.settimeout(timeout)
        self._reader = conn.makefile("r", encoding="utf-8", newline="\n")
        first = self._reader.readline()
        conn.settimeout(None)
        hello = json.loads(first) if first.strip() else {}
        if "pid" not in hello:
            self.conn.close()
            raise OSError("the persistent worker did not start a worker")
        self.pid = int(hello["pid"])
        self.stdin = _Input(conn)
        self.returncode: int | None = None
        self._ended = threading.Event()
        self._killed = False

    @property
    def stdout(self) -> Any:
        return self._lines()

    def _lines(self) -> Any:
        try:
            for line in self._reader:
                if line.startswith('{"exited":'):
                    self.returncode = int(json.loads(line)["exited"])
                    break
                yield line
        except (OSError, ValueError):
            pass
        finally:
            if self.returncode is None:  # the server itself went away
                self.returncode = -signal.SIGKILL if self._killed else 1
            self._ended.set()

    def poll(self) -> int | None:
        return self.returncode if self._ended.is_set() else None

    def wait(self, timeout: float | None = None) -> int:
        if not self._ended.wait(timeout):
            raise subprocess.TimeoutExpired("gradsafe worker", timeout or 0.0)
        assert self.returncode is not None
        return self.returncode

    def kill(self) -> None:
        self._killed = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)


def _connect(path: Path) -> socket.socket | None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(str(path))
    except OSError:
        s.close()
        return None
    return s


def _spawn(framework: str, env: dict[str, str], path: Path) -> subprocess.Popen[bytes]:
    log = open(path.with_suffix(".log"), "ab")  # the server writes its errors there
    proc = subprocess.Popen(
        [sys.executable, "-m", "gradsafe.run.server", framework, str(path),
         str(idle_seconds())],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, env=env,
        start_new_session=True)  # the terminal's Ctrl-C is for the run, not the server
    log.close()
    _servers[:] = [p for p in _servers if p.poll() is None]  # reap those that quit
    _servers.append(proc)
    return proc


def fork_worker(framework: str, env: dict[str, str], log: IO[bytes],
                timeout: float) -> Forked | None:
    """A worker forked by this framework's server, started first if there is none; None
    when there cannot be one (the pool then starts a worker of its own)."""
    path = socket_path(framework, env)
    if not _private(path.parent):
        return None
    with _spawning_lock:
        lock = _spawning.setdefault(str(path), threading.Lock())
    with lock:  # one spawn per server, whatever the number of lanes
        conn = _connect(path)
        if conn is None:
            proc = _spawn(framework, env, path)
            deadline = time.monotonic() + timeout
            while conn is None and time.monotonic() < deadline:
                # read before connecting: a server that quit after another one won the race
                # for its key has left that one listening
                ended = proc.poll() is not None
                conn = _connect(path)
                if conn is None:
                    if ended:
                        return None  # it could not import the framework
                    time.sleep(0.02)
    if conn is None:
        return None
    try:
        return Forked(conn, log, env, timeout)
    except (OSError, ValueError):
        conn.close()
        return None


# ---------------------------------------------------------------- server side


def _preload(framework: str) -> None:
    """What gradsafe.run.worker.main imports, so that forked workers find it loaded."""
    os.environ["KERAS_BACKEND"] = framework if framework in ("torch", "jax") else "tensorflow"
    from gradsafe.backends import get_backend

    get_backend(framework)
    import gradsafe.check.sweep
    import gradsafe.run.codec
    import gradsafe.suggest.policy
    import gradsafe.suggest.propose  # noqa: F401


def _read_header(conn: socket.socket) -> tuple[dict[str, Any], int]:
    _, fds, _, _ = socket.recv_fds(conn, 1, 1)
    if len(fds) != 1:
        raise OSError("no log file")
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(65536)
        if not chunk:
            raise OSError("connection closed")
        data += chunk
    return json.loads(data), fds[0]


def _threads(framework: str) -> None:
    """The client's thread count, read by each framework at its first operation."""
    n = int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
    if n <= 0:
        return
    if framework == "torch":
        import torch

        torch.set_num_threads(n)
    elif framework == "tensorflow":
        import tensorflow as tf

        with contextlib.suppress(RuntimeError):
            tf.config.threading.set_intra_op_parallelism_threads(n)
            tf.config.threading.set_inter_op_parallelism_threads(n)


def _worker(conn: socket.socket, log_fd: int, header: dict[str, Any], framework: str) -> None:
    """In the forked worker: become the client's worker, then run the usual main."""
    code = 1
    try:
        os.setsid()
        os.dup2(conn.fileno(), 0)
        os.dup2(conn.fileno(), 1)
        os.dup2(log_fd, 2)
        conn.close()
        os.close(log_fd)
        sys.stdin = open(0, encoding="utf-8", closefd=False)
        sys.stdout = open(1, "w", encoding="utf-8", buffering=1, closefd=False)
        sys.stderr = open(2, "w", encoding="utf-8", buffering=1, closefd=False)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.environ.clear()
        os.environ.update(header["env"])
        os.chdir(header["cwd"])
        sys.path[0] = header["cwd"]  # as for `python -m gradsafe.run.worker` started there
        sys.argv = [str(Path(__file__).with_name("worker.py")), framework]
        _threads(framework)
        os.write(1, (json.dumps({"pid": os.getpid()}) + "\n").encode())
        code = worker.main([framework])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _supervise(conn: socket.socket, framework: str) -> None:
    """In the forked supervisor: fork the worker, wait for it, report how it ended."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the server ignores it; we wait
    try:
        header, log_fd = _read_header(conn)
    except (OSError, ValueError):
        os._exit(1)
    pid = os.fork()
    if pid == 0:
        _worker(conn, log_fd, header, framework)
    os.close(log_fd)
    _, status = os.waitpid(pid, 0)
    code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    with contextlib.suppress(OSError):
        conn.sendall((json.dumps({"exited": code}) + "\n").encode())
    conn.close()
    os._exit(0)


def serve(framework: str, path: Path, idle: float) -> int:
    lock = open(path.with_suffix(".lock"), "w")  # held, locked, for the server's life
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # another server has this key
    _preload(framework)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(64)
    listener.settimeout(idle)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # supervisors are reaped by the system
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        while True:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                break
            conn.settimeout(None)
            if os.fork() == 0:
                listener.close()
                _supervise(conn, framework)
            conn.close()
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        listener.close()
    return 0


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])))
