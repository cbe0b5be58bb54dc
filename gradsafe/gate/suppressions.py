"""Read `# gradsafe: ignore[GS101, GS102]` comments from a source file.

Comments are found with `tokenize`, so a `# gradsafe: ignore` inside a string literal is not a
suppression. A comment applies to the line it is on; filters.py matches it against a target's
def/class line and against a finding's culprit line.
"""

from __future__ import annotations

import io
import re
import tokenize
from functools import cache
from pathlib import Path

from gradsafe.model.types import Suppression

# searched inside one COMMENT token, so it may follow another tool's directive on the line
_DIRECTIVE = re.compile(r"gradsafe:\s*ignore(?![\w-])(?:\[(?P<codes>[^\]]*)\])?")


def parse_comment(comment: str) -> tuple[str, ...] | None:
    """The codes a comment suppresses: () for a bare ignore, None when it is no directive."""
    m = _DIRECTIVE.search(comment)
    if m is None:
        return None
    raw = m.group("codes")
    if raw is None:
        return ()
    codes = tuple(dict.fromkeys(c.strip().upper() for c in raw.split(",") if c.strip()))
    return codes


@cache
def read(path: str) -> tuple[Suppression, ...]:
    """Every suppression comment in a file, in line order (none if it cannot be tokenized)."""
    try:
        source = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ()
    if _DIRECTIVE.search(source) is None:  # most files: no need to tokenize them
        return ()
    found: list[Suppression] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                codes = parse_comment(tok.string)
                if codes is not None:
                    found.append(Suppression(path, tok.start[0], codes))
    except (tokenize.TokenError, SyntaxError):
        return tuple(found)
    return tuple(found)


def by_line(path: str) -> dict[int, Suppression]:
    return {s.line: s for s in read(path)}
