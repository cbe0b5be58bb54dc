"""Model dataclasses to plain JSON data and back (the worker protocol and reports)."""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

import numpy as np

from gradsafe.model.types import (
    Finding,
    Location,
    Options,
    ParamSpec,
    Range,
    Step,
    Suggestion,
    Target,
    TargetKind,
    TargetResult,
    Variant,
)
from gradsafe.numerics.floats import F64


def encode(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: encode(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, frozenset):
        return sorted(encode(v) for v in obj)
    if isinstance(obj, (tuple, list)):
        return [encode(v) for v in obj]
    return obj


def _location(d: dict[str, Any] | None) -> Location | None:
    return Location(**d) if d else None


def finding(d: dict[str, Any]) -> Finding:
    s = d.get("suggestion")
    return Finding(
        code=d["code"], kind=d["kind"], severity=d["severity"], dtype=d["dtype"],
        framework=d["framework"], example_input=float(d["example_input"]),
        forward=float(d["forward"]), gradient=float(d["gradient"]),
        range=Range(float(d["range"]["low"]), float(d["range"]["high"])),
        boundary=float(d["boundary"]), location=_location(d.get("location")),
        message=d["message"],
        suggestion=Suggestion(s["title"], s["diff"], bool(s["verified"]),
                              tuple(s.get("transforms", ()))) if s else None,
        path=tuple(Step(p["op"], Location(**p["location"])) for p in d.get("path", ())),
        order=int(d.get("order", 1)),
    )


def target_result(d: dict[str, Any]) -> TargetResult:
    return TargetResult(
        d["name"], d["file"], d["line"], d["framework"], d["status"], d["error"],
        tuple(finding(f) for f in d["findings"]), tuple(d.get("notes", ())),
        variant(d.get("variant")), d.get("reason"),
    )


def variant(d: dict[str, Any] | None) -> Variant | None:
    if d is None:
        return None
    return Variant(tuple((str(k), v) for k, v in d["params"]), d["mode"], d["seed"],
                   d["layout"], d["channels"], d["label"],
                   tuple((str(k), v) for k, v in d.get("defaults", ())),
                   tuple(str(k) for k in d.get("grid", ())))


def param_spec(d: dict[str, Any]) -> ParamSpec:
    return ParamSpec(d["name"], d["default"], d["kind"], tuple(d.get("edges", ())),
                     bool(d.get("declared", True)))


def _pairs(items: Any) -> tuple[tuple[str, str], ...]:
    return tuple((str(k), str(v)) for k, v in items or ())


def _domain(d: Any) -> tuple[float, float] | None:
    return (float(d[0]), float(d[1])) if d else None


def target(d: dict[str, Any]) -> Target:
    return Target(d["name"], d["file"], d["line"], TargetKind(d["kind"]),
                  tuple(d["frameworks"]), tuple(d["constants"]), frozenset(d["features"]),
                  d["error"], tuple(param_spec(p) for p in d.get("params", ())),
                  variant(d.get("variant")),
                  explicit=bool(d.get("explicit", False)), args=_pairs(d.get("args")),
                  accepts=tuple(d.get("accepts", ())), needs=tuple(d.get("needs", ())),
                  domain=_domain(d.get("domain")), inputs=tuple(d.get("inputs", ())),
                  sweep=d.get("sweep"), setting=str(d.get("setting", "")),
                  grid=tuple(d.get("grid", ())))


def options(d: dict[str, Any]) -> Options:
    fws = d["frameworks"]
    # workers need only the sweep settings, not the CI-gate ones
    return Options(
        frameworks=tuple(fws) if fws is not None else None, dtypes=tuple(d["dtypes"]),
        targets=tuple(d["targets"]), operating_range=d["operating_range"],
        fail_on=d["fail_on"], timeout=d["timeout"], seed=d["seed"],
        param_values=tuple((str(k), tuple(v)) for k, v in d.get("param_values", ())),
        param_sweep=bool(d.get("param_sweep", True)), suggest=bool(d.get("suggest", True)),
        exhaustive=bool(d.get("exhaustive", False)), device=str(d.get("device", "cpu")),
        args=_pairs(d.get("args")), domain=_domain(d.get("domain")),
        order=int(d.get("order", 1)), sweep=d.get("sweep"))


def encode_array(a: F64) -> str:
    """float64 values, exactly (NaN, inf and -0.0 included), as base64 text."""
    return base64.b64encode(np.ascontiguousarray(a, dtype="<f8").tobytes()).decode("ascii")


def decode_array(text: str) -> F64:
    return np.frombuffer(base64.b64decode(text), dtype="<f8").astype(np.float64)
