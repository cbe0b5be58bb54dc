"""GitHub Actions workflow commands: one annotation per finding, shown on the PR diff.

`::error file=F,line=L,col=C,endLine=..,endColumn=..,title=GS101::message`; warning and notice
for the lower severities. Escaping follows the runner's rules: in the message `%`, CR and LF
become %25, %0D, %0A; property values also escape `:` and `,`. Paths are relative to the
project root, which in a workflow is normally the checkout (the repository root).
"""

from __future__ import annotations

from gradsafe.gate.baseline import relative_path
from gradsafe.model.codes import BY_CODE
from gradsafe.model.types import Finding, Report, TargetResult
from gradsafe.numerics.floats import describe_range, info

_COMMAND = {"error": "error", "warning": "warning", "info": "notice"}


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(name: str, props: dict[str, str | int], message: str) -> str:
    inner = ",".join(f"{k}={escape_property(str(v))}" for k, v in props.items())
    return f"::{name} {inner}::{escape_data(message)}" if inner else \
        f"::{name}::{escape_data(message)}"


def _finding(t: TargetResult, f: Finding, root: str) -> str:
    props: dict[str, str | int] = {}
    loc = f.location
    file = loc.file if loc is not None else t.file
    if file is not None:
        props["file"] = relative_path(file, root)
        if loc is not None:
            props.update(line=loc.line, endLine=max(loc.end_line, loc.line), col=loc.col,
                         endColumn=loc.end_col)
        elif t.line is not None:
            props["line"] = t.line
    props["title"] = f.code
    bad = describe_range(f.range.low, f.range.high, info(f.dtype), f.dtype)
    message = (f"{BY_CODE[f.code].name} in {t.name} ({f.framework}, {f.dtype}, bad inputs "
               f"{bad}): {f.message}")
    if f.suggestion is not None:
        state = "verified" if f.suggestion.verified else "unverified"
        message += f"\nSuggestion ({state}): {f.suggestion.title}\n{f.suggestion.diff}"
    return command(_COMMAND[f.severity], props, message)


def _error(t: TargetResult, root: str) -> str:
    props: dict[str, str | int] = {}
    if t.file is not None:
        props["file"] = relative_path(t.file, root)
        if t.line is not None:
            props["line"] = t.line
    props["title"] = "gradsafe: could not check"
    return command("error", props, f"could not check {t.name} "
                                   f"({t.framework or 'no framework'}): {t.error}")


def render(report: Report, color: bool = False) -> str:
    lines = []
    for t in report.targets:
        if t.status == "error":
            lines.append(_error(t, report.root))
        lines.extend(_finding(t, f, report.root) for f in t.findings)
    return "".join(line + "\n" for line in lines)
