"""Gradient findings of TensorFlow and JAX functions with a hand-written gradient point at the
backward's return line and name a 0/0 of underflowed intermediates (issue 16, point 5); the
torch case is fixtures/custom_grad/underflow_torch.py."""

from __future__ import annotations

from conftest import FIXTURES, run_json

from gradsafe.locate.backward import backward_location


def test_the_backward_of_a_custom_gradient_is_found_statically() -> None:
    tf = backward_location(str(FIXTURES / "custom_grad" / "underflow_tf.py"), "soft_unit_step")
    jax = backward_location(str(FIXTURES / "custom_grad" / "underflow_jax.py"),
                            "soft_unit_step")
    assert tf is not None and tf[0] == "grad" and tf[1].line == 18
    assert jax is not None and jax[0] == "_bwd" and jax[1].line == 23
    # a plain function has none
    assert backward_location(str(FIXTURES / "custom_grad" / "underflow_torch.py"),
                             "smooth_step") is None


def test_the_message_names_the_backward_and_the_underflow() -> None:
    code, report = run_json("check", str(FIXTURES / "custom_grad" / "underflow_jax.py"),
                            "--dtype", "float32", "--no-suggest")
    assert code == 1
    [swept] = [f for t in report["targets"] for f in t["findings"] if f["code"] == "GS102"]
    assert swept["location"]["line"] == 23
    assert "hand-written backward `_bwd`" in swept["message"]
    assert "underflows inside to 0/0 = NaN" in swept["message"]
    assert "float64 gradient is 0" in swept["message"]
