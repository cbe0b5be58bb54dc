"""Ranges and exact boundaries on the lattice, using a NumPy float32 where-ELU whose backward
is written out the way autograd computes it (0 * inf in the discarded branch)."""

from __future__ import annotations

import numpy as np

from gradsafe.check.analyse import Context, Counter, Sample, analyse
from gradsafe.numerics.floats import F64, info
from gradsafe.numerics.probes import plan


def where_elu(xs: F64) -> Sample:
    x = xs.astype(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(x)
        forward = np.where(x > 0, x, e - np.float32(1))
        keep = (x > 0).astype(np.float32)
        gradient = keep * np.float32(1) + (np.float32(1) - keep) * e
        reference = np.where(xs > 0, xs, np.expm1(xs))
    return Sample(xs, forward.astype(np.float64), gradient.astype(np.float64), reference)


def ctx(features: frozenset[str] = frozenset({"where"})) -> Context:
    return Context("float32", "numpy", 1e4, None, features)


def test_where_leak_boundary_is_exact_and_cheap() -> None:
    p = plan("float32")
    counter = Counter()
    findings = analyse(p, where_elu(p.values), where_elu, ctx(), counter)
    grads = [f for f in findings if f.kind == "gradient" and f.severity != "info"]
    assert len(grads) == 1
    f = grads[0]
    b = np.float32(f.boundary)
    with np.errstate(over="ignore"):  # the first float32 whose exp overflows
        assert np.isinf(np.exp(b)) and np.isfinite(np.exp(np.nextafter(b, np.float32(0))))
    assert f.range.low == f.boundary == np.float32(88.72284)
    assert f.range.high == info("float32").max
    assert f.code == "GS101" and f.severity == "error"
    assert np.isnan(f.gradient) and np.isfinite(f.forward)
    assert "x >= 88.72284" in f.message
    assert counter.evaluations <= 64
    # the value just below the boundary is good: the boundary is the first bad one
    below = where_elu(np.array([float(np.nextafter(np.float32(f.boundary), np.float32(0)))]))
    assert np.isfinite(below.gradient).all()  # type: ignore[union-attr]


def test_severity_follows_operating_range() -> None:
    p = plan("float32")
    narrow = Context("float32", "numpy", 50.0, None, frozenset({"where"}))
    f = [f for f in analyse(p, where_elu(p.values), where_elu, narrow) if f.kind == "gradient"]
    assert f[0].severity == "warning"


def test_clean_function_has_no_findings() -> None:
    def relu(xs: F64) -> Sample:
        x = xs.astype(np.float32)
        fwd = np.maximum(x, 0).astype(np.float64)
        grad = (x > 0).astype(np.float64)
        return Sample(xs, fwd, grad, fwd)

    p = plan("float16")
    assert analyse(p, relu(p.values), relu, ctx()) == []


def doubled_half(xs: F64) -> Sample:
    """float16 (x * 2) / 2 + tiny: inf from x = 32768 on, where the true value is x + 1e-3;
    at x = 65504 that is 65504.001, above max but below max + half an ulp: representable."""
    x = xs.astype(np.float16)
    with np.errstate(over="ignore", invalid="ignore"):
        fwd = (x * np.float16(2)) / np.float16(2)
    ref = xs + 1e-3
    return Sample(xs, fwd.astype(np.float64), np.ones_like(xs), ref)


def test_forward_overflow_reaches_max_within_half_an_ulp() -> None:
    p = plan("float16")
    ctx16 = Context("float16", "numpy", 1e4, None, frozenset())
    found = [f for f in analyse(p, doubled_half(p.values), doubled_half, ctx16)
             if f.severity != "info" and f.range.low > 0]
    assert [(f.range.low, f.range.high) for f in found] == [(32768.0, 65504.0)]


def softplus32(xs: F64) -> Sample:
    """log(1 + exp(x)) in float32 with its float64 reference: both overflow, float64 later."""
    x = xs.astype(np.float32)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        fwd = np.log(np.float32(1) + np.exp(x)).astype(np.float64)
        ref = np.log(1 + np.exp(xs))
        grad = (np.exp(x) / (np.float32(1) + np.exp(x))).astype(np.float64)
    return Sample(xs, fwd, grad, np.where(np.isfinite(fwd), fwd, ref))


def exp32(xs: F64) -> Sample:
    x = xs.astype(np.float32)
    with np.errstate(over="ignore"):
        fwd = np.exp(x).astype(np.float64)
        ref = np.where(np.isfinite(fwd), fwd, np.exp(xs))
    return Sample(xs, fwd, fwd, ref)


def test_forward_overflow_run_continues_where_float64_overflows_too() -> None:
    p = plan("float32")
    ctx32 = Context("float32", "numpy", 1e4, None, frozenset())
    found = [f for f in analyse(p, softplus32(p.values), softplus32, ctx32)
             if f.kind == "forward" and f.severity != "info"]
    # float64 overflows from 709.78 on, but the run of float32 overflows goes on to max
    assert [(f.range.low, f.range.high) for f in found] == [
        (float(np.float32(88.72284)), info("float32").max)]
    assert found[0].example_input == 89.0
    # exp itself overflows honestly: float64 beyond max, then inf; never a finding
    assert [f for f in analyse(p, exp32(p.values), exp32, ctx32) if f.severity != "info"] == []


def test_float64_boundaries_near_the_top_of_the_lattice() -> None:
    """Bisection between keys near 2**63 (|x| ~ 1e308) used to overflow its arithmetic."""

    def square_root_of_square(xs: F64) -> Sample:  # sqrt(x*x): x*x overflows for |x| > 1.3e154
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            sq = xs * xs
            fwd = np.sqrt(sq)
            grad = xs / fwd  # d sqrt(x*x)/dx = x / sqrt(x*x): inf/inf = NaN once x*x overflows
        return Sample(xs, fwd, grad, np.abs(xs))

    p = plan("float64")
    counter = Counter()
    found = analyse(p, square_root_of_square(p.values), square_root_of_square,
                    Context("float64", "numpy", 1e4, None, frozenset()), counter)
    fwd = sorted((f.range.low, f.range.high) for f in found
                 if f.kind == "forward" and f.severity != "info")
    grad = sorted((f.range.low, f.range.high) for f in found
                  if f.kind == "gradient" and f.severity != "info")
    limit = float(np.nextafter(np.sqrt(np.finfo(np.float64).max), np.inf))
    mx = float(np.finfo(np.float64).max)
    assert fwd == [(-mx, -limit), (limit, mx)]
    # and x*x underflows to 0 near zero: x / 0 is NaN there, exactly up to the last such x
    ((low, high),) = grad
    assert low == -high

    def bad(x: float) -> bool:
        return not np.isfinite(square_root_of_square(np.array([x])).gradient).all()  # type: ignore[arg-type]

    assert bad(high) and not bad(float(np.nextafter(high, np.inf)))
    assert counter.evaluations <= 64
