"""gradsafe's custom-gradient check against torch.autograd.gradcheck on the same points.

A torch.autograd.Function for the tanh-approximated GELU whose hand-written backward drops
the 3 of d/dx x**3 (a real slip: 0.044715 * x**2 instead of 3 * 0.044715 * x**2). Both
tools look at the same 10,000 float64 points in [-8, 8]:

* gradsafe: `gradcheck.check_points`, one batched backward call, one batched float64
  stencil, every point compared; it reports how many points are wrong and where the
  largest error is.
* `torch.autograd.gradcheck(fast_mode=True)` once per point: what it takes to know *where*
  a gradient is wrong with gradcheck, since one call answers only pass/fail.
* `torch.autograd.gradcheck(fast_mode=True)` once on the whole 10,000-vector, for
  reference: cheap, but a single True/False with no location.

Run: PYTHONPATH=. python benchmarks/custom_grad.py [--points N] [--json PATH]
Prints the ratios measured in this run and writes them as JSON. Timings never go into tests.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gradsafe.backends.custom import get_adapter
from gradsafe.check import gradcheck

C = math.sqrt(2 / math.pi)


class GeluTanhWrong(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):  # type: ignore[no-untyped-def]
        ctx.save_for_backward(x)
        return 0.5 * x * (1 + torch.tanh(C * (x + 0.044715 * x ** 3)))

    @staticmethod
    def backward(ctx, g):  # type: ignore[no-untyped-def]
        (x,) = ctx.saved_tensors
        t = torch.tanh(C * (x + 0.044715 * x ** 3))
        dinner = C * (1 + 0.044715 * x ** 2)  # wrong: should be 3 * 0.044715 * x ** 2
        return g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * dinner)


def best_of(fn, repeat: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Best wall-clock and best CPU time of repeat runs (CPU time is robust to a busy
    machine; wall time is what a user waits)."""
    walls, cpus = [], []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return min(walls), min(cpus)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=10_000)
    ap.add_argument("--json", default=str(Path(__file__).parent / "results" / "custom_grad.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    n = args.points
    x = np.linspace(-8.0, 8.0, n)
    adapter = get_adapter("torch", GeluTanhWrong, "autograd_function")

    result = gradcheck.check_points(adapter, x, "float64")  # warm-up and the answer
    t_ours, c_ours = best_of(lambda: gradcheck.check_points(adapter, x, "float64"), 5)
    cmp = result.comparison
    assert cmp is not None
    worst = cmp.worst

    xt = torch.tensor(x)

    def per_point() -> list[bool]:
        out = []
        for i in range(n):
            xi = xt[i:i + 1].clone().requires_grad_()
            out.append(bool(torch.autograd.gradcheck(GeluTanhWrong.apply, (xi,), fast_mode=True,
                                                     raise_exception=False)))
        return out

    w0, c0 = time.perf_counter(), time.process_time()
    passed = per_point()
    t_per_point, c_per_point = time.perf_counter() - w0, time.process_time() - c0

    def whole() -> bool:
        xv = xt.clone().requires_grad_()
        return bool(torch.autograd.gradcheck(GeluTanhWrong.apply, (xv,), fast_mode=True,
                                             raise_exception=False))

    whole_ok = whole()
    t_whole, c_whole = best_of(whole, 5)

    failing = np.flatnonzero(~np.array(passed))
    data = {
        "points": n,
        "dtype": "float64",
        "machine": platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "gradsafe": {
            "seconds": t_ours, "cpu_seconds": c_ours, "us_per_point": 1e6 * t_ours / n,
            "flagged_points": int(cmp.bad.sum()), "checked_points": int(cmp.checked.sum()),
            "largest_error": {"x": float(cmp.x[worst]), "backward": float(cmp.gradient[worst]),
                              "numeric": float(cmp.reference[worst]),
                              "relative_error": float(cmp.rel_error[worst])},
            "flagged_range": [float(cmp.x[cmp.bad].min()), float(cmp.x[cmp.bad].max())],
        },
        "gradcheck_fast_per_point": {
            "seconds": t_per_point, "cpu_seconds": c_per_point,
            "us_per_point": 1e6 * t_per_point / n,
            "failed_points": int(failing.size),
            "failed_range": [float(x[failing].min()), float(x[failing].max())]
            if failing.size else None,
            "location_of_largest_error": None,
        },
        "gradcheck_fast_whole_vector": {
            "seconds": t_whole, "cpu_seconds": c_whole, "us_per_point": 1e6 * t_whole / n,
            "passed": whole_ok,
            "location": None,
        },
        "speedup_vs_per_point": t_per_point / t_ours,
        "speedup_vs_per_point_cpu": c_per_point / c_ours,
        "speedup_vs_whole_vector": t_whole / t_ours,
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(data, indent=2) + "\n")
    g = data["gradsafe"]
    print(f"{n} float64 points, torch {torch.__version__}, 1 thread")
    print(f"gradsafe check_points           {t_ours * 1e3:9.1f} ms  "
          f"{g['us_per_point']:8.2f} us/point  flagged {g['flagged_points']} of "
          f"{g['checked_points']}; largest error at x = {g['largest_error']['x']:.6g}: "
          f"backward {g['largest_error']['backward']:.6g}, numeric "
          f"{g['largest_error']['numeric']:.6g}")
    print(f"gradcheck(fast_mode) per point  {t_per_point * 1e3:9.1f} ms  "
          f"{1e6 * t_per_point / n:8.2f} us/point  failed {failing.size} points, "
          "no error sizes")
    print(f"gradcheck(fast_mode) whole vec  {t_whole * 1e3:9.1f} ms  "
          f"{1e6 * t_whole / n:8.2f} us/point  passed={whole_ok}, no location"
          + (" (misses the wrong backward)" if whole_ok and cmp.bad.any() else ""))
    print(f"speed-up per point vs gradcheck per point: {data['speedup_vs_per_point']:.1f}x wall, "
          f"{data['speedup_vs_per_point_cpu']:.1f}x CPU time; "
          f"vs one whole-vector gradcheck: {data['speedup_vs_whole_vector']:.2f}x")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
