"""The numbers the rewrites rely on, measured in the frameworks themselves.

`saturate` clamps exp's argument where the outer function is already 1.0 in float64 (so in
every dtype); `sinc` switches to its series below |u| = 0.01, where the series is within the
verification tolerance of sin(u)/u in float64 and u * u is still a normal float16."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gradsafe.suggest.rewrite.saturate import FLAT_AFTER
from gradsafe.suggest.rewrite.sinc import NEAR_ZERO
from gradsafe.suggest.rewrite.verify import tolerance


@pytest.mark.parametrize("outer", sorted(FLAT_AFTER))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_outer_function_is_flat_at_the_clamp(outer: str, dtype: str) -> None:
    torch = pytest.importorskip("torch")
    u = torch.tensor(float(FLAT_AFTER[outer]), dtype=getattr(torch, dtype))
    assert getattr(torch, outer)(torch.exp(u)).item() == 1.0
    # and not much earlier (1.0 in float64 is 1.0 in every narrower dtype)
    assert getattr(torch, outer)(torch.exp(u.double() - 1.5)).item() < 1.0


def test_the_sinc_series_is_exact_enough_where_it_is_used() -> None:
    c = float(NEAR_ZERO)
    u = np.linspace(-c, c, 20001)[1:-1]
    u = u[u != 0]
    series = 1.0 - u * u / 6.0 * (1.0 - u * u / 20.0)
    rtol, _ = tolerance("float64")
    assert np.max(np.abs(series - np.sin(u) / u)) <= rtol
    # at the switch u * u is a normal float16 and 1 / u**2 fits: the quotient's backward is finite
    assert np.float16(c) * np.float16(c) >= np.finfo(np.float16).tiny
    assert 1.0 / (c * c) < float(np.finfo(np.float16).max)
    assert math.isclose(1.0 - c * c / 6.0, math.sin(c) / c, rel_tol=1e-9)


def test_gelus_tanh_argument_is_past_saturation_at_the_cube_clamp() -> None:
    torch = pytest.importorskip("torch")
    x = torch.tensor(10.0, dtype=torch.float64)
    arg = math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)
    assert torch.tanh(arg).item() == 1.0 and torch.tanh(-arg).item() == -1.0
    assert float(np.float16(10.0) ** 3) < float(np.finfo(np.float16).max)
