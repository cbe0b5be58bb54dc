"""What the automatic constructor grid and the suggestions cost on a real module of
parametrised activation classes (goal: with / without <= 2.5), and what verifying the
suggestions costs on failing targets (goal: with / without <= 2.0).

grid     Keras 3's own activation layers (the installed `keras/src/layers/activations`:
         Activation, ELU, LeakyReLU, PReLU, ReLU, Softmax; 6 classes, 29 configurations with
         the automatic grid), on the torch backend (`--framework torch`). `gradsafe check`
         with the default grid and suggestions vs. the same with --no-param-sweep
         --no-suggest. (torch's own torch/nn/modules/activation.py is not discoverable: its
         classes derive from a relatively imported Module.)
suggest  the failing activations of fixtures/zoo/torch and fixtures/real_cases (naive
         Sigmoid, SiLU, Tanh, Softplus, ELU, Mish, GELU, ... and the formulas of framework
         bug reports), --no-param-sweep: with suggestions (each verified by a re-sweep of the
         rewritten copy) vs. --no-suggest.

Each side is a fresh `gradsafe check --no-cache` (CLI and torch workers); the sides
alternate, best of --repeat, wall and CPU (user + system of the CLI and its workers).
Run: PYTHONPATH=. python benchmarks/grid.py [--repeat N] [--only grid|suggest] [--json PATH]
Timings never go into tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import PY, ROOT, env, timed

FILES = ("activation.py", "elu.py", "leaky_relu.py", "prelu.py", "relu.py", "softmax.py")
GRID_GOAL, SUGGEST_GOAL = 2.5, 2.0


def side_by_side(a: list[str], b: list[str], repeat: int) -> tuple[tuple[float, float],
                                                                    tuple[float, float]]:
    environ = env()
    timed(a, 1, environ), timed(b, 1, environ)  # warm-up: .pyc files, page cache
    best_a = best_b = (float("inf"), float("inf"))
    for _ in range(repeat):
        best_a = min(best_a, timed(a, 1, environ))
        best_b = min(best_b, timed(b, 1, environ))
    return best_a, best_b


def fig_grid(repeat: int) -> dict[str, object]:
    import importlib.util

    spec = importlib.util.find_spec("keras")
    assert spec is not None and spec.origin is not None
    folder = Path(spec.origin).parent / "src" / "layers" / "activations"
    base = [PY, "-m", "gradsafe", "check", *(str(folder / f) for f in FILES), "--format",
            "json", "--no-cache", "--framework", "torch"]
    (w1, c1), (w0, c0) = side_by_side(base, [*base, "--no-param-sweep", "--no-suggest"],
                                      repeat)
    return {"figure": "grid", "with_wall_s": w1, "with_cpu_s": c1, "without_wall_s": w0,
            "without_cpu_s": c0, "ratio_wall": w1 / w0, "ratio_cpu": c1 / c0,
            "goal": GRID_GOAL, "files": list(FILES)}


def fig_suggest(repeat: int) -> dict[str, object]:
    files = sorted(str(p) for d in ("zoo/torch", "real_cases")
                   for p in (ROOT / "fixtures" / d).glob("*.py"))
    base = [PY, "-m", "gradsafe", "check", *files, "--format", "json", "--no-cache",
            "--no-param-sweep", "--framework", "torch"]
    (w1, c1), (w0, c0) = side_by_side(base, [*base, "--no-suggest"], repeat)
    return {"figure": "suggest", "with_wall_s": w1, "with_cpu_s": c1, "without_wall_s": w0,
            "without_cpu_s": c0, "ratio_wall": w1 / w0, "ratio_cpu": c1 / c0,
            "goal": SUGGEST_GOAL, "files": len(files)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", default="grid,suggest")
    ap.add_argument("--json", default=str(ROOT / "benchmarks/results/grid.json"))
    args = ap.parse_args()
    figures = []
    for name in args.only.split(","):
        f = {"grid": fig_grid, "suggest": fig_suggest}[name.strip()](args.repeat)
        figures.append(f)
        print(f"{f['figure']:8s} with {f['with_wall_s']:7.2f} s wall {f['with_cpu_s']:7.2f} s CPU"
              f" | without {f['without_wall_s']:7.2f} s wall {f['without_cpu_s']:7.2f} s CPU"
              f" | x{f['ratio_wall']:.2f} wall x{f['ratio_cpu']:.2f} CPU (goal <= {f['goal']})",
              flush=True)
    load = os.getloadavg()[0]
    print(f"load average {load:.1f} on {os.cpu_count()} CPUs")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"machine": platform.platform(),
                                           "cpus": os.cpu_count(), "loadavg": load,
                                           "figures": figures}, indent=2) + "\n")


if __name__ == "__main__":
    main()
