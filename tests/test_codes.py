"""The code table: unique, documented, explained per framework, and each code produced by a
fixture. Also: one definition written in torch, TensorFlow and JAX (fixtures/causes) gets the
same code and the same culprit expression in each.

Everything here reads files and the code table; the fixtures themselves are run (and their
expected findings, lines and columns checked) by test_fixtures.py."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import pytest
from conftest import FIXTURES, ROOT

from gradsafe.cli import explain_text
from gradsafe.locate.trace import CODES_LOCATED
from gradsafe.model import codes as table
from gradsafe.model.codes import ADVICE, BY_CODE, CODES, REWRITE_CODES, TORCH_WHERE_ISSUE
from gradsafe.suggest.rewrite import TRANSFORMS

# codes `gradsafe check` cannot produce on a fixture: the comparison of ports (issue 8)
NOT_FROM_CHECK = {"GS401", "GS402"}
FRAMEWORKS = ("torch", "tensorflow", "jax")


def _expected_findings() -> list[tuple[Path, dict[str, object]]]:
    out = []
    for path in sorted(FIXTURES.rglob("*.expected.json")):
        for f in json.loads(path.read_text()).get("findings", []):
            if "code" in f:  # some fixtures compare other keys only
                out.append((path, f))
    return out


def test_codes_are_unique_and_well_formed() -> None:
    codes = [c.code for c in CODES]
    names = [c.name for c in CODES]
    assert len(set(codes)) == len(codes) and len(set(names)) == len(names)
    assert all(re.fullmatch(r"GS[1-5]\d\d", c) for c in codes)
    assert codes == sorted(codes)


def test_named_constants_are_the_table() -> None:
    """Every code has one upper-case name in codes.py, and every such name is a code."""
    named = {v: k for k, v in vars(table).items()
             if k.isupper() and isinstance(v, str) and re.fullmatch(r"GS\d{3}", v)}
    assert sorted(named) == [c.code for c in CODES]
    for code, name in named.items():
        assert name == BY_CODE[code].name.replace("-", "_").upper()


def test_code_literals_stand_only_in_the_table() -> None:
    """The rest of the package names codes by their constants (a literal "GS102" elsewhere
    is a second place to change when the table changes)."""
    literal = re.compile(r"[\"']GS\d{3}[\"']")
    found = [f"{p.relative_to(ROOT)}:{i}" for p in sorted((ROOT / "gradsafe").rglob("*.py"))
             if p.name != "codes.py"
             for i, line in enumerate(p.read_text().splitlines(), 1) if literal.search(line)]
    assert not found, found


def test_every_codes_rewrites_exist_and_fix_it() -> None:
    for c in CODES:
        for name in c.rewrites:
            assert name in TRANSFORMS, (c.code, name)
            assert c.code in TRANSFORMS[name].fixes, (c.code, name)
        # a code rewrites may fix gets advice for when none verifies, and vice versa
        assert bool(c.rewrites) == bool(c.advice) == (c.code in ADVICE), c.code
        assert not c.fixable or c.rewrites, c.code


def test_every_rewrites_codes_exist_and_list_it() -> None:
    for name, t in TRANSFORMS.items():
        assert t.name == name and t.fixes, name
        for code in t.fixes:
            assert code in BY_CODE, (name, code)
            assert name in BY_CODE[code].rewrites, (name, code)
    assert REWRITE_CODES == {code for t in TRANSFORMS.values() for code in t.fixes}


@pytest.mark.parametrize("code", [c.code for c in CODES])
def test_every_code_is_documented(code: str) -> None:
    c = BY_CODE[code]
    assert c.summary and len(c.explanation) > 60 and c.before and c.after
    table = (ROOT / "docs" / "codes" / "index.md").read_text()
    assert f"| [{code}]({code.lower()}.md) | {c.name} |" in table, f"{code} not in docs/codes"
    text = explain_text(c)
    assert text.startswith(f"{code} {c.name}\n") and c.explanation.split()[0] in text


@pytest.mark.parametrize("code", CODES_LOCATED)
def test_cause_codes_have_examples_in_every_framework(code: str) -> None:
    c = BY_CODE[code]
    assert tuple(e.framework for e in c.examples) == FRAMEWORKS
    text = explain_text(c)
    for title in ("PyTorch", "TensorFlow", "JAX"):
        assert f"{title} before:" in text and f"{title} after:" in text
    for e in c.examples:
        assert e.before != e.after


def test_branch_leak_links_the_upstream_discussions() -> None:
    links = " ".join(BY_CODE["GS101"].links)
    assert TORCH_WHERE_ISSUE in links and "github.com/pytorch/pytorch/issues/68425" in links
    assert "faq.html#gradients-contain-nan-where-using-where" in links
    assert "tensorflow.org/api_docs/python/tf/where" in links


def test_every_code_has_a_fixture_that_produces_it() -> None:
    produced = {str(f["code"]) for _, f in _expected_findings()}
    missing = {c.code for c in CODES} - produced - NOT_FROM_CHECK
    assert not missing, f"no fixture expects {sorted(missing)}"
    assert produced <= set(BY_CODE), produced - set(BY_CODE)


def test_cause_codes_are_covered_in_at_least_two_frameworks() -> None:
    seen: dict[str, set[str]] = defaultdict(set)
    for _, f in _expected_findings():
        seen[str(f["code"])].add(str(f.get("framework")))
    for code in CODES_LOCATED:
        assert len(seen[code] & set(FRAMEWORKS)) >= 2, (code, seen[code])


def test_cause_fixtures_assert_line_and_column() -> None:
    for path, f in _expected_findings():
        if path.parent.name == "causes":
            assert isinstance(f.get("line"), int) and isinstance(f.get("col"), int), (path, f)


_PREFIX = re.compile(r"\b(torch|tf\.math|tf|jnp)\.")


def _culprit(source: Path, f: dict[str, object]) -> str:
    """The underlined expression, with the framework's module prefix removed."""
    line = source.read_text().splitlines()[int(str(f["line"])) - 1]
    text = line[int(str(f["col"])) - 1:int(str(f["end_col"])) - 1]
    text = text.replace("tf.cast(x > 0, x.dtype)", "(x > 0).astype(x.dtype)")
    return _PREFIX.sub("", text)


