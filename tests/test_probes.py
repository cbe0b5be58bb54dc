"""Probe plans: exhaustive for 16-bit dtypes, dense where things break for the others."""

from __future__ import annotations

import math

import numpy as np

from gradsafe.numerics.floats import info, values_to_keys
from gradsafe.numerics.probes import plan


def test_16_bit_plans_are_exhaustive() -> None:
    for dtype in ("float16", "bfloat16"):
        p = plan(dtype)
        finite = np.isfinite(p.values)
        assert finite.sum() == 2 * (info(dtype).max_key + 1)  # every finite value, both zeros
        assert np.isposinf(p.values).sum() == 1 and np.isneginf(p.values).sum() == 1
        assert np.isnan(p.values[-1])


def test_float32_plan_has_thresholds_constants_and_is_sorted() -> None:
    p = plan("float32", constants=(0.044715,), seed=3)
    keys = p.keys[:-1]
    assert np.all(np.diff(keys) > 0)
    vals = set(p.values[:-1].tolist())
    log_max = float(np.float32(math.log(info("float32").max)))
    assert log_max in vals
    near = values_to_keys(np.array([0.044715]), "float32")[0]
    assert {near - 4, near, near + 4} <= set(keys.tolist())
    for v in (0.0, -0.0, info("float32").min_subnormal, 100.0, -100.0, info("float32").max):
        assert v in vals
    assert 20_000 < len(p) < 200_000


def test_plan_is_deterministic_per_seed() -> None:
    a, b, c = plan("float64", seed=1), plan("float64", seed=1), plan("float64", seed=2)
    assert np.array_equal(a.keys, b.keys)
    assert not np.array_equal(a.keys, c.keys)
