"""Terminal report: one block per target, a compact table of ranges, a summary line."""

from __future__ import annotations

import io
import shutil
from itertools import groupby
from pathlib import Path

from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from gradsafe.model.codes import BY_CODE, FRAMEWORK_DISAGREEMENT, NO_GRADIENT, PARAMETER_GRADIENT
from gradsafe.model.types import (
    REPEATS_NOTE,
    Comparison,
    Difference,
    Finding,
    Location,
    PairRow,
    Report,
    TargetResult,
)
from gradsafe.numerics.floats import describe_range, display, info

_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def _range_text(f: Finding) -> str:
    return describe_range(f.range.low, f.range.high, info(f.dtype), f.dtype)


def _example(f: Finding) -> str:
    n = f.dtype
    return (f"x={display(f.example_input, n)}  f={display(f.forward, n)}  "
            f"{'f' + chr(39) * f.order}={display(f.gradient, n)}")


def _where(t: TargetResult) -> str:
    if t.file is None:
        return "built-in"
    return f"{t.file}:{t.line}" if t.line else t.file


def _unchecked(r: TargetResult) -> str | None:
    """'all' when nothing of a passing result was checked (a configuration its class
    rejects), 'some' when a dtype was not (no kernel), else None: its notes say so."""
    if any(n.startswith("not checked") for n in r.notes):
        return "all"
    if any(": not checked" in n.split(" (")[0] for n in r.notes):
        return "some"
    return None


def _pass_mark(results: list[TargetResult]) -> tuple[str, str]:
    """✓ only for what was checked: '-' when nothing was, '~' when only a part was."""
    states = [_unchecked(r) for r in results]
    if all(s == "all" for s in states):
        return "-", "dim"
    if any(states):
        return "~", "bold yellow"
    return "✓", "bold green"


def _block(console: Console, results: list[TargetResult], show_info: bool,
           verbose: bool = False) -> None:
    head = results[0]
    failed = [r for r in results if r.status == "fail"]
    errored = [r for r in results if r.status == "error"]
    mark, style = ("✗", "bold red") if failed else (("!", "bold magenta") if errored
                                                    else _pass_mark(results))
    fws = ", ".join(r.framework or "?" for r in results)
    line = Text()
    line.append(f"{mark} ", style=style)
    line.append(head.name, style="bold")
    line.append(f"  {_where(head)}  ", style="dim")
    line.append(fws)
    console.print(line)
    for r in errored:
        console.print(Text(f"    error ({r.framework or 'no framework'}): {r.error}",
                           style="magenta"))
    findings = [f for r in results for f in r.findings]
    hidden = [f for f in findings if f.severity == "info" and not show_info]
    findings = [f for f in findings if f not in hidden]
    for r in results:
        for note in r.notes:
            console.print(Text(f"    note ({r.framework}): {note}", style="dim"))
    if hidden:
        # info is mostly +-inf inputs; listed with --fail-on info, always in JSON
        console.print(Text(f"    {len(hidden)} info finding{'s' * (len(hidden) != 1)} "
                           "(e.g. NaN at x = ±inf) not listed; --fail-on info lists them",
                           style="dim"))
    if not findings:
        return
    table = Table(box=None, padding=(0, 1), show_header=True, header_style="dim",
                  pad_edge=False)
    for col in ("", "code", "framework", "dtype", "what", "bad inputs", "example"):
        table.add_column(col, no_wrap=col not in ("bad inputs", "example"))
    for f in findings:
        what = f"{f.kind} {'NaN' if f.kind == 'gradient' and f.gradient != f.gradient else ''}"
        if f.code.startswith("GS30"):  # hand-written backward: NaN there means "none returned"
            what = "backward"
        if f.order == 2:  # --order 2: about f'', whose value the gradient field holds
            what = ("dθ f' " if f.code == PARAMETER_GRADIENT else "f'' ") + (
                "none" if f.code == NO_GRADIENT else _nan_or_inf(f.gradient))
        table.add_row(Text(f.severity, style=_STYLE[f.severity]), f.code, f.framework,
                      f.dtype, what.strip(), _range_text(f), _example(f))
    console.print(table)
    for code in sorted({f.code for f in findings}):
        c = BY_CODE[code]
        console.print(Padding(Text(f"{code} {c.name}: {c.summary}", style="dim"),
                              (0, 0, 0, 4), expand=False))
    if verbose:
        _details(console, findings)
        return
    _causes(console, findings)
    _suggestions(console, findings)


