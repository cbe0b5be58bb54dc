"""One rule for every quantity (issue 16): a finding exists only where the float64 value of
the same quantity is finite and representable in the dtype. Pure NumPy models of log(x) and
log(expm1(x)) with their float64 references, then the real CLI on the fixtures in
fixtures/float64_rule/ (whose goldens test_fixtures checks) for the notes in the JSON."""

from __future__ import annotations

import numpy as np
from conftest import FIXTURES, run_json

from gradsafe.check.analyse import Context, Sample, analyse
from gradsafe.numerics.floats import F64
from gradsafe.numerics.probes import plan

RULE = FIXTURES / "float64_rule"


def log_act(xs: F64) -> Sample:
    """log(x) in float32; the gradient 1/x overflows for subnormal x, honestly."""
    x = xs.astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        forward = np.log(x).astype(np.float64)
        gradient = (np.float32(1) / x).astype(np.float64)
        reference = np.log(xs)
        g64 = np.where(np.isfinite(forward) & ~np.isfinite(gradient), 1 / xs, np.nan)
    return Sample(xs, forward, gradient, reference, grad_reference=g64)


def nan_gradient_log(xs: F64) -> Sample:
    """The same, but a backward that gives NaN (not inf) for subnormal x: never honest."""
    s = log_act(xs)
    assert s.gradient is not None
    gradient = np.where(np.isinf(s.gradient), np.nan, s.gradient)
    return Sample(s.x, s.forward, gradient, s.reference, grad_reference=s.grad_reference)


def ctx() -> Context:
    return Context("float32", "numpy", 1e4, None, frozenset())


def test_honest_gradient_overflow_is_a_note_not_a_finding() -> None:
    p = plan("float32")
    notes: list[str] = []
    findings = analyse(p, log_act(p.values), log_act, ctx(), notes=notes)
    # NaN for x < 0 is outside the domain (float64 NaN); log(0) = -inf is the true value
    assert [(f.kind, f.range.low) for f in findings] == [("forward", float("-inf"))]
    assert findings[0].severity == "info"
    (note,) = notes
    assert "the gradient is inf" in note and "honest overflow" in note
    assert "7.1362384635298e+44" in note  # the float64 derivative at x = 1e-45


def test_a_nan_gradient_is_a_finding_even_where_the_true_one_overflows() -> None:
    p = plan("float32")
    notes: list[str] = []
    findings = analyse(p, nan_gradient_log(p.values), nan_gradient_log, ctx(), notes=notes)
    grads = [f for f in findings if f.kind == "gradient"]
    assert [(f.range.low, float(np.float32(f.range.high))) for f in grads] == [
        (float(np.float32(1e-45)), float(np.float32(2.938736e-39)))]
    assert not notes


def test_without_a_float64_gradient_every_overflow_counts() -> None:
    """grad_reference None (float64 itself, or not computed): the old rule."""
    p = plan("float32")

    def probe(xs: F64) -> Sample:
        s = log_act(xs)
        return Sample(s.x, s.forward, s.gradient, s.reference)

    findings = analyse(p, probe(p.values), probe, ctx())
    assert any(f.kind == "gradient" and f.severity == "error" for f in findings)


def test_notes_say_what_the_rule_left_out() -> None:
    _, report = run_json("check", str(RULE / "domain_torch.py"), "--dtype", "float32",
                         "--no-suggest", "--target", "log_act")
    (t,) = report["targets"]
    assert t["status"] == "pass"
    assert any("float32: the gradient is inf at" in n and "honest overflow" in n
               for n in t["notes"]), t["notes"]
    _, report = run_json("check", str(RULE / "param_torch.py"), "--dtype", "float32",
                         "--no-suggest", "--no-param-sweep", "--target", "LogShift")
    (t,) = report["targets"]
    assert t["status"] == "pass" and [f["code"] for f in t["findings"]] == ["GS201"]
    assert any("gradient of parameter 'shift' is inf" in n and "honest overflow" in n
               for n in t["notes"]), t["notes"]


def test_grid_values_are_warnings_at_most_and_outside_the_domain_is_a_note() -> None:
    """fixtures/params/grid_torch.py: alpha_init=-1 (grid) makes the float64 forward NaN
    everywhere, alpha_init=1000 (grid) makes it degenerate; --param 1000 is the user's."""
    path = str(FIXTURES / "params" / "grid_torch.py")
    code, report = run_json("check", path, "--dtype", "float32", "--no-suggest")
    assert code == 0
    by_name = {t["name"]: t for t in report["targets"]}
    neg = by_name["ScaledTanh(alpha_init=-1.0)"]
    assert neg["variant"]["grid"] == ["alpha_init"] and not neg["findings"]
    assert any("outside the parameter's domain" in n for n in neg["notes"]), neg["notes"]
    (big,) = by_name["ScaledTanh(alpha_init=1000.0)"]["findings"]
    assert big["severity"] == "warning" and "at alpha_init=1000.0" in big["message"]
    assert by_name["ScaledTanh(alpha_init=1.0)"]["variant"]["grid"] == []
    code, report = run_json("check", path, "--dtype", "float32", "--no-suggest",
                            "--no-param-sweep", "--param", "alpha_init=1000")
    assert code == 1
    (t,) = [t for t in report["targets"] if t["variant"]["params"]["alpha_init"] == 1000.0]
    assert t["variant"]["grid"] == [] and t["findings"][0]["severity"] == "error"


def test_a_cast_torch_module_says_so() -> None:
    """module.to(float16) casts the module's own float32 parameters: the notes say it."""
    _, report = run_json("check", str(RULE / "param_torch.py"), "--dtype", "float16",
                         "--no-suggest", "--no-param-sweep", "--target", "LeakyExp")
    (t,) = report["targets"]
    assert ("float16: module cast with .to(float16): 1 parameter/buffer tensor of it "
            "(float32) computed in float16; under torch.autocast they would stay float32"
            ) in t["notes"], t["notes"]


def test_a_0_over_0_in_a_hand_written_backward_is_named_and_located() -> None:
    path = FIXTURES / "custom_grad" / "underflow_torch.py"
    _, report = run_json("check", str(path), "--dtype", "float32", "--no-suggest")
    by_name = {t["name"]: t for t in report["targets"]}
    (gs301,) = by_name["SmoothStep"]["findings"]
    assert "a 0/0 inside the backward formula" in gs301["message"]
    (gs102,) = by_name["smooth_step"]["findings"]
    assert "underflows inside to 0/0 = NaN" in gs102["message"]
    assert "overflows inside" not in gs102["message"]
    assert gs102["location"]["line"] == 20  # return g * torch.where(..., exp(-1/x) / (x*x))
    first = gs102["path"][0]
    assert (first["op"], first["location"]["line"]) == ("apply", 24)
