"""The source instrumentation behind cause location, and the underlined culprit in the text
report. No framework runs here (fixtures/causes covers the traced runs on all three)."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

from gradsafe.locate.trace import instrument
from gradsafe.model.types import (
    Finding,
    Location,
    Range,
    Report,
    Target,
    TargetKind,
    TargetResult,
)
from gradsafe.report.text import render, underline

SOURCE = textwrap.dedent('''\
    SCALE = abs(-2.0)


    def act(x):
        negative = x.exp() - 1
        x.clamp_(min=-SCALE)
        return where(x > 0, x, negative)


    def where(c, a, b):
        return a if c else b
''')


class _Value(float):
    """Just enough of a tensor for `act`."""

    def exp(self) -> float:
        return math.exp(self)

    def clamp_(self, min: float) -> _Value:  # torch spells it min=
        return self


def test_every_operation_in_a_function_becomes_a_site(tmp_path: Path) -> None:
    path = tmp_path / "act.py"
    path.write_text(SOURCE)
    traced = instrument(Target("act", str(path), 4, TargetKind.FUNCTION, ("torch",)))
    assert traced is not None
    sites = {(s.name, s.line, s.col, s.end_col) for s in traced.sites}
    # module-level code (abs(-2.0)) is left alone; positions are 1-based, end exclusive
    assert sites == {("x.exp", 5, 16, 23), ("-", 5, 16, 27), ("x.clamp_", 6, 5, 25),
                     ("-x", 6, 18, 24), ("where", 7, 12, 37)}
    by_name = {s.name: s for s in traced.sites}
    assert by_name["where"].operands == ("x > 0", "x", "negative")
    assert by_name["x.exp"].text == "x.exp()"
    # outside a trace the taps are the identity: the instrumented function still runs
    assert traced.obj(_Value(3.0)) == 3.0 and traced.recorder.records == []


def test_a_file_that_does_not_parse_is_not_instrumented(tmp_path: Path) -> None:
    path = tmp_path / "bad.py"
    path.write_text("def act(x):\n    return x +\n")
    assert instrument(Target("act", str(path), 1, TargetKind.FUNCTION, ("torch",))) is None
    assert instrument(Target("torch.nn.functional.elu", None, None, TargetKind.BUILTIN,
                             ("torch",))) is None


def test_text_report_underlines_the_culprit(tmp_path: Path) -> None:
    path = tmp_path / "elu.py"
    path.write_text("import torch\n\n\ndef elu(x):\n"
                    "    return torch.where(x > 0, x, torch.exp(x) - 1)\n")
    loc = Location(str(path), 5, 34, 5, 46)
    lines = [t.plain for t in underline(loc)]
    assert lines[0].endswith("5 | return torch.where(x > 0, x, torch.exp(x) - 1)")
    caret = lines[1]
    assert caret.index("^") == lines[0].index("torch.exp") and caret.count("^") == 12
    finding = Finding(code="GS101", kind="gradient", severity="error", dtype="float32",
                      framework="torch", example_input=89.0, forward=89.0, gradient=float("nan"),
                      range=Range(88.72284, 3.4028235e38), boundary=88.72284, location=loc,
                      message="`torch.exp(x)` on line 5 overflows for x >= 88.72284 in float32.")
    report = Report((TargetResult("elu", str(path), 4, "torch", "fail", None, (finding,)),),
                    ("float32",), 1e4, "error")
    text = render(report)
    assert f"GS101 at {path}:5:34" in text and "^^^^^^^^^^^^" in text
    assert "overflows for x >= 88.72284 in float32" in text