def _nan_or_inf(v: float) -> str:
    return "NaN" if v != v else "inf"


def _causes(console: Console, findings: list[Finding]) -> None:
    """Per culprit: where (file:line:col), the source line underlined, the first message."""
    groups: dict[tuple[str, Location | None, int], list[Finding]] = {}
    for f in findings:
        groups.setdefault((f.code, f.location, f.order), []).append(f)
    for (code, loc, order), group in groups.items():
        first = group[0]
        seen = ", ".join(dict.fromkeys(f"{f.framework} {f.dtype}" for f in group))
        if loc is not None:
            at = f"{code} (second derivative)" if order == 2 else code
            head = Text(f"    {at} at {loc.file}:{loc.line}:{loc.col}", style="bold")
            head.append(f"  ({seen})", style="dim")
            console.print(head)
            for line in underline(loc):
                console.print(line)
        console.print(Padding(Text(first.message), (0, 0, 0, 6), expand=False))


def underline(loc: Location) -> list[Text]:
    """The culprit's first source line with the expression underlined (^^^)."""
    try:
        lines = Path(loc.file).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    if not 1 <= loc.line <= len(lines):
        return []
    src = lines[loc.line - 1].rstrip()
    indent = len(src) - len(src.lstrip())
    start = max(loc.col - 1, indent)
    end = loc.end_col - 1 if loc.end_line == loc.line else len(src)
    end = min(max(end, start + 1), len(src))
    num = str(loc.line)
    gutter = " " * (len(num) + 6)
    code_line = Text(f"      {num} | ", style="dim")
    code_line.append(src[indent:start])
    code_line.append(src[start:end], style="bold red")
    code_line.append(src[end:])
    marks = Text(f"{gutter} | ", style="dim")
    marks.append(" " * (start - indent) + "^" * (end - start), style="bold red")
    return [code_line, marks]


def _details(console: Console, findings: list[Finding]) -> None:
    """--verbose: every distinct message with its place, then each suggestion once."""
    seen: set[str] = set()
    for f in findings:
        where = (f" ({f.location.file}:{f.location.line}:{f.location.col})" if f.location
                 else "")
        text = f"    {f.code} {f.framework} {f.dtype}: {f.message}{where}"
        if text not in seen:
            seen.add(text)
            console.print(Text(text))
    _suggestions(console, findings)


def _suggestions(console: Console, findings: list[Finding]) -> None:
    """Each distinct suggestion once: its status, title and diff (advice has no diff)."""
    seen: set[tuple[str, str]] = set()
    for f in findings:
        s = f.suggestion
        if s is None or (s.title, s.diff) in seen:
            continue
        seen.add((s.title, s.diff))
        if not s.diff:
            console.print(Padding(Text(f"hint: {s.title}", style="dim"), (0, 0, 0, 4),
                                  expand=False))
            continue
        state = "verified" if s.verified else "not verified"
        console.print(Padding(Text(f"suggestion ({state}): {s.title}",
                                   style="green" if s.verified else "yellow"), (0, 0, 0, 4),
                              expand=False))
        for line in s.diff.rstrip().splitlines():
            style = "green" if line.startswith("+") else ("red" if line.startswith("-")
                                                          else "dim")
            console.print(Text(f"      {line}", style=style))


