"""The data model: every value that flows through the pipeline, as frozen dataclasses.

Numbers are Python floats (float64 holds every float16/bfloat16/float32 value exactly);
reporters format them for the dtype they belong to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

Framework = str  # "torch", "tensorflow", "jax", "numpy"
FRAMEWORKS: tuple[Framework, ...] = ("torch", "tensorflow", "jax")
DTypeName = str  # one of DTYPES
DTYPES: tuple[DTypeName, ...] = ("float16", "bfloat16", "float32", "float64")
DEFAULT_DTYPES: tuple[DTypeName, ...] = ("float32", "float16", "bfloat16")
Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")
Kind = Literal["gradient", "forward"]
Status = Literal["pass", "fail", "error", "skipped"]


class TargetKind(str, Enum):
    """What a target is, as discovery found it. A str (JSON, caches and the worker protocol
    carry the value; it compares, hashes and formats as its value)."""

    FUNCTION = "function"
    BUILTIN = "builtin"  # a dotted name of a framework function (torch.nn.functional.elu)
    MODULE = "module"  # torch.nn.Module subclass
    LAYER = "layer"  # Keras layer
    NNX = "nnx"  # Flax NNX module
    TRAX = "trax"  # Trax-style layer (init_weights_and_state + forward)
    NUMPY_LAYER = "numpy_layer"  # forward/backward classes in NumPy
    AUTOGRAD_FUNCTION = "autograd_function"  # torch.autograd.Function
    CUSTOM_GRADIENT = "custom_gradient"  # tf.custom_gradient
    CUSTOM_VJP = "custom_vjp"  # jax.custom_vjp
    CUSTOM_JVP = "custom_jvp"  # jax.custom_jvp
    KERAS_OPS = "keras_ops"  # written with keras.ops alone, run on every Keras backend
    ARRAY_API = "array_api"  # def act(x, xp)

    __hash__ = str.__hash__  # Enum hashes the member's name; dicts keyed by the value work

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


# targets with a hand-written gradient (checked by gradcheck) -> the framework they run on
CUSTOM_KINDS: dict[TargetKind, str] = {
    TargetKind.AUTOGRAD_FUNCTION: "torch", TargetKind.CUSTOM_GRADIENT: "tensorflow",
    TargetKind.CUSTOM_VJP: "jax", TargetKind.CUSTOM_JVP: "jax",
    TargetKind.NUMPY_LAYER: "numpy"}
# targets written once and run on every framework: Keras 3 `keras.ops` code (under each
# Keras backend) and array-API functions `def act(x, xp)`
PORTABLE_KINDS: tuple[TargetKind, ...] = (TargetKind.KERAS_OPS, TargetKind.ARRAY_API)
PORTABLE: tuple[str, ...] = FRAMEWORKS


def fails(severity: str, fail_on: str) -> bool:
    """The one fail-on rule: a severity at or above --fail-on fails (also for the
    severities of a JSON report, which shard merging reads as plain strings)."""
    return SEVERITIES.index(severity) <= SEVERITIES.index(fail_on)
ParamKind = Literal["float", "int", "count"]
ParamValue = float | int


@dataclass(frozen=True)
class Location:
    file: str
    line: int
    col: int
    end_line: int
    end_col: int


@dataclass(frozen=True)
class Step:
    """One operation on the way from a finding's culprit towards the output."""

    op: str  # as the source spells it, short: exp, where, *
    location: Location


@dataclass(frozen=True)
class Range:
    """Closed interval of bad inputs on the dtype's float lattice."""

    low: float
    high: float


@dataclass(frozen=True)
class Suggestion:
    title: str
    diff: str  # unified diff of the file; empty when only advice can be given
    verified: bool
    # gradsafe.suggest.rewrite transforms that produce the diff (or, with no diff and not verified,
    # that were tried: fix does not rewrite a target where one configuration has such a hint)
    transforms: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)  # built by name: twelve fields, several floats
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
    # the culprit and the operations its cotangent passes on the way to the output, where
    # they matter to the cause (the discarding where, the saturating tanh); else empty
    path: tuple[Step, ...] = ()
    order: int = 1  # 2: the finding is about the second derivative f'' (--order 2)

    def fails(self, fail_on: Severity) -> bool:
        return fails(self.severity, fail_on)


