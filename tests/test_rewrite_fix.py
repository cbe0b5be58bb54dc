"""The rewrite pairs written the way real code writes them (class methods, names bound on
earlier lines, tuple assignments, method chains, F. and keras.ops), end to end: `gradsafe
fix --write` on copies of the `before` files turns each into exactly its `after` (so the diff
that `fix --diff` prints is the pair's), and the check `--write` runs afterwards is clean."""

from __future__ import annotations

from pathlib import Path

from conftest import FIXTURES, run_cli

PAIRS = FIXTURES / "rewrite"
# (transform, file) of the pairs that have a finding for fix to remove at their default
# constructor values; the others (log1p of a square, expm1 of a clamped exp) are exercised by
# test_rewrite alone
FIXED = [(t, f"{fw}_names_before.py") for t, fws in (
    ("tanh", ("torch", "tensorflow", "jax", "kerasops")),
    ("softplus", ("torch", "tensorflow", "jax", "kerasops")),
    ("sigmoid", ("torch", "tensorflow", "jax", "kerasops")),
    ("saturate", ("torch", "tensorflow", "jax")),
    ("hypot", ("torch", "tensorflow")),
) for fw in fws] + [("mask_zero", f"{fw}_before.py")
                   for fw in ("torch", "tensorflow", "jax", "kerasops")] + [
    # a where on a learnable parameter: beta = 0 (the default here) gets the double where
    ("guard_where", f"{fw}_param_before.py") for fw in ("torch", "tensorflow", "jax")] + [
    # a hand-written backward (autograd.Function, tf.custom_gradient, jax.custom_vjp)
    ("log_quotient", f"{fw}_before.py") for fw in ("torch", "tensorflow", "jax")] + [
    # the model zoos' fast GELU in float16
    ("saturate", f"{fw}_fastgelu_before.py") for fw in ("torch", "tensorflow", "jax")]


def test_fix_writes_the_after_files_and_they_check_clean(tmp_path: Path) -> None:
    for transform, name in FIXED:
        (tmp_path / f"{transform}_{name}").write_text((PAIRS / transform / name).read_text())
    proc = run_cli("fix", str(tmp_path), "--write", "--no-param-sweep")
    # the exit code of --write is the one of the check it runs on the rewritten files
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    wrong = []
    for transform, name in FIXED:
        after = (PAIRS / transform / name.replace("before.py", "after.py")).read_text().replace(
            f'"""{transform}: after."""', f'"""{transform}: before."""', 1)
        if (tmp_path / f"{transform}_{name}").read_text() != after:
            wrong.append(f"{transform}/{name}")
    assert not wrong, wrong
