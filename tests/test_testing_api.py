"""gradsafe.testing.assert_grad_safe, used the way a user's own test suite would use it: on
module-level functions of this very file (the worker imports it to find them)."""

from __future__ import annotations

import pytest
import torch

from gradsafe.testing import assert_grad_safe


def leaky_elu(x):  # type: ignore[no-untyped-def]
    return torch.where(x > 0, x, torch.exp(x) - 1)


def masked_elu(x):  # type: ignore[no-untyped-def]
    return torch.where(x > 0, x, torch.expm1(torch.where(x > 0, 0.0, x)))


def test_unsafe_function_fails_with_the_text_report() -> None:
    with pytest.raises(AssertionError) as info:
        assert_grad_safe(leaky_elu, frameworks="torch", dtypes=("float32", "float16"))
    message = str(info.value)
    assert "✗ leaky_elu  " in message and "test_testing_api.py:12  torch" in message
    assert "GS101" in message and "x >= 88.72284" in message and "x >= 11.09375" in message
    assert "gradient is NaN for x >= 88.72284 in float32" in message
    assert "masked_elu" not in message  # only the function asked about
    assert "exit 1)" in message


def test_safe_function_passes() -> None:
    assert_grad_safe(masked_elu, frameworks=["torch"], dtypes="float32,float16", range=1e4)


def test_nested_functions_are_refused() -> None:
    def inner(x):  # type: ignore[no-untyped-def]
        return x

    with pytest.raises(TypeError, match="module-level"):
        assert_grad_safe(inner)
