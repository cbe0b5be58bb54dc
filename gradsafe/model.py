"""The data model: every value that flows through the pipeline, as frozen dataclasses.

Numbers are Python floats (float64 holds every float16/bfloat16/float32 value exactly);
reporters format them for the dtype they belong to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Framework = str  # "torch", "tensorflow", "jax", "numpy"
FRAMEWORKS: tuple[Framework, ...] = ("torch", "tensorflow", "jax")
DTypeName = str  # one of DTYPES
DTYPES: tuple[DTypeName, ...] = ("float16", "bfloat16", "float32", "float64")
DEFAULT_DTYPES: tuple[DTypeName, ...] = ("float32", "float16", "bfloat16")
Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")
Kind = Literal["gradient", "forward"]
Status = Literal["pass", "fail", "error"]
TargetKind = str  # "function", "module", "layer", "builtin", ...
# targets with a hand-written gradient (checked by gradcheck) -> the framework they run on
CUSTOM_KINDS: dict[str, str] = {"autograd_function": "torch", "custom_gradient": "tensorflow",
                                "custom_vjp": "jax", "custom_jvp": "jax",
                                "numpy_layer": "numpy"}


@dataclass(frozen=True)
class Location:
    file: str
    line: int
    col: int
    end_line: int
    end_col: int


@dataclass(frozen=True)
class Range:
    """Closed interval of bad inputs on the dtype's float lattice."""

    low: float
    high: float


@dataclass(frozen=True)
class Suggestion:
    title: str
    diff: str
    verified: bool


@dataclass(frozen=True)
class Finding:
    code: str
    kind: Kind
    severity: Severity
    dtype: DTypeName
    framework: str
    example_input: float
    forward: float
    gradient: float
    range: Range
    boundary: float
    location: Location | None
    message: str
    suggestion: Suggestion | None = None


@dataclass(frozen=True)
class Target:
    """Something to check, found statically (the CLI process never imports user code)."""

    name: str
    file: str | None
    line: int | None
    kind: TargetKind
    frameworks: tuple[str, ...]
    constants: tuple[float, ...] = ()
    features: frozenset[str] = field(default_factory=frozenset)
    error: str | None = None


@dataclass(frozen=True)
class Options:
    frameworks: tuple[str, ...] | None = None
    dtypes: tuple[DTypeName, ...] = DEFAULT_DTYPES
    targets: tuple[str, ...] = ()
    operating_range: float = 1e4
    fail_on: Severity = "error"
    timeout: float = 60.0
    seed: int = 0
    # CI-gate settings ([tool.gradsafe] or the command line; see config.py, filters.py)
    paths: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    per_file_ignores: tuple[tuple[str, tuple[str, ...]], ...] = ()
    jobs: int | None = None
    baseline: str | None = None
    root: str = ""  # project root: file paths in fingerprints and patterns are relative to it


@dataclass(frozen=True)
class TargetResult:
    name: str
    file: str | None
    line: int | None
    framework: str | None
    status: Status
    error: str | None
    findings: tuple[Finding, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Suppression:
    """A `# gradsafe: ignore[...]` comment; no codes means a bare ignore (every code)."""

    file: str
    line: int
    codes: tuple[str, ...]


@dataclass(frozen=True)
class Suppressed:
    """A finding kept out of the exit code by a comment or by the baseline file."""

    target: str
    file: str | None
    line: int | None
    framework: str | None
    finding: Finding
    reason: Literal["comment", "baseline"]
    comment: Suppression | None = None


@dataclass(frozen=True)
class Report:
    targets: tuple[TargetResult, ...]
    dtypes: tuple[DTypeName, ...]
    operating_range: float
    fail_on: Severity
    schema: str = "gradsafe-report/1"
    suppressed: tuple[Suppressed, ...] = ()
    unused_suppressions: tuple[Suppression, ...] = ()
    root: str = ""
    notes: tuple[str, ...] = ()  # things the run chose not to check, said once
