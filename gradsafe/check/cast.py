"""Which of two a float16/bfloat16 finding of a torch module belongs to: the cast of its own
parameters and buffers (`module.to(dtype)`, which gradsafe does to check a dtype), or the
formula in that dtype.

Under torch.autocast the module's tensors stay float32; only the inputs are narrow. A finding
whose example input is finite once the module is built that way (its forward, or gradient,
finite after rounding to the dtype) exists only because of the cast, and says so; one that
stays non-finite belongs to the formula either way.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from gradsafe.backends.base import CAST_NOTE, WIDTH, Backend
from gradsafe.model.types import Finding, Target, Variant
from gradsafe.numerics.floats import round_to

NARROW = ("float16", "bfloat16")


def attribute(backend: Backend, target: Target, obj: Any, findings: list[Finding],
              notes: list[str], variant: Variant | None = None) -> list[Finding]:
    """Findings with a sentence on whether they come from the cast of the module (unchanged
    when the backend's notes say no module was cast)."""
    if not any(CAST_NOTE in n for n in notes):
        return findings
    out = list(findings)
    for dtype in NARROW:
        mine = [i for i, f in enumerate(out) if f.dtype == dtype
                and f.kind in ("forward", "gradient") and np.isfinite(f.example_input)]
        if not mine:
            continue
        try:
            fn = backend.uncast(obj, target.kind, dtype, variant)
            if fn is None:
                continue
            xs = np.resize(np.array([out[i].example_input for i in mine]), WIDTH)
            ev = backend.evaluate(fn, xs, dtype)
        except Exception:  # a module that cannot run with mixed dtypes: nothing to say
            continue
        for k, i in enumerate(mine):
            f = out[i]
            value = ev.forward[k] if f.kind == "forward" else (
                np.nan if ev.gradient is None else ev.gradient[k])
            finite = bool(np.isfinite(round_to(np.array([value]), dtype))[0])
            verdict = ("is finite: this finding comes from the cast" if finite else
                       "is still not finite: this finding belongs to the formula")
            text = (f" [the module was cast to {dtype} for this check; with its parameters "
                    f"and buffers kept in float32, as torch.autocast runs it, the {f.kind} "
                    f"at x = {f.example_input:g} {verdict}]")
            out[i] = dataclasses.replace(f, message=f.message + text)
    return out
