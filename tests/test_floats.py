"""The float lattice: keys are monotone, reversible, and separate -0 from +0."""

from __future__ import annotations

import numpy as np
import pytest

from gradsafe.numerics.floats import (
    display,
    info,
    json_number,
    keys_to_values,
    round_to,
    shortest_repr,
    values_to_keys,
)

DTYPES = ["float16", "bfloat16", "float32", "float64"]


@pytest.mark.parametrize("dtype", DTYPES)
def test_keys_round_trip_and_order(dtype: str) -> None:
    d = info(dtype)
    rng = np.random.default_rng(1)
    keys = np.unique(rng.integers(-d.max_key - 1, d.max_key + 1, 5000, dtype=np.int64))
    values = keys_to_values(keys, dtype)
    assert np.all(np.isfinite(values))
    assert np.all(np.diff(values) >= 0)  # monotone (only -0/+0 compare equal)
    assert np.array_equal(values_to_keys(values, dtype), keys)


@pytest.mark.parametrize("dtype", DTYPES)
def test_signed_zero_and_extremes(dtype: str) -> None:
    d = info(dtype)
    keys = values_to_keys(np.array([-0.0, 0.0, d.max, -d.max, np.inf, -np.inf]), dtype)
    assert list(keys) == [-1, 0, d.max_key, -d.max_key - 1, d.inf_key, -d.inf_key - 1]


def test_dtype_facts() -> None:
    assert info("float32").max == float(np.finfo(np.float32).max)
    assert info("float16").max == 65504.0
    assert info("bfloat16").max == 3.3895313892515355e38
    assert info("float64").tiny == float(np.finfo(np.float64).tiny)
    assert info("float16").min_subnormal == 2.0 ** -24


def test_bfloat16_rounds_to_nearest_even() -> None:
    # 1 + 2^-8 is halfway between bfloat16 1.0 and 1.0078125: ties to even -> 1.0
    assert round_to(np.array([1 + 2.0 ** -8, 1 + 3 * 2.0 ** -8]), "bfloat16").tolist() == [
        1.0, 1.015625]


def test_shortest_repr_per_dtype() -> None:
    boundary = float(np.uint32(0x42B17218).view(np.float32))
    assert shortest_repr(boundary, "float32") == "88.72284"
    assert shortest_repr(11.09375, "float16") == "11.09"
    assert display(11.09375, "float16") == "11.09375"
    assert shortest_repr(89.0, "bfloat16") == "89.0"
    assert shortest_repr(-0.0, "float32") == "-0.0"
    assert shortest_repr(float(np.finfo(np.float32).max), "float32") == "3.4028235e+38"
    assert json_number(float("nan"), "float32") == "nan"
    assert json_number(float("-inf"), "float16") == "-inf"
    # JSON carries the float64 value of the dtype's number: readers parse float64
    assert repr(json_number(boundary, "float32")) == "88.72283935546875"
    assert json_number(11.09375, "float16") == 11.09375
    assert json_number(65504.0, "float16") == 65504.0
    assert repr(json_number(info("bfloat16").max, "bfloat16")) == "3.3895313892515355e+38"
    assert repr(json_number(-0.0, "float16")) == "-0.0"