def _suppressed(console: Console, report: Report) -> None:
    """--show-suppressed: what comments and the baseline hid, and every bare ignore."""
    if report.suppressed:
        console.print(Text(f"\nsuppressed ({len(report.suppressed)}):", style="bold"))
    for s in report.suppressed:
        f = s.finding
        if s.comment is not None:
            codes = f"[{', '.join(s.comment.codes)}]" if s.comment.codes else ""
            why = f"by '# gradsafe: ignore{codes}' at line {s.comment.line}"
        else:
            why = "by the baseline"
        console.print(Text(f"    {f.code} {s.target}  {s.file or 'built-in'}:{s.line or ''}  "
                           f"{f.framework} {f.dtype} {f.kind}  {why}", style="dim"))
    bare = sorted({(s.comment.file, s.comment.line) for s in report.suppressed
                   if s.comment is not None and not s.comment.codes})
    for file, line in bare:
        console.print(Text(f"{file}:{line}: bare '# gradsafe: ignore' hides every code; "
                           "name them: '# gradsafe: ignore[GS101]'", style="yellow"))


def _skipped(console: Console, results: list[TargetResult]) -> None:
    """-v: what discovery found but is not a target as it stands, and why."""
    head = results[0]
    reasons = sorted({r.reason or "skipped" for r in results})
    line = Text()
    line.append("- ", style="dim")
    line.append(head.name)
    line.append(f"  {_where(head)}  skipped: {'; '.join(reasons)}", style="dim")
    console.print(line)


def render(report: Report, color: bool = False, *, quiet: bool = False, verbose: bool = False,
           show_suppressed: bool = False) -> str:
    """quiet: only targets with findings or errors, no summary; verbose: every message."""
    buf = io.StringIO()
    width = shutil.get_terminal_size((110, 24)).columns if color else 110
    console = Console(file=buf, force_terminal=color, no_color=not color, width=width,
                      color_system="standard" if color else None,
                      highlight=False, soft_wrap=False, emoji=False)
    key = lambda r: (r.file or "", r.line or 0, r.name)  # noqa: E731
    show_info = report.fail_on == "info" or verbose
    for _, group in groupby(report.targets, key=key):
        results = list(group)
        skipped = [r for r in results if r.status == "skipped"]
        results = [r for r in results if r.status != "skipped"]
        if verbose and skipped and not quiet:
            _skipped(console, skipped)
        if not results:
            continue
        if quiet and not any(r.status == "error" or any(
                f.severity != "info" or show_info for f in r.findings) for r in results):
            continue
        if not verbose and all(_only_repeats(r) for r in results):
            continue  # a grid value that brings nothing new: counted in the summary only
        _block(console, results, show_info, verbose)
    for c in report.comparisons:
        _comparison(console, c, verbose)
    if show_suppressed:
        _suppressed(console, report)
    if quiet:
        return _plain(buf.getvalue(), color)
    for note in report.notes:
        console.print(Text(f"note: {note}", style="dim"))
    if report.partial:
        console.print(Text("partial: the run was interrupted (Ctrl-C); what was not checked "
                           "is listed above", style="bold yellow"))
    if report.shard is not None:
        console.print(Text(f"shard {report.shard[0]}/{report.shard[1]} (join the shards' "
                           "JSON reports with gradsafe merge)", style="dim"))
    if report.comparisons:
        console.print(_compare_summary(report))
        return buf.getvalue()
    statuses = [t.status for t in report.targets]
    counts = {s: sum(f.severity == s for t in report.targets for f in t.findings)
              for s in ("error", "warning", "info")}
    summary = Text()
    code = report.exit_code
    summary.append("\n" if report.targets else "")
    # counts that add up: checked (passed or failed) + skipped + could not be checked
    checked = statuses.count("pass") + statuses.count("fail")
    summary.append(f"{checked} checked", style="bold")
    n_skipped = statuses.count("skipped")
    summary.append(f", {statuses.count('fail')} failed, "
                   + (f"{n_skipped} skipped{'' if verbose else ' (-v lists them)'}, "
                      if n_skipped else "")
                   + f"{statuses.count('error')} could not be checked; findings: "
                   f"{counts['error']} errors, "
                   f"{counts['warning']} warnings, {counts['info']} info "
                   f"(dtypes {', '.join(report.dtypes)}; range ±{report.operating_range:g}; "
                   f"exit {code})")
    if report.suppressed:
        by_baseline = sum(s.reason == "baseline" for s in report.suppressed)
        summary.append(f"; {len(report.suppressed)} suppressed ({by_baseline} by the baseline)")
    console.print(summary)
    return _plain(buf.getvalue(), color)


