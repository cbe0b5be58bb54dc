"""One module per framework behind the small interface in `base`; frameworks load lazily."""

from __future__ import annotations

import importlib

from gradsafe.backends.base import Backend

_MODULES = {"torch": "torch_backend", "tensorflow": "tensorflow_backend", "jax": "jax_backend",
            "numpy": "numpy_backend"}


def get_backend(framework: str) -> Backend:
    """Import the backend module (and so the framework) only when asked for."""
    try:
        module = importlib.import_module(f"gradsafe.backends.{_MODULES[framework]}")
    except KeyError:
        raise ValueError(f"unknown framework {framework!r}") from None
    backend: Backend = module.BACKEND
    return backend
