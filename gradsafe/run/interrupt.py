"""Ctrl-C without losing the work done: shared by the pool (CLI side) and the workers.

The pool forwards SIGINT to its workers (they run in their own session, so the terminal's
Ctrl-C reaches only the CLI). A worker in the middle of an exhaustive sweep finishes the chunk
at hand and returns what it has swept, with a note starting with PARTIAL_NOTE; any other work
is abandoned and reported as INTERRUPTED.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

INTERRUPTED = "interrupted (Ctrl-C) before this target was checked"
PARTIAL_NOTE = "partial:"

stop = threading.Event()  # set by SIGINT while a sweep that can stop early is running
_soft = threading.Event()  # such a sweep is running


def _handler(signum: int, frame: FrameType | None) -> None:
    if _soft.is_set():
        stop.set()
    else:
        raise KeyboardInterrupt


def install() -> None:
    signal.signal(signal.SIGINT, _handler)


class soft:
    """While inside, SIGINT sets `stop` instead of raising KeyboardInterrupt."""

    def __enter__(self) -> None:
        _soft.set()

    def __exit__(self, *exc: object) -> None:
        _soft.clear()


def is_partial(error: str | None, notes: tuple[str, ...]) -> bool:
    return error == INTERRUPTED or any(n.startswith(PARTIAL_NOTE) for n in notes)
