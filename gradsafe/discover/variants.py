"""Expand a class target into the configurations that get checked (no imports).

Each numeric constructor argument is varied one at a time around the defaults (never a
cartesian product, so a class with k arguments gives at most 1 + k * len(grid) parameter
sets); each set is checked in train and eval mode when the class's source depends on a mode,
with a fixed seed when it draws random numbers, and on (N, C) and (N, C, H, W) inputs when a
count argument such as num_parameters makes its weights per-channel ((N, H, W, C) for
Keras and JAX, whose convention is channels-last).
"""

from __future__ import annotations

import ast
import dataclasses
import itertools
import math
from collections.abc import Iterable

import numpy as np

from gradsafe.discover.params import COUNT_NAMES
from gradsafe.model.types import (
    Options,
    ParamSpec,
    ParamValue,
    Target,
    TargetKind,
    Variant,
    missing_args,
)

TINY = 1e-6
LARGE = 1e3
MAX_PARAM_SETS = 32  # per class, before modes and layouts multiply them
MODES = ("train", "eval")
CLASS_KINDS = (TargetKind.MODULE, TargetKind.LAYER, TargetKind.NNX, TargetKind.TRAX)
HW = (2, 2)  # spatial size of the (N, C, H, W) layout


class VariantError(Exception):
    """A --param value cannot be used (unknown argument)."""


def is_number(value: object) -> bool:
    """An int or a float, not a bool (True is an int to isinstance)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def literal(text: str) -> object:
    """A Python literal as written (1 stays an int, 1.0 a float; strings, bools, tuples,
    None; inf and nan as words); ValueError when it is not one."""
    words = {"inf": math.inf, "+inf": math.inf, "-inf": -math.inf, "nan": math.nan}
    if text.strip().lower() in words:
        return words[text.strip().lower()]
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise ValueError(f"'{text}' is not a Python literal") from None


def grid(spec: ParamSpec) -> list[ParamValue]:
    """Values to try besides the default: 0, the negated default, tiny, large, the
    constants the source compares the argument to and their float32 neighbours."""
    d = spec.default
    if spec.kind == "count":
        return [1, 3]
    if spec.kind == "int":
        return [0, -d if d else -1, int(LARGE)]
    base = float(d) if d is not None else 1.0
    values: list[ParamValue] = [0.0, -base if base else -1.0, TINY, LARGE]
    for edge in spec.edges:
        with np.errstate(over="ignore"):  # an edge beyond float32 is inf there
            e = np.float32(edge)
        values += [float(np.nextafter(e, np.float32(-np.inf))), float(e),
                   float(np.nextafter(e, np.float32(np.inf)))]
    return values


def _unique(values: Iterable[ParamValue]) -> list[ParamValue]:
    out: list[ParamValue] = []
    for v in values:
        if not any(type(v) is type(o) and (v == o or (v != v and o != o)) for o in out):
            out.append(v)
    return out


def fmt(v: ParamValue) -> str:
    return str(v) if isinstance(v, int) else repr(float(v))


def label(name: str, specs: tuple[ParamSpec, ...], v: Variant) -> str:
    text = name
    if specs:
        text += "(" + ", ".join(f"{k}={fmt(x)}" for k, x in v.params) + ")"
    extra = []
    if v.mode:
        extra.append(f"mode={v.mode}")
    if v.seed is not None:
        extra.append(f"seed={v.seed}")
    if v.layout == "NC":
        extra.append(f"input=(N, {v.channels})")
    elif v.layout == "NCHW":
        extra.append(f"input=(N, {v.channels}, {HW[0]}, {HW[1]})")
    elif v.layout == "NHWC":
        extra.append(f"input=(N, {HW[0]}, {HW[1]}, {v.channels})")
    return text + (f"[{', '.join(extra)}]" if extra else "")


def keywords(target: Target) -> tuple[str, ...]:
    """A function's arguments with defaults (`radius=1.0`): --param sets them."""
    if target.kind in CLASS_KINDS or "class" in target.features:
        return ()
    return tuple(a for a in target.accepts
                 if a != "**" and a not in target.inputs and a not in target.needs)