@pytest.mark.parametrize("group", ["gradient", "forward"])
def test_same_definition_same_code_and_culprit_in_each_framework(group: str) -> None:
    per_framework: dict[str, set[tuple[str, str, str, int, str]]] = {}
    for fw, suffix in (("torch", "torch"), ("tensorflow", "tf"), ("jax", "jax")):
        exp = FIXTURES / "causes" / f"{group}_{suffix}.expected.json"
        source = exp.with_name(f"{group}_{suffix}.py")
        rows = set()
        for f in json.loads(exp.read_text())["findings"]:
            if f["code"] == "GS104":  # the integer casts differ in spelling, not in place
                rows.add((f["target"], f["code"], f["severity"], f["line"], "cast"))
                continue
            rows.add((f["target"], f["code"], f["severity"], f["line"], _culprit(source, f)))
        per_framework[fw] = rows
    assert per_framework["torch"] == per_framework["tensorflow"] == per_framework["jax"]
    # the chain from culprit to output: the same operations on the same lines everywhere
    chains = {fw: sorted(" ".join(step.split(" ")[0] + "@" + step.split(" ")[1].split(":")[0]
                                  for step in str(f.get("path", "")).split(" -> ") if step)
                         for f in json.loads((FIXTURES / "causes" / f"{group}_{sfx}.expected.json"
                                              ).read_text())["findings"])
              for fw, sfx in (("torch", "torch"), ("tensorflow", "tf"), ("jax", "jax"))}
    assert chains["torch"] == chains["tensorflow"] == chains["jax"]
    if group == "gradient":
        assert "exp@15 -@15 where@16" in chains["torch"]  # split_elu: where on the next line
    culprits = {r[4] for r in per_framework["torch"]}
    assert "exp(x)" in culprits and "x * x" in culprits
