"""Static features read from the source: which multiplications are by a mask."""

from __future__ import annotations

from pathlib import Path

import pytest

from gradsafe.discover.targets import discover_file
from gradsafe.model.types import TargetKind

MASKED = {
    "compare": "m = x > 0\n    return m * x",
    "float_method": "return (x > 0).float() * x",
    "to_dtype": "pos = (x > 0).to(x.dtype)\n    return pos * x + (1 - pos) * torch.expm1(x)",
    "and_of_compares": "m = (x >= -2) & (x <= 2)\n    return m * x + (~m) * torch.sign(x)",
    "tf_cast_greater": "m = tf.cast(tf.greater(x, 0.0), x.dtype)\n    return (1.0 - m) * x",
    "astype_of_call": "m = jnp.greater(x, 0).astype(x.dtype)\n    return m * x",
    "method_compare": "return x.gt(0).type_as(x) * x",
}
NOT_MASKED = {
    "sigmoid_gate": "s = torch.sigmoid(x)\n    return x * s",
    "scaled": "y = torch.exp(x) - 1\n    return 2 * y",
    "cast_of_value": "return tf.cast(x, tf.float32) * x",
    "one_minus_value": "return (1 - x) * x",
}


def _features(tmp_path: Path, body: str) -> frozenset[str]:
    src = tmp_path / "act.py"
    src.write_text("import torch\nimport tensorflow as tf\nimport jax.numpy as jnp\n\n\n"
                   f"def act(x):\n    {body}\n")
    (target,) = discover_file(str(src))
    return target.features


@pytest.mark.parametrize("body", MASKED.values(), ids=list(MASKED))
def test_mask_multiply_is_recognised(tmp_path: Path, body: str) -> None:
    assert "mask_multiply" in _features(tmp_path, body)


@pytest.mark.parametrize("body", NOT_MASKED.values(), ids=list(NOT_MASKED))
def test_products_of_values_are_not_masks(tmp_path: Path, body: str) -> None:
    assert "mask_multiply" not in _features(tmp_path, body)


def test_module_level_lambdas_of_one_tensor_are_targets(tmp_path: Path) -> None:
    src = tmp_path / "acts.py"
    src.write_text("import torch\nimport jax.numpy as jnp\n\n"
                   "elu = lambda x: torch.where(x > 0, x, torch.exp(x) - 1)\n"
                   "scaled = lambda x, alpha=1.0: alpha * jnp.tanh(x)\n"
                   "_hidden = lambda x: torch.exp(x)\n"
                   "pair = lambda x, y: x + y\n"
                   "table = {'relu': lambda x: torch.relu(x)}\n")
    found = {t.name: (t.line, t.kind, t.frameworks, t.needs)
             for t in discover_file(str(src))}
    # `pair` needs y: discovered, and skipped unless --arg y=VALUE gives it
    assert found == {"elu": (4, "function", ("torch",), ()),
                     "scaled": (5, "function", ("jax",), ()),
                     "pair": (7, "function", (), ("y",))}


def test_base_classes_behind_star_reexports_and_aliases(tmp_path: Path) -> None:
    """Bases that one file's syntax does not show, followed by parsing (no import): a star
    re-export in a package's __init__, a module-level alias of a framework class
    (`AliasBase = _Loss`, re-exported), a local alias (`Base = torch.nn.Module`), and a
    base named through a module (`from . import core` then `core.StarBase`)."""
    core = tmp_path / "proj" / "core"
    core.mkdir(parents=True)
    (tmp_path / "proj" / "__init__.py").write_text("", encoding="utf-8")
    (core / "__init__.py").write_text("from .bases import *\n", encoding="utf-8")
    (core / "bases.py").write_text(
        "import torch\nfrom torch.nn.modules.loss import _Loss\n\n"
        "class StarBase(torch.nn.Module):\n    def forward(self, x):\n"
        "        return self.f(x)\n\nAliasBase = _Loss\n", encoding="utf-8")
    body = "    def forward(self, x):\n        return torch.log(torch.exp(x) + 1)\n\n"
    (tmp_path / "proj" / "losses.py").write_text(
        "import torch\nfrom proj.core import StarBase, AliasBase\nfrom . import core\n"
        "Base = torch.nn.Module\n\n"
        "class ViaStar(StarBase):\n" + body + "class ViaAlias(AliasBase):\n" + body +
        "class ViaLocalAlias(Base):\n" + body + "class ViaModuleAttr(core.StarBase):\n" +
        body, encoding="utf-8")
    found = {t.name: (t.kind, t.frameworks)
             for t in discover_file(str(tmp_path / "proj" / "losses.py"))}
    assert found == {n: (TargetKind.MODULE, ("torch",)) for n in (
        "ViaStar", "ViaAlias", "ViaLocalAlias", "ViaModuleAttr")}


def test_bases_inside_frameworks_and_fallback_bases(tmp_path: Path) -> None:
    """A framework's own intermediate class as the base (keras.layers.Softmax, nnx.Linear:
    their sources are parsed through the frameworks' re-exports, nothing imported), and a
    base defined in an `else:` branch when an optional package is missing (torchmetrics
    1.9.0 image/fid.py: `NoTrainInceptionV3(_FeatureExtractorInceptionV3)`)."""
    (tmp_path / "fw.py").write_text(
        "import keras\nimport torch\nfrom flax import nnx\nHAVE = False\n"
        "if HAVE:\n    from not_installed import Extractor as _Base\nelse:\n"
        "    class _Base(torch.nn.Module):\n        pass\n\n"
        "class MySoftmax(keras.layers.Softmax):\n    def call(self, x):\n"
        "        return super().call(2.0 * x)\n\n"
        "class MyLinear(nnx.Linear):\n    pass\n\n"
        "class Fallback(_Base):\n    def forward(self, x):\n        return x\n",
        encoding="utf-8")
    kinds = {t.name: t.kind for t in discover_file(str(tmp_path / "fw.py"))}
    assert kinds == {"MySoftmax": TargetKind.LAYER, "MyLinear": TargetKind.NNX,
                     "Fallback": TargetKind.MODULE}
