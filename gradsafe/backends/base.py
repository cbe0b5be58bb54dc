"""The interface every framework backend implements, and the shared chunking around it."""

from __future__ import annotations

import importlib
import math
import random
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from gradsafe.model.types import Variant
from gradsafe.numerics.floats import F64, bits_to_values

# Every evaluation uses vectors whose length is a multiple of WIDTH: CPU kernels take
# different code paths for short tails and vectorized bodies (torch.cosh(89.0) is finite
# in a 16-element tensor and inf in a 64-element one), so sweeps and bisections must see
# every value in the same kind of vector.
WIDTH = 1024
# how a torch module's cast note starts (torch_backend writes it, check/cast.py reads it)
CAST_NOTE = "module cast with"
CHUNK = 1 << 16
# the layout of a row-wise class (softmax over the last axis): (N, channels) rows, checked
# by check/rows.py; set inside the worker, never by discovery
ROWS = "rows"
RANDOM_STATE = 0  # see Backend.reseed


class TargetError(Exception):
    """The target broke its contract (raised, returned None, wrong shape...)."""


class ShapeError(TargetError):
    """The output's shape is not the input's (a reduction returns one number)."""

    def __init__(self, message: str, shape: tuple[int, ...]) -> None:
        super().__init__(message)
        self.shape = shape


class NotATarget(TargetError):
    """Before any sweep: the object is not an elementwise or row-wise float function as it
    stands (raises on a float vector, returns something else, mixes elements). Skipped
    when discovery found it; an error when the user named it."""


@dataclass(frozen=True)
class Evaluation:
    forward: F64
    gradient: F64 | None  # None: the output does not depend differentiably on the input
    note: str | None = None
    floating: bool = True  # False: the output is integer or boolean (masks, counts)


Fn = Callable[[Any], Any]
Masks = tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]
MaskFn = Callable[[int], Masks]


def resolve_dotted(dotted: str) -> Any:
    """Import the longest importable prefix of a dotted name, then walk attributes."""
    parts = dotted.split(".")
    if parts[0] == "tf":
        parts[0] = "tensorflow"
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            raise TargetError(f"'{dotted}' has no attribute '{attr}'") from None
        return obj
    raise TargetError(f"cannot import '{dotted}'")


