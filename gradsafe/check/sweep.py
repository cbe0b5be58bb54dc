"""Check one target on one framework: the one entry point a worker calls.

Hand-written gradients go to gradcheck, everything else to the NaN/inf sweep of
`function.py`; both build on `common.py` (see docs/architecture.md).
"""

from __future__ import annotations

from gradsafe.backends.base import Backend
from gradsafe.check import function, gradcheck
from gradsafe.check.common import Forwards, resolve, result, sample, target_location
from gradsafe.check.exhaustive import Tick
from gradsafe.check.function import check
from gradsafe.model.types import Options, Target, TargetResult

# what callers use of the check stage (kept importable from here for code written before
# the helpers moved to common.py and function.py)
__all__ = ["Forwards", "check", "check_target", "resolve", "result", "sample",
           "target_location"]


def check_target(backend: Backend, target: Target, options: Options,
                 tick: Tick | None = None, seen: Forwards | None = None) -> TargetResult:
    """Dispatch by kind: hand-written gradients go to gradcheck, everything else is swept
    (`seen` collects the forward values, for verifying a suggestion afterwards)."""
    if gradcheck.is_custom(target):
        return gradcheck.check_custom(backend, target, options)
    return function.check(backend, target, options, tick=tick, seen=seen)
