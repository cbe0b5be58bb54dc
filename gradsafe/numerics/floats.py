"""Float lattices in pure NumPy: dtype facts, ordered integer keys, shortest reprs.

Every float16/bfloat16/float32 value is exactly a float64, so arrays travel as float64 and
each dtype is described by how its bit patterns map to an ordered integer key:
key(+x) = bits, key(-x) = -bits - 1. Keys are monotone in the value and separate -0 from +0.
bfloat16 is handled by bit arithmetic so no ml_dtypes import is needed here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class DTypeInfo:
    name: str
    bits: int
    mantissa_bits: int
    exponent_bits: int

    @property
    def sign_mask(self) -> int:
        return 1 << (self.bits - 1)

    @property
    def max_key(self) -> int:
        """Key of the largest finite value."""
        return ((1 << (self.exponent_bits)) - 1 << self.mantissa_bits) - 1

    @property
    def inf_key(self) -> int:
        return (1 << self.exponent_bits) - 1 << self.mantissa_bits

    @property
    def max(self) -> float:
        return float(keys_to_values(np.array([self.max_key], dtype=np.int64), self)[0])

    @property
    def tiny(self) -> float:
        """Smallest positive normal."""
        return float(keys_to_values(np.array([1 << self.mantissa_bits], dtype=np.int64), self)[0])

    @property
    def min_subnormal(self) -> float:
        return float(keys_to_values(np.array([1], dtype=np.int64), self)[0])

    @property
    def eps(self) -> float:
        return 2.0 ** -self.mantissa_bits


DTYPE_INFO: dict[str, DTypeInfo] = {
    "float16": DTypeInfo("float16", 16, 10, 5),
    "bfloat16": DTypeInfo("bfloat16", 16, 7, 8),
    "float32": DTypeInfo("float32", 32, 23, 8),
    "float64": DTypeInfo("float64", 64, 52, 11),
}


def info(dtype: str) -> DTypeInfo:
    return DTYPE_INFO[dtype]


def _bits_to_values(bits: npt.NDArray[np.uint64], d: DTypeInfo) -> F64:
    if d.name == "float64":
        return bits.astype(np.uint64).view(np.float64).copy()
    if d.name == "float32":
        with np.errstate(invalid="ignore"):  # signalling NaN patterns stay NaN
            return bits.astype(np.uint32).view(np.float32).astype(np.float64)
    if d.name == "float16":
        return bits.astype(np.uint16).view(np.float16).astype(np.float64)
    as32 = (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)
    return as32.astype(np.float64)


def bits_to_values(bits: npt.NDArray[np.uint64], dtype: str) -> F64:
    """The values of raw bit patterns of dtype, as float64."""
    return _bits_to_values(bits, info(dtype))


def _values_to_bits(values: F64, d: DTypeInfo) -> npt.NDArray[np.uint64]:
    """Round to nearest (ties to even) in the dtype, then take the bit pattern."""
    v = np.asarray(values, dtype=np.float64)
    if d.name == "float64":
        return v.view(np.uint64).copy()
    if d.name == "float32":
        with np.errstate(over="ignore"):
            return v.astype(np.float32).view(np.uint32).astype(np.uint64)
    if d.name == "float16":
        with np.errstate(over="ignore"):
            return v.astype(np.float16).view(np.uint16).astype(np.uint64)
    with np.errstate(over="ignore"):
        b32 = v.astype(np.float32).view(np.uint32).astype(np.uint64)
    # float64 -> float32 -> bfloat16 can double-round; exact for every value we produce
    # (bfloat16 values, or constants whose float32 is not exactly on a tie).
    bias = np.uint64(0x7FFF) + ((b32 >> np.uint64(16)) & np.uint64(1))
    out = (b32 + bias) >> np.uint64(16)
    nan = np.isnan(v)
    out[nan] = 0x7FC0
    return out


def values_to_keys(values: F64, dtype: str | DTypeInfo) -> I64:
    d = info(dtype) if isinstance(dtype, str) else dtype
    bits = _values_to_bits(values, d)
    sign = (bits & np.uint64(d.sign_mask)) != 0
    mag = (bits & np.uint64(d.sign_mask - 1)).astype(np.int64)
    return np.where(sign, -mag - 1, mag).astype(np.int64)


def keys_to_values(keys: I64, dtype: str | DTypeInfo) -> F64:
    d = info(dtype) if isinstance(dtype, str) else dtype
    k = np.asarray(keys, dtype=np.int64)
    neg = k < 0
    mag = np.where(neg, -k - 1, k).astype(np.uint64)
    bits = np.where(neg, mag | np.uint64(d.sign_mask), mag).astype(np.uint64)
    return _bits_to_values(bits, d)


def round_to(values: F64, dtype: str) -> F64:
    """Values rounded to the nearest value of dtype, as float64."""
    return keys_to_values(values_to_keys(values, dtype), dtype)


def shortest_repr(value: float, dtype: str) -> str:
    """The shortest decimal string that rounds back to value in dtype."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if dtype == "float64" or abs(value) > info(dtype).max:
        # beyond the dtype (a difference of two values, a float64 derivative): not a value
        # of it, so its own float64 repr (and no numpy overflow warning from a cast)
        return repr(float(value))
    if dtype == "float32":
        return _clean(np.format_float_positional(np.float32(value), unique=True, trim="0")
                      if _plain(value) else
                      np.format_float_scientific(np.float32(value), unique=True, trim="0"))
    if dtype == "float16":
        return _clean(np.format_float_positional(np.float16(value), unique=True, trim="0")
                      if _plain(value) else
                      np.format_float_scientific(np.float16(value), unique=True, trim="0"))
    return _shortest_bf16(value)


