"""Rewrites as before/after pairs: fixtures/rewrite/<transform>/<framework>_{before,after}.py.

Pure libcst: no framework is imported. Every transform has a pair in torch, TensorFlow and
JAX, and applying the transform to `before` gives exactly `after` (comments and layout of
untouched code included)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import FIXTURES

from gradsafe import rewrite
from gradsafe.model import FRAMEWORKS

PAIRS = FIXTURES / "rewrite"
CASES = sorted(PAIRS.glob("*/*_before.py"))


def _after(before: Path) -> Path:
    return before.with_name(before.name.replace("_before", "_after"))


def test_every_transform_has_a_pair_per_framework() -> None:
    have = {(p.parent.name, p.name.split("_")[0]) for p in CASES}
    want = {(t, fw) for t in rewrite.TRANSFORMS for fw in FRAMEWORKS}
    assert want <= have, sorted(want - have)
    assert all(_after(p).is_file() for p in CASES)


@pytest.mark.parametrize("before", CASES, ids=[f"{p.parent.name}-{p.stem}" for p in CASES])
def test_pair(before: Path) -> None:
    transform, framework = before.parent.name, before.name.split("_")[0]
    source = before.read_text()
    new, used = rewrite.apply(source, framework, [transform])
    assert used == (transform,)
    expected = _after(before).read_text().replace(
        f'"""{transform}: after."""', f'"""{transform}: before."""', 1)
    assert new == expected
    compile(new, str(before), "exec")
    # nothing to do twice for the formula rewrites: the pattern is gone
    if transform in rewrite.FORMULAS:
        assert rewrite.apply(new, framework, [transform])[1] == ()


def test_only_the_named_definition_changes() -> None:
    source = (PAIRS / "guard_where" / "torch_before.py").read_text()
    two = source + "\n\ndef other(x):\n    return torch.where(x > 0, x, torch.exp(x) - 1)\n"
    new, _ = rewrite.apply(two, "torch", ["guard_where"], target="other")
    assert new.count("torch.where(x > 0, 0.0, x)") == 1
    assert new.split("def other")[0] == two.split("def other")[0]


def test_unknown_target_and_bad_source() -> None:
    with pytest.raises(rewrite.RewriteError):
        rewrite.apply("def f(x):\n    return x\n", "torch", ["guard_where"], target="g")
    with pytest.raises(rewrite.RewriteError):
        rewrite.apply("def f(x) return x\n", "torch", ["guard_where"])


def test_missing_import_is_added() -> None:
    # Trax style: jnp is fastmath.numpy; sigmoid needs `import jax`
    source = ("from trax import fastmath\n\njnp = fastmath.numpy\n\n\n"
              "def swish(x):\n    return x / (1 + jnp.exp(-x))\n")
    new, _ = rewrite.apply("from trax import fastmath\n\njnp = fastmath.numpy\n\n\n"
                           "def swish(x):\n    return x * (1 / (1 + jnp.exp(-x)))\n",
                           "jax", ["sigmoid"])
    assert "import jax\n" in new and "x * jax.nn.sigmoid(x)" in new
    assert rewrite.apply(source, "jax", ["sigmoid"])[1] == ()