@dataclass(frozen=True)
class ParamSpec:
    """A numeric constructor argument, read statically from the class's __init__."""

    name: str
    default: ParamValue | None  # None: required, must come from --param
    kind: ParamKind  # "count": an int that sizes something (num_parameters, channels)
    edges: tuple[float, ...] = ()  # constants the source compares the argument against
    # False: no annotation and no default, so the kind is a guess: values given with
    # --param keep the type they were written in (dim=1 stays an int) and no grid is swept
    declared: bool = True


@dataclass(frozen=True)
class Variant:
    """One checked configuration of a class: constructor values, mode, seed, input layout."""

    params: tuple[tuple[str, ParamValue], ...] = ()
    mode: str | None = None  # "train" / "eval"; None: the class has no mode-dependent code
    seed: int | None = None  # set when the class has random behaviour
    layout: str = "N"  # "N" (elementwise vector), "NC", "NCHW" (per-channel parameters)
    channels: int = 1
    label: str = ""  # the name reported: ELU(alpha=0.0)[mode=train, seed=0]
    defaults: tuple[tuple[str, ParamValue], ...] = ()  # the constructor defaults, for messages
    # arguments whose value here comes from gradsafe's automatic grid, not from the user
    # (defaults, --param, config): findings are warnings at most (see param_sweep.py)
    grid: tuple[str, ...] = ()


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
    params: tuple[ParamSpec, ...] = ()
    variant: Variant | None = None
    # named by the user (--target, config, FILE:NAME): what cannot be checked is an error;
    # a target discovery found on its own is skipped instead, with its reason
    explicit: bool = False
    # call arguments beyond x (--arg, per-target config): name -> Python literal source
    args: tuple[tuple[str, str], ...] = ()
    accepts: tuple[str, ...] = ()  # parameters beyond x ("**": any keyword)
    needs: tuple[str, ...] = ()  # required parameters beyond x (each needs an --arg)
    domain: tuple[float, float] | None = None  # inputs outside are not reported (--domain)
    inputs: tuple[str, ...] = ()  # required positional parameters, x first (--sweep)
    # the parameter swept instead of the first (--sweep NAME), or one column of it along
    # the last axis, "boxes1[..., 3]" (see column_sweep)
    sweep: str | None = None
    setting: str = ""  # a function's keyword values set by --param: "(radius=0.04)"
    grid: tuple[str, ...] = ()  # keywords whose value here the automatic grid chose

    @property
    def label(self) -> str:
        """The name results are reported under (a variant's name carries its values, a
        function's its --param keywords; a sweep of another parameter than the first, that
        parameter's name)."""
        base = self.variant.label if self.variant is not None else self.name + self.setting
        return f"{base}[{self.sweep}]" if self.sweep else base

    def dialect(self, framework: str) -> str:
        """The names a rewrite of this target is written in: the framework's own, or
        keras_ops / array_api for code written once for every framework (portable functions,
        and Keras layers written with keras.ops alone, which every backend runs)."""
        if self.kind in PORTABLE_KINDS:
            return self.kind.value
        if self.kind == TargetKind.LAYER and self.frameworks == PORTABLE:
            return "keras_ops"
        return framework


_COLUMN = re.compile(r"^\s*([A-Za-z_]\w*)\s*\[\s*(?:\.\.\.\s*,\s*)?(-?\d+)\s*\]\s*$")


def column_sweep(sweep: str | None) -> tuple[str, int] | None:
    """`NAME[C]` or `NAME[..., C]`: sweep column C of NAME's last axis (a box's y2); None
    for a plain parameter name."""
    m = _COLUMN.match(sweep or "")
    return (m.group(1), int(m.group(2))) if m else None


def column_text(name: str, col: int) -> str:
    """The canonical spelling reports use: boxes1[..., 3]."""
    return f"{name}[..., {col}]"


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
    # --param NAME=V1,V2: values replacing the automatic grid of that constructor argument
    param_values: tuple[tuple[str, tuple[ParamValue, ...]], ...] = ()
    param_sweep: bool = True  # False: defaults and --param values only
    suggest: bool = True  # False (--no-suggest): no rewrites, no verification re-sweeps
    # scale (see cache.py, shard.py, exhaustive.py)
    cache: bool = True
    exhaustive: bool = False  # every float32 value instead of the probe plan
    device: str = "cpu"  # "cpu", "cuda" or "auto"
    shard: tuple[int, int] | None = None  # (i, n), 1-based: check the i-th of n shares
    order: int = 1  # 2: also sweep the second derivative (see second.py)
    # --arg NAME=LITERAL: call arguments beyond x, as Python literal source
    args: tuple[tuple[str, str], ...] = ()
    domain: tuple[float, float] | None = None  # --domain LOW,HIGH
    sweep: str | None = None  # --sweep NAME|all: the parameter swept (default: the first)
    # [tool.gradsafe.targets."Name"]: per-target args, params and domain
    per_target: tuple[tuple[str, TargetSettings], ...] = ()