def function_settings(target: Target, options: Options) -> list[Target]:
    """The function once per combination of the values --param gives its keywords, then
    (with the grid on) once per grid value of each numeric keyword that neither --param nor
    --arg sets, one at a time around the defaults, as for constructor arguments."""
    bound = {k for k, _ in target.args}
    chosen = [(name, values) for name, values in options.param_values
              if name in keywords(target) and name not in bound]
    out = []
    for combo in itertools.product(*(_unique(list(v)) for _, v in chosen)):
        pairs = [(name, repr(v)) for (name, _), v in zip(chosen, combo, strict=True)]
        out.append(dataclasses.replace(
            target, args=tuple(sorted((*target.args, *pairs))),
            setting="(" + ", ".join(f"{n}={v}" for n, v in pairs) + ")") if pairs else target)

    given = bound | {name for name, _ in chosen}
    if not options.param_sweep or missing_args(target):
        return out  # a function skipped for a missing argument is skipped once
    for p in target.params:
        if p.name in given or p.default is None or p.name not in keywords(target):
            continue
        for v in _unique(grid(p)):
            v = float(v) if p.kind == "float" else v
            if len(out) >= MAX_PARAM_SETS or (v == p.default and type(v) is type(p.default)):
                continue
            out.append(dataclasses.replace(
                target, args=tuple(sorted((*target.args, (p.name, repr(v))))),
                setting=f"({p.name}={fmt(v)})", grid=(p.name,)))
    return out


def check_param_names(targets: list[Target], options: Options) -> None:
    known = {p.name for t in targets for p in t.params} | {
        k for t in targets for k in keywords(t)}
    for name, _ in options.param_values:
        if name not in known:
            hint = f" (known: {', '.join(sorted(known))})" if known else ""
            raise VariantError(f"--param {name}: no checked class has a numeric constructor "
                               f"argument named '{name}', nor a function a keyword argument"
                               f"{hint}")


def expand(target: Target, options: Options) -> list[Target]:
    """One target per checked configuration; functions once per combination of the values
    --param gives their keyword arguments (those --arg does not set)."""
    is_class = target.kind in CLASS_KINDS or "class" in target.features
    if not is_class and target.error is None:
        return function_settings(target, options)
    if not is_class or target.error is not None:
        return [target]
    given = dict(options.param_values)
    base: dict[str, ParamValue] = {}
    for p in target.params:
        if p.name in given:
            first = given[p.name][0]
            base[p.name] = p.default if p.default is not None else (
                float(first) if p.kind == "float" and p.declared else first)
        elif p.default is not None:
            base[p.name] = p.default
        else:
            return [dataclasses.replace(target, error=(
                f"needs a value for constructor argument '{p.name}' "
                f"(pass --param {p.name}=VALUE)"))]
    sets: list[dict[str, ParamValue]] = [dict(base)]
    automatic: list[str] = [""]  # per set: the argument whose value the grid chose
    for p in target.params:
        if p.name in given:
            values = list(given[p.name])
        elif options.param_sweep and p.declared:
            values = grid(p)
        else:
            values = []
        for v in _unique(values):
            if p.kind == "float" and p.declared:
                v = float(v)
            elif isinstance(v, float) and v.is_integer():
                v = int(v)
            if v == base[p.name] and type(v) is type(base[p.name]):
                continue
            candidate = {**base, p.name: v}
            if candidate not in sets:
                sets.append(candidate)
                automatic.append("" if p.name in given else p.name)
    sets = sets[:MAX_PARAM_SETS]
    modes: tuple[str | None, ...] = MODES if "modes" in target.features else (None,)
    seed = options.seed if "random" in target.features else None
    defaults = tuple(base.items())
    out: list[Target] = []
    for param_set, auto in zip(sets, automatic, strict=False):
        channels = max([int(x) for k, x in param_set.items() if k in COUNT_NAMES
                        and math.isfinite(x)] or [1])
        # torch is channels-first; Keras and JAX/Flax are channels-last by convention
        torch_first = target.frameworks[:1] == ("torch",) and target.kind != TargetKind.LAYER
        spatial = "NCHW" if torch_first else "NHWC"
        layouts = ("NC", spatial) if channels > 1 else ("N",)
        for mode in modes:
            for layout in layouts:
                var = Variant(tuple(param_set.items()), mode, seed, layout, channels, "",
                              defaults, (auto,) if auto else ())
                var = dataclasses.replace(var, label=label(target.name, target.params, var))
                out.append(dataclasses.replace(target, variant=var))
    return out


def parse_params(specs: Iterable[str]) -> tuple[tuple[str, tuple[ParamValue, ...]], ...]:
    """`alpha=0,0.5,2` (repeatable) -> (("alpha", (0, 0.5, 2.0)),); later ones extend."""
    out: dict[str, list[ParamValue]] = {}
    for spec in specs:
        name, sep, rest = spec.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier() or not rest.strip():
            raise VariantError(f"--param {spec!r}: expected NAME=VALUE[,VALUE...]")
        for item in rest.split(","):
            text = item.strip()
            try:
                value = literal(text)
            except ValueError:
                value = None
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise VariantError(f"--param {spec!r}: '{text}' is not a number") from None
            values = out.setdefault(name, [])
            if value not in values:
                values.append(value)
    return tuple((k, tuple(v)) for k, v in out.items())