def _only_repeats(r: TargetResult) -> bool:
    return (r.status == "pass" and not r.findings and bool(r.notes)
            and all(n.endswith(REPEATS_NOTE) for n in r.notes))


def _plain(text: str, color: bool) -> str:
    """Without colour, no trailing blanks (rich pads table cells and wrapped lines)."""
    return text if color else "\n".join(line.rstrip() for line in text.split("\n"))


_ROW_STYLE = {"agree": "green", "kink": "cyan", "differ": "bold red", "error": "magenta"}


def _diff_text(d: Difference | None, dtype: str) -> str:
    if d is None:
        return "agree"
    return (f"{d.count} differ, max {display(d.max_diff, dtype)} at x={display(d.at, dtype)} "
            f"({display(d.a, dtype)} vs {display(d.b, dtype)})")


def _row_status(r: PairRow) -> str:
    if r.status == "kink":
        return f"kink ({r.kinks})"
    return r.status


def _comparison(console: Console, c: Comparison, verbose: bool) -> None:
    """`gradsafe compare`: a row per pair of sides and dtype, then the kink table."""
    bad = any(r.status == "differ" for r in c.rows)
    mark, style = ("✗", "bold red") if bad else (("!", "bold magenta") if c.errors
                                                 else ("✓", "bold green"))
    head = Text()
    head.append(f"{mark} ", style=style)
    head.append(f"compare {c.name}", style="bold")
    where = ", ".join(f"{s.label}" + (f" = {s.file}:{s.line}" if s.file else
                                      (f" = {s.name}" if s.label != s.name else ""))
                      for s in c.sides)
    head.append(f"  {where}", style="dim")
    console.print(head)
    for side, err in c.errors:
        console.print(Text(f"    error ({side}): {err}", style="magenta"))
    table = Table(box=None, padding=(0, 1), show_header=True, header_style="dim",
                  pad_edge=False)
    for col in ("dtype", "pair", "status", "forward", "gradient"):
        table.add_column(col, no_wrap=col in ("dtype", "pair", "status"))
    for r in c.rows:
        values = ("-", "-") if r.status == "error" else (_diff_text(r.forward, r.dtype),
                                                         _diff_text(r.gradient, r.dtype))
        table.add_row(r.dtype, f"{r.a} vs {r.b}", Text(_row_status(r), style=_ROW_STYLE[r.status]),
                      *values)
    console.print(table)
    if c.kinks:
        labels = [s.label for s in c.sides]
        console.print(Text("    kinks: f' where f is not smooth and the sides pick "
                           "different subgradients (GS402)", style="dim"))
        kt = Table(box=None, padding=(0, 1), show_header=True, header_style="dim",
                   pad_edge=False)
        for col in ("dtype", "x", "f'(x-)", "f'(x+)", *labels):
            kt.add_column(col, no_wrap=True)
        for k in c.kinks:
            got = dict(k.gradients)
            kt.add_row(k.dtype, display(k.x, k.dtype), display(k.left, k.dtype),
                       display(k.right, k.dtype),
                       *[display(got[label], k.dtype) if label in got else "-"
                         for label in labels])
        console.print(kt)
    shown = [f for f in c.findings if f.code == FRAMEWORK_DISAGREEMENT]
    for f in shown if verbose else shown[:2]:
        console.print(Text(f"    {f.code} {f.dtype}: {f.message}"))
    if len(shown) > 2 and not verbose:
        console.print(Text(f"    ... {len(shown) - 2} more GS401 findings (--format json "
                           "lists them all)", style="dim"))


def _compare_summary(report: Report) -> Text:
    rows = [r for c in report.comparisons for r in c.rows]
    counts = {s: sum(r.status == s for r in rows) for s in ("agree", "kink", "differ", "error")}
    text = Text("\n")
    text.append(f"{len(report.comparisons)} compared", style="bold")
    text.append(f", {len(rows)} pair rows: {counts['agree']} agree, {counts['kink']} differ only "
                f"at kinks, {counts['differ']} differ, {counts['error']} could not be "
                f"evaluated (dtypes {', '.join(report.dtypes)}; exit {report.exit_code})")
    return text
