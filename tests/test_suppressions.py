"""Suppression comments are read with tokenize; path globs and code selection for filters."""

from __future__ import annotations

from pathlib import Path

import pytest

from gradsafe.gate import suppressions
from gradsafe.gate.filters import path_matches, selected
from gradsafe.model.types import Options


@pytest.mark.parametrize(("comment", "codes"), [
    ("# gradsafe: ignore[GS101]", ("GS101",)),
    ("# gradsafe: ignore[gs101, GS202 ,GS101]", ("GS101", "GS202")),
    ("#gradsafe:ignore", ()),
    ("# noqa: E501  # gradsafe: ignore[GS103]", ("GS103",)),
    ("# gradsafe: ignore[]", ()),
    ("# gradsafe: ignored", None),
    ("# gradsafe: ignore-all", None),
    ("# mypy: ignore", None),
])
def test_parse_comment(comment: str, codes: tuple[str, ...] | None) -> None:
    assert suppressions.parse_comment(comment) == codes


def test_read_uses_tokens_not_lines(tmp_path: Path) -> None:
    src = tmp_path / "acts.py"
    src.write_text(
        'import torch\n'
        'DOC = "# gradsafe: ignore[GS101]"  # a string, not a comment\n'
        'def f(x):  # gradsafe: ignore[GS101, GS102]\n'
        '    s = """\n'
        '    # gradsafe: ignore\n'
        '    """\n'
        '    return torch.where(x > 0, x, torch.exp(x))  # gradsafe: ignore\n')
    found = suppressions.read(str(src))
    assert [(s.line, s.codes) for s in found] == [(3, ("GS101", "GS102")), (7, ())]


def test_unreadable_or_broken_files_have_no_suppressions(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("def f(x):  # gradsafe: ignore[GS101]\n    return (x\n")
    assert [(s.line, s.codes) for s in suppressions.read(str(broken))] == [(1, ("GS101",))]
    assert suppressions.read(str(tmp_path / "missing.py")) == ()


@pytest.mark.parametrize(("rel", "pattern", "hit"), [
    ("activations/experimental/wip.py", "experimental", True),
    ("activations/experimental/wip.py", "activations/experimental", True),
    ("activations/experimental/wip.py", "activations/experimental/", True),
    ("activations/legacy_mask.py", "activations/legacy_*.py", True),
    ("activations/legacy_mask.py", "legacy_*.py", True),
    ("activations/elu.py", "legacy_*.py", False),
    ("activations/elu.py", "./activations", True),
    ("src/activations/elu.py", "activations/elu.py", False),
    ("tests/a/b_test.py", "tests/*.py", True),
])
def test_path_matches(rel: str, pattern: str, hit: bool) -> None:
    assert path_matches(rel, pattern) is hit


def test_selected_codes(tmp_path: Path) -> None:
    opts = Options(select=("GS1", "GS202"), ignore=("GS103",),
                   per_file_ignores=(("legacy/*.py", ("GS101",)),), root=str(tmp_path))
    assert selected("GS101", str(tmp_path / "a.py"), opts)
    assert selected("GS202", str(tmp_path / "a.py"), opts)
    assert not selected("GS201", str(tmp_path / "a.py"), opts)  # not selected
    assert not selected("GS103", str(tmp_path / "a.py"), opts)  # ignored
    assert not selected("GS101", str(tmp_path / "legacy" / "old.py"), opts)
    assert selected("GS102", str(tmp_path / "legacy" / "old.py"), opts)
    assert selected("GS501", None, Options())


def test_culprit_line_comment_and_stale_def_line_comment(tmp_path: Path) -> None:
    """A finding located at its culprit expression is suppressed by a comment on that line;
    a comment on the def line that then matches nothing is reported as unused."""
    from gradsafe.gate.filters import apply
    from gradsafe.model.types import Finding, Location, Range, TargetResult

    src = tmp_path / "acts.py"
    src.write_text("import torch\n\n\n"
                   "def elu(x):  # gradsafe: ignore[GS102]\n"
                   "    e = torch.exp(x) - 1  # gradsafe: ignore[GS101]\n"
                   "    return torch.where(x > 0, x, e)\n")
    culprit = Location(str(src), 5, 9, 5, 21)
    finding = Finding(code="GS101", kind="gradient", severity="error", dtype="float32",
                      framework="torch", example_input=89.0, forward=89.0, gradient=float("nan"),
                      range=Range(88.72284, 3.4028235e38), boundary=88.72284, location=culprit,
                      message="gradient is NaN for x >= 88.72284 in float32")
    result = TargetResult("elu", str(src), 4, "torch", "fail", None, (finding,))
    out = apply([result], Options(root=str(tmp_path)))
    assert out.results[0].findings == () and out.results[0].status == "pass"
    [hidden] = out.suppressed
    assert hidden.comment is not None and (hidden.comment.line, hidden.comment.codes) == (
        5, ("GS101",))
    assert [(s.line, s.codes) for s in out.unused] == [(4, ("GS102",))]
