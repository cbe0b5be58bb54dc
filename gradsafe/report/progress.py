"""Progress of exhaustive sweeps on stderr (CLI side): a rich bar with throughput and ETA on
a terminal, a line every 10% otherwise (CI logs)."""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed / 1e6:6.1f} M values/s", style="cyan")


def _label(job: Any) -> str:
    t = getattr(job, "target", None)
    return f"{getattr(t, 'label', '?')} ({getattr(job, 'framework', '')}) float32"


class ExhaustiveProgress:
    """Pass `tick` to engine.check as `ticks`; use as a context manager around it."""

    def __init__(self, terminal: bool | None = None) -> None:
        self.terminal = sys.stderr.isatty() if terminal is None else terminal
        self.lock = threading.Lock()
        self.tasks: dict[int, Any] = {}
        self.reported: dict[int, int] = {}
        self.started: dict[int, tuple[float, int]] = {}
        self.bar: Progress | None = None
        if self.terminal:
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                TaskProgressColumn(), _Rate(), TextColumn("ETA"),
                                TimeRemainingColumn(), console=Console(stderr=True),
                                transient=False)

    def __enter__(self) -> ExhaustiveProgress:
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.bar is not None:
            self.bar.stop()

    def tick(self, job: Any, done: int, total: int) -> None:
        index = int(getattr(job, "index", 0))
        with self.lock:
            if self.bar is not None:
                if index not in self.tasks:
                    self.tasks[index] = self.bar.add_task(_label(job), total=total)
                self.bar.update(self.tasks[index], completed=done, total=total)
                return
            now = time.monotonic()
            if index not in self.reported:  # the first chunk: say it started
                self.started[index] = (now, done)
                self.reported[index] = done
                sys.stderr.write(f"exhaustive {_label(job)}: started ({total:,} values)\n")
                sys.stderr.flush()
                return
            if done < total and done - self.reported[index] < total // 10:
                return
            t0, done0 = self.started[index]
            rate = (done - done0) / max(now - t0, 1e-9)
            self.reported[index] = done
            eta = (total - done) / rate if rate > 0 else 0.0
            sys.stderr.write(f"exhaustive {_label(job)}: {100 * done / total:5.1f}% "
                             f"({done:,}/{total:,} values, {rate / 1e6:.1f} M values/s, "
                             f"ETA {eta:.0f} s)\n")
            sys.stderr.flush()
