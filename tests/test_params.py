"""Parametrised, learnable and mode-dependent activations (issue 6).

The fixture findings themselves are checked by test_fixtures.py (fixtures/params/); these
tests cover static discovery of constructor arguments, the variant expansion, the --param
option, the JSON variant block, and that the seeded train-mode draw really is the one that
the reported boundary implies.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import jsonschema
import numpy as np
import pytest
from conftest import ROOT, cli_env, run_cli, run_json

from gradsafe.discover.targets import discover
from gradsafe.discover.variants import MAX_PARAM_SETS, VariantError, expand, parse_params
from gradsafe.model.types import Options
from gradsafe.report.json_report import SCHEMA_PATH

PARAMS = ROOT / "fixtures" / "params"


def test_framework_signatures_are_read_without_importing_the_framework() -> None:
    code = (
        "import sys\n"
        "from gradsafe.discover.targets import discover\n"
        "t = {x.name: x for x in discover(['torch.nn.RReLU', 'torch.nn.Softplus'])}\n"
        "print(sorted(p.name for p in t['torch.nn.RReLU'].params),"
        " sorted(t['torch.nn.RReLU'].features & {'modes', 'random'}),"
        " [(p.name, p.default) for p in t['torch.nn.Softplus'].params],"
        " 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=cli_env(), check=True).stdout.strip()
    assert out == ("['lower', 'upper'] ['modes', 'random'] "
                   "[('beta', 1.0), ('threshold', 20.0)] False")


def test_subclass_of_a_framework_class_inherits_its_arguments() -> None:
    targets = {t.name: t for t in discover([str(PARAMS / "seed001_torch.py")])}
    assert [(p.name, p.default, p.kind) for p in targets["PReLU"].params] == [
        ("num_parameters", 1, "count"), ("init", 0.25, "float")]
    assert "modes" in targets["RReLU"].features
    assert "modes" not in targets["ELU"].features


def test_trax_and_nnx_classes_are_recognised() -> None:
    trax = {t.name: t for t in discover([str(PARAMS / "seed002_trax.py")])}
    nnx = {t.name: t for t in discover([str(PARAMS / "seed002_nnx.py")])}
    assert trax["ParametricRelu"].kind == "trax" and trax["ParametricRelu"].frameworks == ("jax",)
    assert nnx["ParametricRelu"].kind == "nnx" and nnx["ParametricRelu"].frameworks == ("jax",)
    assert {"modes", "random"} <= trax["RandomizedRelu"].features
    assert {"modes", "random"} <= nnx["RandomizedRelu"].features
    assert importlib.util.find_spec("trax") is None  # checked without trax installed


def test_one_at_a_time_variation_is_bounded_and_labelled() -> None:
    (rrelu,) = discover(["torch.nn.RReLU"])
    labels = [t.label for t in expand(rrelu, Options())]
    # defaults + 4 values for each of the two arguments, in train and eval mode
    assert len(labels) == (1 + 4 + 4) * 2
    assert labels[0] == "torch.nn.RReLU(lower=0.125, upper=0.3333333333333333)[mode=train, seed=0]"
    assert "torch.nn.RReLU(lower=0.0, upper=0.3333333333333333)[mode=eval, seed=0]" in labels
    (prelu,) = discover(["torch.nn.PReLU"])
    labels = [t.label for t in expand(prelu, Options(param_sweep=False,
                                                    param_values=(("num_parameters", (3,)),)))]
    assert labels == ["torch.nn.PReLU(num_parameters=1, init=0.25)",
                      "torch.nn.PReLU(num_parameters=3, init=0.25)[input=(N, 3)]",
                      "torch.nn.PReLU(num_parameters=3, init=0.25)[input=(N, 3, 2, 2)]"]
    assert MAX_PARAM_SETS >= 1 + 4 * 2


def test_parse_params() -> None:
    assert parse_params(["alpha=0,0.5,2", "beta=1e-3", "alpha=0.5"]) == (
        ("alpha", (0, 0.5, 2)), ("beta", (0.001,)))
    for bad in ("alpha", "alpha=", "alpha=x", "=1"):
        with pytest.raises(VariantError):
            parse_params([bad])


def test_unknown_param_is_a_one_line_usage_error() -> None:
    proc = run_cli("check", str(PARAMS / "learnable_elu_torch.py"), "--param", "gamma=1")
    assert proc.returncode == 2
    assert "no checked class has a numeric constructor argument named 'gamma'" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_json_reports_mode_seed_and_values_and_validates() -> None:
    code, report = run_json("check", str(PARAMS / "train_leak_torch.py"), "--no-param-sweep",
                            "--dtype", "float32", "--seed", "3")
    assert code == 1
    jsonschema.validate(report, json.loads(SCHEMA_PATH.read_text()))
    by_mode = {t["variant"]["mode"]: t for t in report["targets"]}
    assert by_mode["train"]["variant"] == {"params": {"alpha": 1.0, "sigma": 0.1},
                                           "mode": "train", "seed": 3, "layout": "N",
                                           "channels": 1, "grid": []}
    assert by_mode["eval"]["status"] == "pass" and by_mode["eval"]["findings"] == []
    (finding,) = by_mode["train"]["findings"]
    assert finding["code"] == "GS101" and finding["boundary"] == 88.72283935546875
    assert finding["message"].endswith("[reproduce with mode=train, seed=3]")
    assert by_mode["train"]["name"] == "NoisyELU(alpha=1.0, sigma=0.1)[mode=train, seed=3]"


def test_seeded_train_mode_boundary_matches_the_draw() -> None:
    """random_celu_trax: the boundary must be where exp(x / a) overflows for the a that
    fastmath.random.uniform(PRNGKey(seed)) draws; a different seed moves it."""
    import jax

    def expected(seed: int) -> float:
        a = np.float32(jax.random.uniform(jax.random.PRNGKey(seed), (), minval=0.5,
                                          maxval=1.5))
        xs = np.arange(np.float32(80) * a, np.float32(100) * a, dtype=np.float32)
        lo, hi = float(xs[0]), float(xs[-1])
        for _ in range(60):  # bisection on float32 values for the first overflow
            mid = float(np.float32((lo + hi) / 2))
            with np.errstate(over="ignore"):
                over = np.isinf(np.exp(np.float32(mid) / a))
            lo, hi = (lo, mid) if over else (mid, hi)
            if np.nextafter(np.float32(lo), np.float32(np.inf)) >= np.float32(hi):
                break
        return float(np.float32(hi))

    for seed in (0, 1):
        _, report = run_json("check", str(PARAMS / "random_celu_trax.py"), "--no-param-sweep",
                             "--dtype", "float32", "--seed", str(seed))
        train = [t for t in report["targets"] if t["variant"]["mode"] == "train"]
        (finding,) = train[0]["findings"]
        assert finding["boundary"] == pytest.approx(expected(seed), rel=1e-6)
