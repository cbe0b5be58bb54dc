"""Rewrites as before/after pairs: fixtures/rewrite/<transform>/<framework>_{before,after}.py.

Pure libcst: no framework is imported. Every transform has a pair in torch, TensorFlow and
JAX, and applying the transform to `before` gives exactly `after` (comments and layout of
untouched code included)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import FIXTURES

from gradsafe.model.types import FRAMEWORKS
from gradsafe.suggest import rewrite

PAIRS = FIXTURES / "rewrite"
CASES = sorted(PAIRS.glob("*/*_before.py"))


def _after(before: Path) -> Path:
    return before.with_name(before.name.replace("_before", "_after"))


def _dialect(before: Path) -> str:
    """torch_before.py, torch_names_before.py -> torch; kerasops_... -> keras_ops."""
    prefix = before.name.split("_")[0]
    return {"kerasops": "keras_ops"}.get(prefix, prefix)


def test_every_transform_has_a_pair_per_framework() -> None:
    have = {(p.parent.name, _dialect(p)) for p in CASES}
    want = {(t, fw) for t in rewrite.TRANSFORMS for fw in FRAMEWORKS}
    assert want <= have, sorted(want - have)
    assert all(_after(p).is_file() for p in CASES)


@pytest.mark.parametrize("before", CASES, ids=[f"{p.parent.name}-{p.stem}" for p in CASES])
def test_pair(before: Path) -> None:
    transform, framework = before.parent.name, _dialect(before)
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
    # SiLU written as a quotient becomes a product with the sigmoid
    assert "return x * jax.nn.sigmoid(x)" in rewrite.apply(source, "jax", ["sigmoid"])[0]


@pytest.mark.parametrize(("dialect", "source", "expected"), [
    ("keras_ops", "from keras import ops\n\n\ndef elu(x):\n"
                  "    return ops.where(x > 0, x, ops.exp(x) - 1.0)\n",
     "ops.where(x > 0, x, ops.expm1(ops.where(x > 0, 0.0, x)))"),
    ("array_api", "def elu(x, xp):\n    return xp.where(x > 0, x, xp.exp(x) - 1.0)\n",
     "xp.where(x > 0, x, xp.expm1(xp.where(x > 0, 0.0, x)))"),
])
def test_portable_code_keeps_its_namespace(dialect: str, source: str, expected: str) -> None:
    new, used = rewrite.apply(source, dialect, ["expm1", "guard_where"])
    assert used == ("expm1", "guard_where") and expected in new


def test_an_operation_the_namespace_lacks_is_not_used() -> None:
    # the array API has no sigmoid: the rewrite does not apply rather than invent one
    source = "def swish(x, xp):\n    return x * (1 / (1 + xp.exp(-x)))\n"
    assert rewrite.apply(source, "array_api", ["sigmoid"]) == (source, ())


def test_sinc_names_its_guards_only_where_a_line_can_hold_them() -> None:
    source = ("import torch\n\nf = lambda x: torch.sin(x) / x\n\n\ndef g(x):\n"
              "    # keeps its comment\n    small = 2 * x\n"
              "    y = torch.sin(small) / small\n"
              "    return [torch.sin(v) / v for v in y]\n")
    new, used = rewrite.apply(source, "torch", ["sinc"])
    assert used == ("sinc",)
    compile(new, "<sinc>", "exec")
    lines = new.splitlines()
    # in a function: assignments before the statement, with names the function does not use
    assert lines[lines.index("    # keeps its comment") + 1] == "    small = 2 * x"
    assert "    near_zero = torch.abs(small) < 0.01" in lines
    assert "    small2 = torch.where(near_zero, small, 0.0)" in lines
    assert "    away = torch.where(near_zero, 1.0, small)" in lines
    assert "    y = torch.where(near_zero, 1.0 - small2 * small2 / 6.0 * (1.0 - small2 * small2 " \
           "/ 20.0), torch.sin(away) / away)" in lines
    # a lambda and a comprehension have variables a line before them cannot see: inline
    assert new.count("torch.where(torch.abs(x) < 0.01, x, 0.0)") == 4
    assert new.count("torch.where(torch.abs(v) < 0.01, 1.0, v)") == 2


@pytest.mark.parametrize(("framework", "source", "expected"), [
    ("torch", "import torch\n\n\ndef f(x):\n    return torch.where((x > -1) & (x < 1), "
              "torch.sqrt(1 - x * x), torch.exp(x) - 1)\n",
     "torch.where((x > -1) & (x < 1), torch.sqrt(1 - torch.where((x > -1) & (x < 1), x, 0.0) * "
     "torch.where((x > -1) & (x < 1), x, 0.0)), torch.exp(torch.where((x > -1) & (x < 1), -1.0, "
     "x)) - 1)"),
    ("tensorflow", "import tensorflow as tf\n\n\ndef f(x):\n    inside = (x < -2) | (x > 2)\n"
                   "    return tf.where(inside, tf.math.log(x * x - 4), 0.0)\n",
     "tf.where(inside, tf.math.log(tf.where(inside, x, -3.0) * tf.where(inside, x, -3.0) - 4), "
     "0.0)"),
    ("jax", "import jax.numpy as jnp\n\n\ndef f(x):\n    return jnp.where((x >= 0) & (x <= 2) "
            "& (x != 1), jnp.log(x), 0.0)\n",
     "jnp.log(jnp.where((x >= 0) & (x <= 2) & (x != 1), x, 0.0))"),
])
def test_guard_understands_intervals(framework: str, source: str, expected: str) -> None:
    new, used = rewrite.apply(source, framework, ["guard_where"])
    assert used == ("guard_where",) and expected in new, new


@pytest.mark.parametrize("cond", [
    "(x > 1) & (x < -1)",  # empty: no point inside
    "(x > 0) & (y < 1)",  # two inputs
    "(x > 0) & (x < alpha)",  # a bound that is not a number
])
def test_intervals_the_guard_cannot_place_a_point_in_are_left_alone(cond: str) -> None:
    source = (f"import torch\n\n\ndef f(x, y, alpha):\n"
              f"    return torch.where({cond}, torch.log(x), x)\n")
    assert rewrite.apply(source, "torch", ["guard_where"]) == (source, ())


def test_a_mask_the_rewrite_made_unread_goes_but_the_users_own_stay() -> None:
    source = ("import torch\n\n\ndef f(x):\n    unused = x > 5\n    mask = (x > 0).float()\n"
              "    return mask * x + (1 - mask) * (torch.exp(x) - 1)\n")
    new, used = rewrite.apply(source, "torch", ["mask_where", "guard_where"])
    assert used == ("mask_where",)
    assert "mask = " not in new  # only the rewritten return read it
    assert "    unused = x > 5\n" in new  # never read: not the rewrite's to remove


def test_narrow_guards_only_the_calls_that_need_one() -> None:
    source = ("import torch\n\n\ndef elish(x):\n"
              "    return torch.where(x >= 0, x * torch.sigmoid(x),"
              " (torch.exp(x) - 1) * torch.sigmoid(x))\n")
    narrow, used = rewrite.apply(source, "torch", ["expm1", "guard_where", rewrite.NARROW])
    assert used == ("expm1", "guard_where", rewrite.NARROW)
    assert "torch.where(x >= 0, x * torch.sigmoid(x), torch.expm1(torch.where(x >= 0, -1.0, x))" \
           " * torch.sigmoid(x))" in narrow
    full, used = rewrite.apply(source, "torch", ["expm1", "guard_where"])
    assert used == ("expm1", "guard_where")
    assert "torch.sigmoid(torch.where(x >= 0, -1.0, x))" in full
    # a branch with something it cannot judge (a helper, a division by the input) gets the
    # full guard; the other branch stays narrow
    helper = source.replace("1) * torch.sigmoid(x))", "1) * helper(x))")
    new = rewrite.apply(helper, "torch", ["guard_where", rewrite.NARROW])[0]
    assert "torch.where(x >= 0, x * torch.sigmoid(x), (torch.exp(torch.where(x >= 0, -1.0, x))" \
           " - 1) * helper(torch.where(x >= 0, -1.0, x)))" in new


def test_suggestions_try_the_narrow_guard_before_the_full_one() -> None:
    from gradsafe.suggest.propose import candidates

    source = ("import torch\n\n\ndef f(x):\n    return torch.where(x > 0, x * torch.tanh(x), "
              "torch.exp(x) * torch.tanh(x))\n")
    found = list(candidates(source, "torch", "f"))
    first, second = found[0][1], found[1][1]
    assert rewrite.NARROW in found[0][0] and rewrite.NARROW not in found[1][0]
    assert "torch.tanh(torch.where" not in first and "torch.tanh(torch.where" in second


@pytest.mark.parametrize(("before", "transforms", "after"), [
    ("torch.where(x > 0, x, x.exp() - 1)", ["expm1", "guard_where"],
     "torch.where(x > 0, x, torch.expm1(torch.where(x > 0, 0.0, x)))"),
    ("(1 + x.exp()).log()", ["softplus"], "torch.logaddexp(x, torch.zeros_like(x))"),
    ("x * (1 / (1 + (-x).exp()))", ["sigmoid"], "x * torch.sigmoid(x)"),
    ("x * x.exp().tanh()", ["saturate"], "x * torch.tanh(torch.exp(torch.clamp(x, max=3.0)))"),
    ("(x * x + 4).sqrt()", ["hypot"], "torch.hypot(x, torch.full_like(x, 2.0))"),
])
def test_torch_method_style_is_read_like_functions(before: str, transforms: list[str],
                                                   after: str) -> None:
    source = f"import torch\n\n\ndef f(x):\n    return {before}\n"
    new, used = rewrite.apply(source, "torch", transforms)
    assert used and f"    return {after}\n" in new, new


def test_methods_of_other_objects_are_not_framework_calls() -> None:
    # method style is read in torch code only (a JAX array has no .exp())
    source = "import jax.numpy as jnp\n\n\ndef f(x):\n    return x.exp() - 1\n"
    assert rewrite.apply(source, "jax", ["expm1"]) == (source, ())


def test_a_module_level_lambda_is_rewritten_in_place() -> None:
    source = ("import torch\n\nelu = lambda x: torch.where(x > 0, x, torch.exp(x) - 1)  # keep\n"
              "other = lambda x: torch.exp(x) - 1\n")
    new, used = rewrite.apply(source, "torch", ["expm1", "guard_where"], target="elu")
    assert used == ("expm1", "guard_where")
    assert "elu = lambda x: torch.where(x > 0, x, torch.expm1(torch.where(x > 0, 0.0, x)))" \
           "  # keep\n" in new
    assert "other = lambda x: torch.exp(x) - 1\n" in new  # not the target


def test_functions_imported_by_name_are_framework_calls() -> None:
    source = ("from torch import exp, log, where\n\n\ndef elu(x):\n"
              "    return where(x > 0, x, exp(x) - 1)\n\n\n"
              "def softplus(x):\n    return log(1 + exp(x))\n")
    new, used = rewrite.apply(source, "torch", ["expm1", "softplus", "guard_where"])
    assert set(used) == {"expm1", "softplus", "guard_where"}
    assert "import torch\n" in new  # the names it adds come from the module itself
    assert "    return where(x > 0, x, torch.expm1(torch.where(x > 0, 0.0, x)))\n" in new
    assert "    return torch.logaddexp(x, torch.zeros_like(x))\n" in new
    # a name imported from somewhere else is not a framework function
    other = source.replace("from torch import exp, log, where", "from mylib import exp, log, where")
    assert rewrite.apply(other, "torch", ["expm1", "softplus"]) == (other, ())


@pytest.mark.parametrize("cube", ["x ** 3", "x * x * x", "torch.pow(x, 3)"])
def test_a_cube_inside_tanh_is_clamped_where_tanh_is_flat(cube: str) -> None:
    source = ("import math\nimport torch\n\n\ndef gelu_tanh(x):\n"
              "    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * "
              f"(x + 0.044715 * {cube})))\n")
    new, used = rewrite.apply(source, "torch", ["saturate"])
    assert used == ("saturate",)
    clamped = "torch.clamp(x, min=-10.0, max=10.0)"
    assert f"(1 + torch.tanh(math.sqrt(2 / math.pi) * ({clamped} + 0.044715 * " \
           f"{cube.replace('x', clamped)})))" in new
    assert new.startswith("import math\nimport torch\n") and "0.5 * x * (1 + " in new
    # once clamped there is nothing left to do
    assert rewrite.apply(new, "torch", ["saturate"])[1] == ()
