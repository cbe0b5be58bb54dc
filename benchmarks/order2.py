"""The cost of --order 2 against --order 1 on the same targets (goal: at most 2.5x).

Each target is checked in this process by the same code a worker runs (sweep.check_target:
probe plan, sweep, bisection, location), once with order 1 and once with order 2, float32
and float16, no suggestions; the framework is imported and warmed up first, so the times
are the sweep's own. Order 2 does everything order 1 does plus the double-backward sweep,
so the ratio is (order 1 + order 2 sweep) / order 1.

Run: PYTHONPATH=. python benchmarks/order2.py [--repeat N] [--json PATH]
Prints one line per target and the overall ratio, and writes them as JSON. Timings never
go into tests.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gradsafe.check import sweep  # noqa: E402
from gradsafe.discover.targets import discover  # noqa: E402
from gradsafe.model.types import Options, Target  # noqa: E402

# (framework, fixture file, target): functions whose second derivative matters in practice
TARGETS = [
    ("torch", "fixtures/order2/torch_second.py", "mish"),
    ("torch", "fixtures/order2/torch_second.py", "mish_safe"),
    ("torch", "fixtures/order2/torch_second.py", "tanhexp"),
    ("jax", "fixtures/order2/jax_second.py", "gelu"),
    ("jax", "fixtures/order2/jax_second.py", "tanhexp"),
    ("tensorflow", "fixtures/order2/tf_second.py", "repu"),
    ("tensorflow", "fixtures/order2/tf_second.py", "repu_safe"),
]
BACKENDS = {"torch": "gradsafe.backends.torch_backend", "jax": "gradsafe.backends.jax_backend",
            "tensorflow": "gradsafe.backends.tensorflow_backend"}


def target(file: str, name: str) -> Target:
    found = [t for t in discover([str(ROOT / file)]) if t.name == name]
    if not found:
        raise SystemExit(f"{file}: no target {name}")
    return found[0]


def cpu_time(fn: object, repeat: int) -> tuple[float, float]:
    """Best CPU time (robust to a busy machine) and best wall time of repeat runs."""
    best, wall = float("inf"), float("inf")
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.process_time() - c0)
        wall = min(wall, time.perf_counter() - w0)
    return best, wall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", default=str(ROOT / "benchmarks/results/order2.json"))
    args = ap.parse_args()
    base = Options(dtypes=("float32", "float16"), suggest=False, cache=False)
    rows = []
    for fw, file, name in TARGETS:
        backend = importlib.import_module(BACKENDS[fw]).BACKEND  # type: ignore[attr-defined]
        t = target(file, name)
        times, walls = {}, {}
        for order in (1, 2):
            opts = dataclasses.replace(base, order=order)
            sweep.check_target(backend, t, opts)  # warm-up: kernels, jit caches
            times[order], walls[order] = cpu_time(
                lambda b=backend, tt=t, o=opts: sweep.check_target(b, tt, o), args.repeat)
        ratio = times[2] / times[1]
        rows.append({"framework": fw, "target": name, "order1_s": round(times[1], 3),
                     "order2_s": round(times[2], 3), "ratio": round(ratio, 2),
                     "order1_wall_s": round(walls[1], 3), "order2_wall_s": round(walls[2], 3)})
        print(f"{fw:10s} {name:14s} order 1 {times[1]:6.2f} s  order 2 {times[2]:6.2f} s  "
              f"x{ratio:.2f}  (wall {walls[1]:.2f} s / {walls[2]:.2f} s)", flush=True)
    total1 = sum(r["order1_s"] for r in rows)
    total2 = sum(r["order2_s"] for r in rows)
    wall1 = sum(r["order1_wall_s"] for r in rows)
    wall2 = sum(r["order2_wall_s"] for r in rows)
    print(f"all targets: order 1 {total1:.2f} s, order 2 {total2:.2f} s CPU, "
          f"x{total2 / total1:.2f}; wall {wall1:.2f} s / {wall2:.2f} s, "
          f"x{wall2 / wall1:.2f} (goal <= 2.5)")
    out = {"machine": platform.platform(), "processor": platform.processor(),
           "cpu_seconds": f"best of {args.repeat}, process time", "targets": rows,
           "total_ratio": round(total2 / total1, 2),
           "total_wall_ratio": round(wall2 / wall1, 2)}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
