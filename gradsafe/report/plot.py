"""`--plot FILE.png`: f and f' per dtype, one curve per framework (or side), bad ranges
shaded and boundaries marked, on a symmetric-log x axis so that 1e-40 and 1e4 both show.

A reporter, not a pipeline stage: it draws data the engine returned. matplotlib (the
optional 'plot' extra) is imported here only, with the Agg backend (no display needed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradsafe.model.codes import FRAMEWORK_DISAGREEMENT
from gradsafe.model.samples import GroupData
from gradsafe.model.types import DTypeName, Finding, Report
from gradsafe.numerics.floats import F64, display, info

MAX_ROWS = 12
MAX_MARK_LINES = 3
XLABEL = "x (symmetric log; decades below 1e-3 compressed)"
MARKERS = ("o", "s", "^")
STYLES = (dict(ls="-", lw=3.2, alpha=0.55), dict(ls="--", lw=1.8, alpha=0.95),
          dict(ls=":", lw=2.2, alpha=0.95))
COLORS = {"torch": "#d62728", "tensorflow": "#ff7f0e", "jax": "#1f77b4"}
OTHER_COLORS = ("#2ca02c", "#9467bd", "#8c564b")
SHADE = {"gradient": "#ff9896", "forward": "#ff9896", "differ gradient": "#ffbb78",
         "differ forward": "#ffbb78"}


@dataclass(frozen=True)
class Span:
    low: float
    high: float
    kind: str  # "gradient" / "forward" bad range; "differ gradient" / "differ forward"
    label: str


@dataclass(frozen=True)
class Mark:
    x: float
    label: str


@dataclass(frozen=True)
class Panel:
    title: str
    dtype: DTypeName
    x: F64
    curves: tuple[tuple[str, str, F64, F64], ...]  # label, framework, forward, gradient
    spans: tuple[Span, ...]
    marks: tuple[Mark, ...]
    points: tuple[tuple[str, float, float], ...] = ()  # f'(x) each side picks at a kink


def _color(i: int, framework: str, used: set[str]) -> str:
    c = COLORS.get(framework, OTHER_COLORS[i % len(OTHER_COLORS)])
    if c in used:
        c = OTHER_COLORS[i % len(OTHER_COLORS)]
    used.add(c)
    return c


def _extent(panel: Panel, operating_range: float) -> float:
    """±R, widened to show every finite boundary (up to a factor 4 beyond it)."""
    d = info(panel.dtype)
    edges = [abs(m.x) for m in panel.marks if np.isfinite(m.x) and abs(m.x) < d.max / 8]
    return float(min(max([operating_range, *[4 * e for e in edges]]), d.max))


def draw(panels: Sequence[Panel], path: str, operating_range: float, heading: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(panels)[:MAX_ROWS]
    fig, axes = plt.subplots(len(rows), 2, figsize=(15, 3.6 * len(rows) + 0.9), squeeze=False)
    for (ax_f, ax_g), panel in zip(axes, rows, strict=True):
        _draw_panel(ax_f, ax_g, panel, operating_range)
    more = f"  ({len(panels) - MAX_ROWS} more rows not drawn)" if len(panels) > MAX_ROWS else ""
    fig.suptitle(heading + more, fontsize=13)
    fig.tight_layout(rect=(0, 0, 1, 0.985 - 0.25 / (3.6 * len(rows) + 0.9)))
    fig.savefig(path, dpi=90, format="png")
    plt.close(fig)


def _draw_panel(ax_f: Any, ax_g: Any, panel: Panel, operating_range: float) -> None:
    d = info(panel.dtype)
    span = _extent(panel, operating_range)
    keep = np.abs(panel.x) <= span
    x = panel.x[keep]
    used: set[str] = set()
    axis = SymLogAxis(d.tiny)
    ticks = axis.ticks(span)
    for ax, which in ((ax_f, "f(x)"), (ax_g, "f'(x)")):
        ax.set_xscale("function", functions=(axis.forward, axis.inverse))
        ax.set_xticks(ticks, [_tick_label(t) for t in ticks])
        ax.set_yscale("symlog", linthresh=1.0, linscale=1.0)
        ax.set_xlim(-span, span)
        ax.axhline(0, color="#999", lw=0.6)
        ax.axvline(0, color="#999", lw=0.6)
        ax.set_title(f"{panel.title} — {which}, {panel.dtype}", fontsize=10)
        ax.set_xlabel(XLABEL, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.tick_params(axis="x", labelrotation=45)
        ax.grid(True, which="major", alpha=0.25)
    for s in panel.spans:
        ax = ax_g if s.kind in ("gradient", "differ gradient") else ax_f
        ax.axvspan(max(s.low, -span), min(s.high, span), color=SHADE[s.kind], alpha=0.45,
                   lw=0, label=s.label)
    for m in panel.marks:
        for a in (ax_f, ax_g):
            a.axvline(m.x, color="k", ls="--", lw=0.9)
    if panel.marks:
        # the numbers go under the axis, not beside the lines: neighbouring marks (a kink
        # at 0 and its flushed subnormal) would print on top of each other
        labels = [m.label for m in panel.marks[:MAX_MARK_LINES]]
        if len(panel.marks) > MAX_MARK_LINES:
            labels.append(f"... {len(panel.marks) - MAX_MARK_LINES} more (see the report)")
        ax_g.set_xlabel(XLABEL + "\n" + "\n".join(f"- - {lab}" for lab in labels),
                        fontsize=8, loc="left")
    colors: dict[str, str] = {}
    for i, (label, fw, fwd, grad) in enumerate(panel.curves):
        color = colors[label] = _color(i, fw, used)
        style = STYLES[i % len(STYLES)]
        f, g = fwd[keep], grad[keep]
        ax_f.plot(x, np.where(np.isfinite(f), f, np.nan), color=color, label=label, **style)
        ax_g.plot(x, np.where(np.isfinite(g), g, np.nan), color=color, label=label, **style)
        for ax, v, what in ((ax_f, f, "f"), (ax_g, g, "f'")):
            bad = ~np.isfinite(v)
            if bad.any():  # a rug of crosses along the top: where the value is NaN/inf
                ax.plot(x[bad], np.full(int(bad.sum()), 0.97 - 0.05 * i), "x", color=color,
                        ms=4, transform=ax.get_xaxis_transform(),
                        label=f"{label}: {what} NaN/inf")
    order = [label for label, *_ in panel.curves]
    for label, px, py in panel.points:
        i = order.index(label)
        ax_g.plot([px], [py], MARKERS[i % len(MARKERS)], ms=11 - 3 * i, mfc="none", mew=2,
                  color=colors[label], label=f"{label}: f' at kink")
    for ax in (ax_f, ax_g):
        handles, labels = ax.get_legend_handles_labels()
        seen: dict[str, Any] = {}
        for h, lab in zip(handles, labels, strict=True):
            seen.setdefault(lab, h)
        ax.legend(seen.values(), seen.keys(), fontsize=7, loc="best", framealpha=0.85)


class SymLogAxis:
    """A symmetric-log x axis whose decades below 1e-3 share one unit of width.

    A plain symlog axis from 1e-38 to 1e4 gives 42 equal decades, and the few where an
    activation does anything (1e-2 to 1e4) get a seventh of the width. Here every decade
    from 1e-3 up is one unit, the decades from the smallest normal to 1e-3 share one unit
    (so 1e-40 still shows, apart from 0), and below the smallest normal it is linear."""

    KNEE = 1e-3
    LINEAR = 0.4  # width of [0, smallest normal]
    SMALL = 2.0  # width of [0, KNEE]

    def __init__(self, tiny: float) -> None:
        self.tiny = tiny
        self.small_decades = math.log10(self.KNEE / tiny)

    def _out(self, a: F64) -> F64:
        lin, knee = self.LINEAR, self.SMALL
        with np.errstate(divide="ignore", invalid="ignore"):
            low = lin * a / self.tiny
            small = lin + (knee - lin) * np.log10(np.maximum(a, self.tiny) / self.tiny) \
                / self.small_decades
            big = knee + np.log10(np.maximum(a, self.KNEE) / self.KNEE)
        out: F64 = np.where(a < self.tiny, low, np.where(a < self.KNEE, small, big))
        return out

    def _in(self, u: F64) -> F64:
        lin, knee = self.LINEAR, self.SMALL
        with np.errstate(over="ignore"):
            low = u / lin * self.tiny
            small = self.tiny * 10.0 ** ((u - lin) / (knee - lin) * self.small_decades)
            big = self.KNEE * 10.0 ** (u - knee)
        out: F64 = np.where(u < lin, low, np.where(u < knee, small, big))
        return out

    def forward(self, x: Any) -> Any:
        x = np.asarray(x, dtype=np.float64)
        return np.sign(x) * self._out(np.abs(x))

    def inverse(self, u: Any) -> Any:
        u = np.asarray(u, dtype=np.float64)
        return np.sign(u) * self._in(np.abs(u))

    def ticks(self, span: float) -> list[float]:
        top = int(np.floor(np.log10(span)))
        small = int(np.ceil(np.log10(self.tiny)))
        step = max(1, top // 4) if top > 6 else 1
        pos = sorted({*(10.0 ** e for e in range(-3, top + 1, step)), 10.0 ** small})
        return [-p for p in reversed(pos)] + [0.0] + pos


def _tick_label(t: float) -> str:
    if t == 0:
        return ""  # the line at 0 is drawn; its label would sit on top of ±1e-38
    e = round(float(np.log10(abs(t))))
    text = "1" if e == 0 else f"1e{e}"
    return ("-" if t < 0 else "") + text


def _span_label(f: Finding) -> str:
    return f"{f.code} {f.kind} NaN/inf ({f.dtype})"


def check_panels(report: Report, data: Sequence[GroupData]) -> list[Panel]:
    """One row per checked function and dtype: its findings' ranges and boundaries."""
    panels: list[Panel] = []
    for gd in data:
        sides = [s for s, _ in gd.group.sides]
        if not gd.values:
            continue
        for dtype, x in gd.xs.items():
            findings = [f for t in report.targets for f in t.findings
                        if t.name == gd.group.name and t.file == sides[0].file
                        and f.dtype == dtype and f.severity != "info"
                        and f.code[:4] in ("GS10", "GS20")]
            spans = tuple(Span(f.range.low, f.range.high, f.kind, _span_label(f))
                          for f in findings)
            marks: dict[float, list[str]] = {}
            for f in findings:
                marks.setdefault(f.boundary, [])
                if f.framework not in marks[f.boundary]:
                    marks[f.boundary].append(f.framework)
            panels.append(Panel(
                gd.group.name, dtype, x,
                tuple((s.label, s.framework, gd.values[s.label][dtype].forward,
                       gd.values[s.label][dtype].gradient)
                      for s in sides if s.label in gd.values),
                spans, tuple(Mark(b, f"x = {display(b, dtype)} ({', '.join(fws)})")
                             for b, fws in sorted(marks.items()))))
    return panels


