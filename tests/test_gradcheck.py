"""Hand-written gradients: discovery, the numeric reference, comparison, contracts, lanes."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import jsonschema
import numpy as np
from conftest import ROOT, cli_env, run_json

from gradsafe.backends.custom import get_adapter
from gradsafe.check import gradcheck
from gradsafe.discover.targets import discover_file
from gradsafe.numerics.floats import round_to

SEED = "fixtures/custom_grad/seed004_relu_sigmoid.py"


def test_discovery_finds_every_custom_gradient_form(tmp_path: Path) -> None:
    src = tmp_path / "forms.py"
    src.write_text(textwrap.dedent("""
        from functools import partial
        import jax
        import numpy as np
        import tensorflow as tf
        from torch.autograd import Function

        class Fn(Function):
            @staticmethod
            def forward(ctx, x): return x
            @staticmethod
            def backward(ctx, g): return g

        @tf.custom_gradient
        def tf_fn(x):
            return x, lambda dy: dy

        @jax.custom_vjp
        def vjp_fn(x): return x
        def vjp_fwd(x): return x, None
        def vjp_bwd(r, g): return (g,)
        vjp_fn.defvjp(vjp_fwd, vjp_bwd)

        @partial(jax.custom_jvp)
        def jvp_fn(x): return x
        @jvp_fn.defjvp
        def rule(p, t): return p[0], t[0]

        def _g(x): return x
        wrapped = jax.custom_vjp(_g)

        class Layer:
            def forward(self, x): return np.maximum(x, 0)
            def backward(self, dout): return dout

        class Loss:
            def forward(self, x, t): return 0.0
            def backward(self, dout=1): return None

        def plain(x): return jax.numpy.sin(x)
    """))
    kinds = {t.name: (t.kind, t.frameworks) for t in discover_file(str(src))}
    assert kinds == {
        "Fn": ("autograd_function", ("torch",)),
        "tf_fn": ("custom_gradient", ("tensorflow",)),
        "vjp_fn": ("custom_vjp", ("jax",)),
        "jvp_fn": ("custom_jvp", ("jax",)),
        "wrapped": ("custom_vjp", ("jax",)),
        "Layer": ("numpy_layer", ("numpy",)),
        "Loss": ("numpy_layer", ("numpy",)),
        "plain": ("function", ("jax",)),
    }  # vjp_fwd (one argument) is a rule of vjp_fn, not an activation


def test_numeric_derivative_is_accurate_and_refuses_kinks_and_overflow() -> None:
    x = np.linspace(-20, 20, 4001)
    num = gradcheck.numeric_derivative(lambda t: np.sin(x + t), x, 1.5e-8)
    assert num.ok.all()
    assert np.max(np.abs(num.value - np.cos(x))) < 1e-9
    kinks = np.array([0.0, -0.0, 1e-300, 2.5])
    relu = gradcheck.numeric_derivative(lambda t: np.maximum(kinks + t, 0), kinks, 3.5e-4)
    assert relu.ok.tolist() == [False, False, False, True]
    assert relu.kink[:3].all()
    near = np.array([709.0, 709.7827128])  # exp overflows float64 past 709.782712893
    with np.errstate(over="ignore"):
        exp = gradcheck.numeric_derivative(lambda t: np.exp(near + t), near, 1.5e-8)
    assert exp.ok.tolist() == [True, False]
    assert abs(exp.value[0] / math.exp(709.0) - 1) < 1e-9  # the absolute step wins there


class _Relu:  # seed 004 as written: writes into d_out, returns nothing
    def __init__(self) -> None:
        self.mask = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.mask = x <= 0
        out = x.copy()
        out[self.mask] = 0
        return out

    def backward(self, d_out: np.ndarray) -> None:
        d_out[self.mask] = 0


class _Scaled:  # correct except for a factor 3 on x > 1
    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        return np.tanh(x)

    def backward(self, d_out: np.ndarray) -> np.ndarray:
        g = d_out * (1 - np.tanh(self.x) ** 2)
        return np.where(self.x > 1, 3 * g, g)


def test_numpy_layer_contract_and_mutation_are_seen() -> None:
    adapter = get_adapter("numpy", _Relu, "numpy_layer")
    x = np.array([-2.0, -1.0, 0.5, 3.0])
    v = np.array([2.0, -0.5, 2.0, -0.5])
    call = adapter.backward(x, v, "float32")
    assert call.problem == "backward returned None instead of the gradient"
    assert call.incoming_after is not None
    assert call.incoming_after.tolist() == [0.0, 0.0, 2.0, -0.5]
    assert v.tolist() == [2.0, -0.5, 2.0, -0.5]  # the caller's array is untouched


def test_largest_error_and_its_location_are_reported() -> None:
    adapter = get_adapter("numpy", _Scaled, "numpy_layer")
    x = round_to(np.linspace(-4, 4, 801), "float32")
    pc = gradcheck.check_points(adapter, x, "float32")
    cmp = pc.comparison
    assert cmp is not None
    flagged = x[cmp.bad]
    # wrong exactly where x > 1 and tanh' is above the float32 tolerance
    assert flagged.min() > 1 and flagged.max() < 4.1
    truth = 1 - np.tanh(x) ** 2
    assert cmp.x[cmp.worst] == x[np.argmax(np.where(x > 1, 2 * truth, 0))]
    assert math.isclose(cmp.gradient[cmp.worst], 3 * truth[cmp.worst], rel_tol=1e-5)


def test_torch_in_place_backward_does_not_reach_the_callers_array() -> None:
    adapter = get_adapter("torch", _torch_in_place(), "autograd_function")
    x = np.linspace(-3, 3, 7)
    v = np.resize(gradcheck.COTANGENT, x.size)
    call = adapter.backward(x, v, "float64")
    assert call.incoming_after is not None and not np.array_equal(call.incoming_after, v)
    assert v.tolist() == np.resize(gradcheck.COTANGENT, 7).tolist()


def _torch_in_place() -> type:
    import torch

    class InPlace(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):  # type: ignore[no-untyped-def]
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):  # type: ignore[no-untyped-def]
            (x,) = ctx.saved_tensors
            return g.mul_(2 * x)

    return InPlace


def test_numpy_lane_imports_no_ml_framework() -> None:
    code = textwrap.dedent(f"""
        import sys
        from gradsafe.backends import get_backend
        from gradsafe.discover.targets import discover_file
        from gradsafe.model.types import Options
        from gradsafe.check.sweep import check_target
        backend = get_backend("numpy")
        for t in discover_file({SEED!r}):
            r = check_target(backend, t, Options(dtypes=("float32",)))
            print(t.name, sorted(f.code for f in r.findings))
        print(sorted(m for m in ("torch", "tensorflow", "jax") if m in sys.modules))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, env=cli_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["Relu ['GS302', 'GS303']", "Sigmoid ['GS303']", "[]"]


def test_json_report_of_custom_gradients_validates() -> None:
    schema = json.loads((ROOT / "gradsafe" / "report" / "schema.json").read_text())
    code, report = run_json("check", SEED, "--dtype", "float32")
    assert code == 1
    jsonschema.validate(report, schema)
    relu = next(t for t in report["targets"] if t["name"] == "Relu")
    gs302 = next(f for f in relu["findings"] if f["code"] == "GS302")
    assert gs302["range"] == {"low": -3.4028234663852886e38, "high": 0.0}
    assert gs302["example_input"] == -1.0
    assert gs302["location"]["line"] == 18  # the backward's def line
    assert "it was 2.0 and is 0.0 afterwards" in gs302["message"]


def test_numpy_framework_option_selects_only_numpy_layers() -> None:
    code, report = run_json("check", "fixtures/custom_grad/seed004_fixed.py",
                            "fixtures/custom_grad/torch_custom.py", "--framework", "numpy",
                            "--dtype", "float32")
    assert code == 0
    assert {t["framework"] for t in report["targets"]} == {"numpy"}
    assert len(report["targets"]) == 4
