"""What `gradsafe compare` and `check --plot` measure, as data: the sides of a group and
their forward and gradient values on the probe inputs. Reporters (plot.py) read it; compare/
fills it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gradsafe.model.types import DTypeName, Side, Target

F64 = npt.NDArray[np.float64]  # as numerics.floats.F64 (the model imports no stage)


@dataclass(frozen=True)
class Group:
    """Targets compared with each other: one row per pair of sides and dtype."""

    name: str
    sides: tuple[tuple[Side, Target], ...]


@dataclass(frozen=True)
class SideData:
    forward: F64
    gradient: F64  # NaN everywhere when the output is not differentiable


@dataclass(frozen=True)
class GroupData:
    """The measured values, for plots: inputs per dtype, and per side label and dtype."""

    group: Group
    xs: dict[DTypeName, F64]
    values: dict[str, dict[DTypeName, SideData]]