def compare_panels(report: Report, data: Sequence[GroupData]) -> list[Panel]:
    """One row per comparison and dtype: where the sides differ shaded, kinks marked."""
    panels: list[Panel] = []
    for c, gd in zip(report.comparisons, data, strict=True):
        for dtype, x in gd.xs.items():
            spans = tuple(Span(f.range.low, f.range.high, f"differ {f.kind}",
                               f"{FRAMEWORK_DISAGREEMENT}: {f.framework} differ")
                          for f in c.findings
                          if f.code == FRAMEWORK_DISAGREEMENT and f.dtype == dtype)
            marks = tuple(Mark(k.x, f"kink x = {display(k.x, dtype)}: " + ", ".join(
                f"{lab} {display(v, dtype)}" for lab, v in k.gradients))
                          for k in c.kinks if k.dtype == dtype)
            panels.append(Panel(
                c.name, dtype, x,
                tuple((s.label, s.framework, gd.values[s.label][dtype].forward,
                       gd.values[s.label][dtype].gradient)
                      for s in c.sides if s.label in gd.values),
                spans, marks, tuple((lab, k.x, v) for k in c.kinks if k.dtype == dtype
                                    for lab, v in k.gradients)))
    return panels


def plot_comparisons(report: Report, data: Sequence[GroupData], path: str) -> None:
    draw(compare_panels(report, data), path, report.operating_range,
         "gradsafe compare: " + ", ".join(c.name for c in report.comparisons))


def plot_check(report: Report, data: Sequence[GroupData], path: str) -> None:
    draw(check_panels(report, data), path, report.operating_range,
         "gradsafe check: " + ", ".join(dict.fromkeys(gd.group.name for gd in data)))