@dataclass(frozen=True)
class TargetSettings:
    """What config says about one target by name."""

    args: tuple[tuple[str, str], ...] = ()
    params: tuple[tuple[str, tuple[ParamValue, ...]], ...] = ()
    domain: tuple[float, float] | None = None
    sweep: str | None = None


# the note on a grid value's result whose findings the defaults already have (see
# discover.selection.grid_repeats); the text report lists such a result only with -v when
# nothing else is left in it
REPEATS_NOTE = "the same as at the defaults not repeated here (see the defaults' result)"


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
    variant: Variant | None = None
    reason: str | None = None  # status "skipped": why it is not a target (needs x, raises...)


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
class Side:
    """One thing `gradsafe compare` evaluates: a target on one framework."""

    label: str  # how tables name it: "torch", "jax", or "ports.py::elu" when ambiguous
    name: str
    file: str | None
    line: int | None
    framework: str
    kind: TargetKind


@dataclass(frozen=True)
class Difference:
    """Where two sides disagree beyond the dtype's tolerance, in forward or gradient."""

    count: int  # probes that differ
    low: float  # smallest and largest differing input
    high: float
    at: float  # input of the largest difference
    a: float  # the two values there
    b: float
    max_diff: float  # |a - b| (inf when only one of them is finite)


RowStatus = Literal["agree", "kink", "differ", "error"]


@dataclass(frozen=True)
class PairRow:
    """One framework pair in one dtype: agree, differ (GS401) or only kink conventions."""

    dtype: DTypeName
    a: str  # side labels
    b: str
    status: RowStatus
    probes: int
    tolerance: float
    forward: Difference | None
    gradient: Difference | None
    kinks: int


@dataclass(frozen=True)
class Kink:
    """A point where the function is not smooth (one-sided derivatives differ) and the
    sides pick different values for f'(x): every side's choice, measured."""

    dtype: DTypeName
    x: float
    left: float  # f' just below and just above x (the sides agree there)
    right: float
    gradients: tuple[tuple[str, float], ...]  # side label -> f'(x)


@dataclass(frozen=True)
class Comparison:
    name: str
    sides: tuple[Side, ...]
    rows: tuple[PairRow, ...]
    kinks: tuple[Kink, ...]
    findings: tuple[Finding, ...]
    errors: tuple[tuple[str, str], ...] = ()  # side label -> why it could not be evaluated


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
    partial: bool = False  # interrupted (Ctrl-C): some targets or values were not checked
    shard: tuple[int, int] | None = None  # (i, n) when this is one shard of a run
    comparisons: tuple[Comparison, ...] = ()  # `gradsafe compare`
    order: int = 1  # the highest derivative order checked (--order)

    @property
    def exit_code(self) -> int:
        """Bit 1: findings at or above fail_on. Bit 2: something could not be checked
        (including a run interrupted with Ctrl-C)."""
        code = 2 if self.partial else 0
        for t in self.targets:
            if t.status == "error":
                code |= 2
            if any(f.fails(self.fail_on) for f in t.findings):
                code |= 1
        for c in self.comparisons:
            if c.errors:
                code |= 2
            if any(f.fails(self.fail_on) for f in c.findings):
                code |= 1
        return code


def missing_args(target: Target) -> tuple[str, ...]:
    """Required parameters without a value: those beyond x, and the first parameter
    itself when another one is swept."""
    given = {k for k, _ in target.args}
    needs = target.needs
    if column_sweep(target.sweep) is not None and target.inputs:
        needs = tuple(dict.fromkeys((target.inputs[0], *needs)))  # the row is given
    elif target.sweep is not None and target.inputs:
        needs = (target.inputs[0], *(n for n in needs if n != target.sweep))
    return tuple(n for n in needs if n not in given)