def _plain(value: float) -> bool:
    return value == 0 or 1e-4 <= abs(value) < 1e16


def _clean(text: str) -> str:
    """numpy writes '100.' and '1.e+05'; make them read like Python floats."""
    if "e" in text:
        mant, exp = text.split("e")
        if mant.endswith("."):
            mant += "0"
        sign = "-" if exp.startswith("-") else "+"
        return f"{mant}e{sign}{exp.lstrip('+-').lstrip('0').rjust(2, '0')}"
    if text.endswith("."):
        return text + "0"
    return text


def _shortest_bf16(value: float) -> str:
    target = values_to_keys(np.array([value]), "bfloat16")[0]
    for digits in range(1, 10):
        text = f"{value:.{digits}g}"
        if values_to_keys(np.array([float(text)]), "bfloat16")[0] == target:
            return repr(float(text)) if "e" not in text else _clean(
                np.format_float_scientific(float(text), unique=True, trim="0"))
    return repr(value)


def display(value: float, dtype: str) -> str:
    """For people: the exact value when it is short (11.09375), else the shortest repr."""
    short = shortest_repr(value, dtype)
    if short in ("nan", "inf", "-inf"):
        return short
    exact = repr(float(value))
    digits = len(exact.replace("-", "").replace(".", "").split("e")[0].strip("0"))
    return exact if digits <= 8 and "e" not in exact else short


def short_number(value: float, dtype: str) -> float | str:
    """A float whose Python repr is the dtype's shortest repr; strings for non-finite. Only
    for baseline fingerprints, which must stay the same across releases."""
    text = shortest_repr(value, dtype)
    if text in ("nan", "inf", "-inf"):
        return text
    return float(text)


def json_number(value: float, dtype: str) -> float | str:
    """The exact float64 value of the dtype's number (11.09375, 65504.0, never the shortest
    decimal 11.09 that rounds back only when parsed as float16): every JSON reader parses
    float64. Strings for non-finite values; -0.0 stays."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    exact = float(round_to(np.array([value], dtype=np.float64), dtype)[0])
    return exact if math.isfinite(exact) else ("inf" if exact > 0 else "-inf")


def describe_range(low: float, high: float, d: DTypeInfo, dtype: str) -> str:
    lo, hi = display(low, dtype), display(high, dtype)
    if low == high:  # -0.0 == 0.0: a range of both zeros names both
        return f"x = {lo}" if lo == hi else f"x = {lo} or {hi}"
    if abs(high) >= d.max and high > 0 and not np.isinf(low):
        return f"x >= {lo}"
    if abs(low) >= d.max and low < 0 and not np.isinf(high):
        return f"x <= {hi}"
    return f"{lo} <= x <= {hi}"


def nonfinite_name(v: float) -> str:
    """How a message names a non-finite value: NaN, inf or -inf."""
    return "NaN" if np.isnan(v) else ("inf" if v > 0 else "-inf")
