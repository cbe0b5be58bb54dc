"""Which results get a suggestion, and how long verifying it may take.

Kept apart from `suggest` so that the pool and a worker with a clean target never import
libcst (about 0.1 s)."""

from __future__ import annotations

from gradsafe.model.types import TargetResult

# codes a rewrite can remove; GS502 (a degenerate constructor value) too when the code
# already tests the parameter (`where(beta != 0, f(x) / beta, g(x))` gets the double where on
# beta), else it gets advice
REWRITE_CODES = frozenset({"GS101", "GS102", "GS103", "GS201", "GS202", "GS203", "GS501",
                           "GS502"})
ADVICE_CODES = REWRITE_CODES
# verification may take this many times --timeout after the check itself (the pool's
# separate limit for it is pool.suggest_timeout)
SUGGEST_BUDGET = 1.5


def wanted(result: TargetResult) -> bool:
    return result.file is not None and any(f.code in ADVICE_CODES for f in result.findings)
