"""A target's cost does not grow with its file: rewrites parse an excerpt (the file's simple
statements and what the target reaches) and splice the changed lines back; locate
instruments only what the target reaches. Both must give what the whole file gives."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest
from conftest import FIXTURES

from gradsafe.discover.reach import reached
from gradsafe.model.types import Target
from gradsafe.suggest import rewrite
from gradsafe.suggest.rewrite import _apply, _parse, excerpt

PAIRS = FIXTURES / "rewrite"
CASES = sorted(PAIRS.glob("*/*_before.py"))
# unrelated code around a definition: what a large real module holds besides it
FILLER = "".join(textwrap.dedent(f"""

    class Block{i}(object):
        scale = {i}

        def __init__(self, dim):
            self.dim = dim * {i}

        def forward(self, x):
            return helper{i}(x) + self.dim


    def helper{i}(x):
        return x * {i}
    """) for i in range(40))


def _dialect(before: Path) -> str:
    prefix = before.name.split("_")[0]
    return {"kerasops": "keras_ops"}.get(prefix, prefix)


def _names(source: str) -> list[str]:
    return [s.name for s in ast.parse(source).body
            if isinstance(s, (ast.FunctionDef, ast.ClassDef))]


@pytest.mark.parametrize("before", CASES, ids=[f"{p.parent.name}-{p.stem}" for p in CASES])
def test_excerpt_rewrites_as_the_whole_file_does(before: Path) -> None:
    transform, framework = before.parent.name, _dialect(before)
    for source in (before.read_text(), before.read_text() + FILLER):
        for name in _names(source)[-1:]:  # the pair's target
            narrow = [[transform, rewrite.NARROW]] if transform in rewrite.GUARDING else []
            for names in [[transform], *narrow]:
                whole = _apply(_parse(source), framework, names, name, source)
                assert rewrite.apply(source, framework, names, name) == whole, (name, names)


def test_a_large_file_gets_the_same_diff_as_the_definition_alone() -> None:
    before = PAIRS / "guard_where" / "torch_before.py"
    alone = before.read_text()
    big = FILLER + "\n\n" + alone + FILLER
    name = _names(alone)[-1]
    new_alone, used = rewrite.apply(alone, "torch", ["guard_where"], name)
    new_big, used_big = rewrite.apply(big, "torch", ["guard_where"], name)
    assert used == used_big == ("guard_where",)
    part = excerpt(big, name)
    assert part is not None and len(part.text) < len(alone) + 200  # not the filler
    assert new_big == FILLER + "\n\n" + new_alone + FILLER
    # the copy that verification imports: the same line numbers, the filler left out
    sparse = rewrite.importable(new_big)
    assert sparse.count("\n") == new_big.count("\n")
    assert "Block3" not in sparse and f"def {name}" in sparse
    compile(sparse, "copy.py", "exec")


def test_reached_follows_names_transitively() -> None:
    tree = ast.parse(textwrap.dedent("""
        import torch
        SCALE = 2.0

        def unrelated(x):
            return x

        def inner(x):
            return torch.exp(x) * SCALE

        @jax_rule
        def act(x):
            return inner(x)

        act.defvjp(fwd, bwd)

        def fwd(x):
            return act(x), x

        def bwd(res, g):
            return (g,)

        def jax_rule(f):
            return f
    """))
    got = [getattr(s, "name", None) or ast.unparse(s).split("\n")[0]
           for s in reached(tree, "act") or []]
    assert got == ["SCALE = 2.0", "inner", "act", "act.defvjp(fwd, bwd)", "fwd", "bwd",
                   "jax_rule"]
    assert reached(tree, "missing") is None


def test_locate_instruments_only_what_the_target_reaches(tmp_path: Path) -> None:
    from gradsafe.locate.trace import instrument

    f = tmp_path / "acts.py"
    f.write_text("import torch\n\nLOADS = []\nLOADS.append(1)\n" + FILLER
                 + "\n\ndef elu(x):\n    return torch.where(x > 0, x, torch.exp(x) - 1)\n")
    traced = instrument(Target("elu", str(f), None, "function", ("torch",)))
    assert traced is not None
    assert {s.line for s in traced.sites} == {len(f.read_text().splitlines())}
    # module code that the target does not reach ran once, at import, not again
    assert traced.obj.__globals__["LOADS"] == [1]
