"""Sampling targets for `gradsafe compare` and `check --plot`: forward and gradient of
every side of a group on the check's probe plan, run as "sample" jobs by the worker pool
(the same workers as the check). compare/ analyses what comes back; plots draw it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np

from gradsafe.model.samples import F64, Group, GroupData, SideData
from gradsafe.model.types import FRAMEWORKS, DTypeName, Options, Side, Target, TargetResult
from gradsafe.numerics.probes import plan
from gradsafe.run import codec, pool


def probes(dtype: DTypeName, constants: Iterable[float], options: Options) -> F64:
    """The check's probe plan, finite values only (all 65,536 for 16-bit dtypes)."""
    values = plan(dtype, tuple(constants), options.operating_range, options.seed).values
    finite: F64 = values[np.isfinite(values)]
    return finite


def sample_jobs(gs: list[Group], options: Options, first: int = 0
                ) -> tuple[list[pool.Job], list[dict[DTypeName, F64]]]:
    """Worker requests for every side of every group, numbered from `first`: the same
    probes for all sides of a group (the check's plan with the constants of all of them)."""
    jobs: list[pool.Job] = []
    xs_of: list[dict[DTypeName, F64]] = []
    for g in gs:
        constants = sorted({c for _, t in g.sides for c in t.constants})
        xs = {d: probes(d, constants, options) for d in options.dtypes}
        xs_of.append(xs)
        request = {"op": "sample", "xs": {d: codec.encode_array(v) for d, v in xs.items()}}
        for side, t in g.sides:
            jobs.append(pool.Job(first + len(jobs),
                                 dataclasses.replace(t, constants=tuple(constants)),
                                 side.framework, extra=request))
    return jobs, xs_of


def collect(gs: list[Group], xs_of: list[dict[DTypeName, F64]],
            raw: dict[int, dict[str, object]], failed: dict[int, TargetResult], first: int = 0
            ) -> list[tuple[GroupData, tuple[tuple[str, str], ...]]]:
    """The workers' replies to `sample_jobs`, and why a side could not be evaluated."""
    out: list[tuple[GroupData, tuple[tuple[str, str], ...]]] = []
    index = first
    for g, xs in zip(gs, xs_of, strict=True):
        values: dict[str, dict[DTypeName, SideData]] = {}
        errors: list[tuple[str, str]] = []
        for side, _ in g.sides:
            reply = raw.get(index)
            err = failed[index].error if index in failed else None
            index += 1
            if reply is not None and reply.get("error") is None:
                values[side.label] = _decode(reply, xs)
            else:
                errors.append((side.label, str(err or (reply or {}).get("error"))))
        out.append((GroupData(g, xs, values), tuple(errors)))
    return out


def sample_groups(gs: list[Group], options: Options
                  ) -> list[tuple[GroupData, tuple[tuple[str, str], ...]]]:
    jobs, xs_of = sample_jobs(gs, options)
    raw: dict[int, dict[str, object]] = {}
    failed, _ = pool.run(jobs, options, None, None, raw)
    return collect(gs, xs_of, raw, failed)


def plot_groups(targets: Iterable[Target], options: Options, limit: int
                ) -> tuple[list[Group], int]:
    """For `check --plot`: each function to check, on each framework it is checked on
    (classes with parameter variants are left out); at most `limit`, and how many were
    left out."""
    gs: list[Group] = []
    seen: set[tuple[str, str | None]] = set()
    for t in targets:
        fws = [fw for fw in FRAMEWORKS if fw in t.frameworks and
               (options.frameworks is None or fw in options.frameworks)]
        if not fws or t.error is not None or (t.name, t.file) in seen:
            continue
        seen.add((t.name, t.file))
        # a class is drawn as built with its defaults: its first variant, named as the
        # report names that variant; the sample itself builds it with defaults
        name = t.variant.label if t.variant is not None and t.variant.label else t.name
        base = dataclasses.replace(t, variant=None)
        gs.append(Group(name, tuple((Side(fw, name, t.file, t.line, fw, t.kind), base)
                                    for fw in fws)))
    return gs[:limit], max(0, len(gs) - limit)


def _decode(reply: dict[str, object], xs: dict[DTypeName, F64]) -> dict[DTypeName, SideData]:
    samples = reply["samples"]
    assert isinstance(samples, dict)
    out: dict[DTypeName, SideData] = {}
    for d, x in xs.items():
        s = samples[d]
        g = s["gradient"]
        out[d] = SideData(codec.decode_array(s["forward"]),
                          codec.decode_array(g) if g is not None else np.full(x.size, np.nan))
    return out