def pad(xs: F64, multiple: int = WIDTH) -> tuple[F64, int]:
    n = int(xs.size)
    width = max(multiple, -(-n // multiple) * multiple)
    if width == n:
        return xs, n
    filler = xs[0] if n else 0.0
    return np.concatenate([xs, np.full(width - n, filler)]), n


class Backend(ABC):
    name: str

    @abstractmethod
    def version(self) -> str:
        """The framework's version string."""

    @abstractmethod
    def instantiate(self, obj: Any, kind: str, dtype: str) -> tuple[Fn, str | None]:
        """A callable for one dtype, and a note on how it was built (e.g. a dtype policy)."""

    @abstractmethod
    def run_chunk(self, fn: Fn, xs: F64, dtype: str, grad: bool) -> Evaluation:
        """Forward (and one VJP with a ones cotangent when grad) of a padded chunk."""

    def use_device(self, device: str) -> str | None:
        """Run on device ("cpu" or "cuda") from now on; a note naming a GPU, or TargetError
        when the framework cannot use one. The pool hides GPUs from CPU workers."""
        if device == "cpu":
            return None
        raise TargetError(f"--device {device}: the {self.name} backend runs on the CPU only")

    def sweep_masks(self, fn: Fn, dtype: str, count: int) -> MaskFn:
        """For --exhaustive: a function of a first bit pattern that evaluates the `count`
        values from there and returns (gradient non-finite where the forward is finite,
        forward NaN, forward ±inf). Backends override it with a compiled version."""

        def masks(start: int) -> Masks:
            bits = np.arange(start, start + count, dtype=np.uint64)
            ev = self.run_chunk(fn, bits_to_values(bits, dtype), dtype, True)
            return masks_of(ev.forward, ev.gradient)

        return masks

    def reseed(self) -> None:
        """The same random state before every evaluation, so that calls compared with each
        other (the elementwise test, bisection, the float64 reference, a suggestion's
        re-sweep) draw the same numbers even where discovery saw no random call (a random
        scale drawn in a helper). Python's and NumPy's global generators here; backends add
        their framework's."""
        random.seed(RANDOM_STATE)
        np.random.seed(RANDOM_STATE)

    def sum_trailing(self, y: Any, ndim: int) -> Any:
        """y summed over its axes beyond the first ndim, in the widest float type (so that
        finite terms cannot overflow the sum): a per-element value for functions that map
        each element to several outputs (radial-basis expansions, x (N,) -> (N, K))."""
        raise TargetError(f"{self.name} cannot reduce trailing output dimensions")

    def rows(self, columns: list[Any]) -> Any:
        """Stack equal-shaped tensors along a new last axis: rows for row-wise checks."""
        raise TargetError(f"{self.name} cannot build rows")

    def constant(self, x: Any, value: float, track: bool = False) -> Any:
        """A tensor like x holding value (track=False) or x itself with its gradient
        stopped (track=True, value 1 or -1 as a sign)."""
        raise TargetError(f"{self.name} cannot build rows")

    def array_namespace(self) -> Any:
        """The array-API namespace handed to `def act(x, xp)` targets."""
        raise TargetError(f"{self.name} has no array-API namespace")

    def per_element(self, fn: Fn) -> Fn:
        """x (n, ...) -> (n, ...1): fn called on each leading slice alone, as a batch of one
        (x[i:i+1]), in one vectorized call (vmap): a reduction (a loss's mean) gives the
        term of each element or row, with its own forward and gradient."""
        raise TargetError(f"{self.name} cannot map a function over elements")

    def build(self, obj: Any, kind: str, dtype: str, variant: Variant) -> Instance:
        """One configuration of a class (constructor values, mode, seed, input layout)."""
        raise TargetError(f"{self.name} cannot check a '{kind}' target with parameters")

    def uncast(self, obj: Any, kind: str, dtype: str, variant: Variant | None) -> Fn | None:
        """The module built with its own parameters and buffers left as they are (float32)
        and fed `dtype` inputs, as mixed precision runs it; None when building it for
        `dtype` casts nothing of its own (only torch casts modules with .to(dtype))."""
        return None

    def trace(self, fn: Fn, xs: F64, dtype: str, recorder: Recorder,
              grad: bool = True) -> Evaluation:
        """Run fn on one padded chunk with `recorder` active: every tapped value is recorded
        and, when grad, gets the cotangent that flows back into it (see locate.py)."""
        raise TargetError(f"{self.name} cannot trace operations")

    def evaluate(self, fn: Fn, xs: F64, dtype: str, grad: bool = True,
                 multiple: int = WIDTH) -> Evaluation:
        """Forward and gradient at every point, in chunks of full-width vectors."""
        forwards: list[F64] = []
        grads: list[F64] = []
        no_grad = False
        note = None
        floating = True
        for start in range(0, max(int(xs.size), 1), CHUNK):
            chunk, n = pad(xs[start:start + CHUNK], multiple)
            self.reseed()
            ev = self.run_chunk(fn, chunk, dtype, grad)
            note = note or ev.note
            floating = floating and ev.floating
            forwards.append(ev.forward[:n])
            if ev.gradient is None:
                no_grad = True
            else:
                grads.append(ev.gradient[:n])
        forward = np.concatenate(forwards) if forwards else np.zeros(0)
        if not grad or no_grad:
            return Evaluation(forward, None, note, floating)
        return Evaluation(forward, np.concatenate(grads), note)


def masks_of(forward: F64, gradient: F64 | None) -> Masks:
    fin = np.isfinite(forward)
    grad_bad = (fin & ~np.isfinite(gradient) if gradient is not None
                else np.zeros(forward.shape, dtype=bool))
    return grad_bad, np.isnan(forward), np.isinf(forward)

def bind_namespace(fn: Any, xp: Any) -> Fn:
    """`act(x, xp)` as a one-argument function of x."""
    def bound(x: Any) -> Any:
        return fn(x, xp)

    bound.__name__ = getattr(fn, "__name__", "act")
    return bound


def check_output(y_shape: tuple[int, ...], x_shape: tuple[int, ...], y: object,
                 layout: str = "N") -> None:
    """The output's shape must be the input's; in the ROWS layout its last axis may differ
    (GLU halves it)."""
    if y is None:
        raise TargetError("returned None instead of a tensor")
    if layout == ROWS and len(y_shape) == len(x_shape) == 2 \
            and tuple(y_shape[:1]) == tuple(x_shape[:1]):
        return
    if tuple(y_shape) != tuple(x_shape):
        raise ShapeError(f"returned shape {tuple(y_shape)} for an input of shape "
                          f"{tuple(x_shape)} (expected an elementwise function)", tuple(y_shape))


# padded flat inputs -> gradient of each learnable parameter (flattened), computed with a
# cotangent of cotangent_scale(n) on every output so that a sum of finite terms cannot overflow
ParamGrad = Callable[[F64], dict[str, F64]]


@dataclass(frozen=True)
class Instance:
    """A built configuration: `fn` maps a flat vector to a flat vector (reshaping to the
    variant's layout inside), `param_grad` differentiates the learnable parameters."""

    fn: Fn
    note: str | None
    param_grad: ParamGrad | None = None
    param_names: tuple[str, ...] = ()
    multiple: int = WIDTH
    # --order 2: the parameters' gradient of f'(x) (the mixed derivative force training
    # differentiates), with the same cotangent scaling as param_grad
    mixed_grad: ParamGrad | None = None


def layout_multiple(variant: Variant) -> int:
    """Vector lengths must split into whole (N, C[, H, W]) batches and stay full-width."""
    if variant.layout == "N":
        return WIDTH
    return math.lcm(WIDTH, variant.channels * 4)


def layout_shape(variant: Variant, n: int) -> tuple[int, ...]:
    c = variant.channels
    if variant.layout in ("NC", ROWS):
        return (n // c, c)
    if variant.layout == "NCHW":
        return (n // (4 * c), c, 2, 2)
    if variant.layout == "NHWC":
        return (n // (4 * c), 2, 2, c)
    return (n,)


def cotangent_scale(n: int) -> float:
    """2**-k with 2**k >= n: exact in every dtype, and n finite terms each at most the
    dtype's max times the scale cannot overflow their sum."""
    return 2.0 ** -max(0, math.ceil(math.log2(max(n, 1))))


# A backend's wrapper for one tapped value: None when the value is not a tensor of the
# framework; else (the value to use instead, a handle for its cotangent or None when the
# value is not floating, the forward value flattened to float64).
Wrap = Callable[[Any], "tuple[Any, Any, F64] | None"]


@dataclass
class Tapped:
    """One recorded value: an operation's result (role -1) or the operand in position role
    of an operation, as that operation received it."""

    site: int
    role: int
    value: F64
    handle: Any
    cot: F64 | None = None
    source: int | None = None  # operands: the index of the result record that made them
    operands: tuple[int, ...] = ()  # results: the indices of their operand records


class Recorder:
    """What instrumented user code calls (`locate.instrument` rewrites each operation
    `f(a, b)` into `out(site, f(arg(site, 1, a), arg(site, 2, b)))`).

    Outside a trace both are the identity. During one, the backend's `wrap` replaces each
    floating tensor v by v + (-0.0) with the -0.0 a fresh input of the VJP: the value is
    unchanged (even the sign of zero) and the gradient with respect to that input is the
    cotangent of v, the same way in torch, TensorFlow and JAX."""

    def __init__(self) -> None:
        self.wrap: Wrap | None = None
        self.replay = False  # a second pass that wraps values but records nothing
        self.records: list[Tapped] = []
        self._results: dict[int, tuple[int, Any]] = {}  # id(result) -> (record, keep-alive)
        self._pending: dict[int, list[int]] = {}

    def start(self, wrap: Wrap, replay: bool = False) -> None:
        self.wrap, self.replay = wrap, replay
        if not replay:
            self.records, self._results, self._pending = [], {}, {}

    def stop(self) -> None:
        self.wrap = None
        self._results = {}

    def result_of(self, value: Any) -> int | None:
        hit = self._results.get(id(value))
        return hit[0] if hit is not None and hit[1] is value else None

    def arg(self, site: int, role: int, value: Any) -> Any:
        if self.wrap is None:
            return value
        wrapped = self.wrap(value)
        if wrapped is None:
            return value
        new, handle, flat = wrapped
        if not self.replay:
            self._pending.setdefault(site, []).append(len(self.records))
            self.records.append(Tapped(site, role, flat, handle, source=self.result_of(value)))
        return new

    def out(self, site: int, value: Any) -> Any:
        if self.wrap is None:
            return value
        wrapped = self.wrap(value)
        if wrapped is None:
            return value
        new, handle, flat = wrapped
        if not self.replay:
            index = len(self.records)
            self.records.append(Tapped(site, -1, flat, handle,
                                       operands=tuple(self._pending.pop(site, ()))))
            self._results[id(new)] = (index, new)
        return new
