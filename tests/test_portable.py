"""Portable definitions: found statically as targets of every framework."""

from __future__ import annotations

from pathlib import Path

from conftest import FIXTURES

from gradsafe.discover.targets import discover_file
from gradsafe.model.types import Options
from gradsafe.run.engine import plan_jobs


def test_portable_targets_run_on_every_framework(tmp_path: Path) -> None:
    found = discover_file(str(FIXTURES / "portable" / "keras_ops.py"))
    found += discover_file(str(FIXTURES / "portable" / "array_api.py"))
    all3 = ("torch", "tensorflow", "jax")
    assert [(t.name, t.kind, t.frameworks) for t in found] == [
        ("elu_leak", "keras_ops", all3), ("elu_safe", "keras_ops", all3),
        ("LearnableELU", "layer", all3), ("SafeELU", "layer", all3),
        ("elu_leak", "array_api", all3), ("elu_safe", "array_api", all3)]
    (learnable,) = [t for t in found if t.name == "LearnableELU"]
    assert learnable.params[0].name == "alpha"
    jobs, errors = plan_jobs(found, Options(frameworks=("jax", "torch")))
    assert not errors
    assert sorted({j.framework for j in jobs}) == ["jax", "torch"]

    # Keras mixed with tf.* is TensorFlow only; a second argument used as a value is not xp
    src = tmp_path / "mixed.py"
    src.write_text("import keras\nimport tensorflow as tf\n"
                   "def a(x):\n    return keras.ops.exp(x) + tf.exp(x)\n"
                   "def b(x, k):\n    return k.exp(x)\n"
                   "def c(x, k):\n    return tf.exp(x) * k\n")
    kinds = {t.name: (t.kind, t.frameworks) for t in discover_file(str(src))}
    assert kinds == {"a": ("function", ("tensorflow",)), "b": ("array_api",
                     ("torch", "tensorflow", "jax")), "c": ("function", ("tensorflow",))}
