"""Which results get a suggestion, and how long verifying it may take.

Kept apart from `suggest` so that the pool and a worker with a clean target never import
libcst (about 0.1 s)."""

from __future__ import annotations

from gradsafe.model.codes import ADVICE
from gradsafe.model.types import TargetResult

# verification may take this many times --timeout after the check itself (the pool's
# separate limit for it is pool.suggest_timeout)
SUGGEST_BUDGET = 1.5


def wanted(result: TargetResult) -> bool:
    return result.file is not None and any(f.code in ADVICE for f in result.findings)
