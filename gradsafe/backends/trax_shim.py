"""The few pieces of Trax that custom Trax layers use, on plain jax.numpy.

Trax no longer installs, yet Trax-style layers (seed 002: `ParametricRelu`,
`RandomizedRelu`) are still around. gradsafe drives them by their protocol alone
(`init_weights_and_state`, `weights`, `rng`, `_mode`, `forward`: see `jax_backend._trax`);
this module only gives such a file something to import instead of trax:

    from gradsafe.backends.trax_shim import Layer, assert_shape, fastmath
    jnp = fastmath.numpy

`fastmath.random` maps to `jax.random` with Trax's keyword names.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, TypeVar

import jax
import jax.numpy as jnp

T = TypeVar("T")


class Layer:
    """What the protocol needs: weights, state, rng, a mode, and __call__ -> forward."""

    def __init__(self, n_in: int = 1, n_out: int = 1, name: str | None = None) -> None:
        self._n_in, self._n_out = n_in, n_out
        self._name = name or type(self).__name__
        self.weights: Any = ()
        self.state: Any = ()
        self.rng: Any = jax.random.PRNGKey(0)
        if not hasattr(self, "_mode"):
            self._mode = "train"

    def init_weights_and_state(self, input_signature: Any) -> None:
        """Layers without weights keep the empty tuple."""

    def forward(self, x: Any) -> Any:
        raise TypeError(f"{type(self).__name__} does not define forward(x)")

    def __call__(self, x: Any) -> Any:
        return self.forward(x)


def assert_shape(spec: str) -> Callable[[T], T]:
    """Trax checks shapes at run time; gradsafe checks that outputs match inputs itself."""
    del spec

    def wrap(cls: T) -> T:
        return cls

    return wrap


def _uniform(rng: Any, shape: tuple[int, ...] = (), dtype: Any = jnp.float32,
             minval: float = 0.0, maxval: float = 1.0) -> Any:
    return jax.random.uniform(rng, shape, dtype=dtype, minval=minval, maxval=maxval)


def _normal(rng: Any, shape: tuple[int, ...] = (), dtype: Any = jnp.float32) -> Any:
    return jax.random.normal(rng, shape, dtype=dtype)


def _bernoulli(rng: Any, p: float = 0.5, shape: tuple[int, ...] | None = None) -> Any:
    return jax.random.bernoulli(rng, p, shape)


fastmath = SimpleNamespace(
    numpy=jnp,
    random=SimpleNamespace(uniform=_uniform, normal=_normal, bernoulli=_bernoulli,
                           split=jax.random.split, get_prng=jax.random.PRNGKey),
)
