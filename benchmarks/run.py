"""Every speed figure of gradsafe, each as a ratio against a reference measured in this run.

    python benchmarks/run.py [--repeat N] [--json PATH] [--only NAME[,NAME]]

Figures (targets from the issue "Fast at any scale"):
  floor      `gradsafe check` of one file (torch, default dtypes, no cache) vs. a hand-written
             floor: a fresh process that imports torch and the file and runs the same probes
             in one batched forward + VJP per dtype                            target <= 1.3x
  parallel   torch, TensorFlow and JAX files in one run vs. the slowest alone    target <= 1.2x
  gradcheck  points/s of the batched sweep vs. torch.autograd.gradcheck(fast_mode=True) once
             per point (what it takes to know *which* points are bad)         target >= 100x
  loop       points/s of the batched sweep vs. a Python loop over the points  target >= 1000x
  exhaustive --exhaustive float32 M values/s per framework vs. 80 M values/s   target >= 1.0x
  cache      an unchanged re-run (served from the cache) vs. 0.3 s             target <= 1.0x
             (the uncached run is printed beside it)
  bisection  evaluations per boundary bisection vs. 64                         target <= 1.0x

Each figure runs in fresh subprocesses (one framework per process, as gradsafe itself does);
wall-clock times are the best of --repeat runs. Timings never go into tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SEED = ROOT / "fixtures" / "seed000"
PY = sys.executable
EXHAUSTIVE_TARGET = 80.0  # M values/s

TF_ELU = '''import tensorflow as tf


def elu(x):
    return tf.where(x > 0, x, tf.exp(x) - 1)
'''
TORCH_ELU_FN = '''import torch


def elu(x):
    return torch.where(x > 0, x, torch.exp(x) - 1)
'''


def env(cache_dir: str | None = None) -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    e["TF_CPP_MIN_LOG_LEVEL"] = "3"
    # every worker a child of the run, so that its CPU time is counted (warm_repo.py measures
    # the persistent worker, in wall time)
    e["GRADSAFE_WORKER_IDLE"] = "0"
    if cache_dir:
        e["GRADSAFE_CACHE_DIR"] = cache_dir
    return e


def timed(cmd: list[str], repeat: int, environ: dict[str, str] | None = None,
          ok: tuple[int, ...] = (0, 1)) -> tuple[float, float]:
    """Best wall-clock seconds and best CPU seconds (user + system of the process and all
    its workers) over repeat runs. On a busy shared machine wall time includes waiting for
    a core; CPU time is the work itself."""
    best_wall = best_cpu = float("inf")
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=environ or env(),
                              cwd=ROOT)
        dt = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode not in ok:
            raise SystemExit(f"benchmark command failed ({proc.returncode}): {' '.join(cmd)}\n"
                             f"{proc.stderr[-2000:]}")
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        best_wall, best_cpu = min(best_wall, dt), min(best_cpu, cpu)
    return best_wall, best_cpu


def part(name: str, *args: str) -> dict[str, Any]:
    """Run one in-process measurement of this script in a fresh interpreter, with the
    thread settings gradsafe gives a single worker (pool.worker_env)."""
    from gradsafe.run.pool import threads_per_worker, worker_env

    environ = {**worker_env(threads_per_worker(1)), **{
        k: v for k, v in env().items() if k in ("PYTHONPATH", "TF_CPP_MIN_LOG_LEVEL")}}
    proc = subprocess.run([PY, __file__, "--part", name, *args], capture_output=True,
                          text=True, env=environ, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark part {name} failed:\n{proc.stderr[-3000:]}")
    data: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return data


def check_cmd(*paths: str, extra: tuple[str, ...] = ("--no-cache",)) -> list[str]:
    return [PY, "-m", "gradsafe", "check", *paths, "--format", "json", *extra]


# --- figures ---------------------------------------------------------------------------

def fig_floor(work: Path, repeat: int) -> dict[str, Any]:
    target = str(SEED / "elu_where_torch.py")
    floor_probes = work / "probes.npz"
    subprocess.run([PY, __file__, "--part", "probes", str(floor_probes)], check=True,
                   env=env(), cwd=ROOT)
    check, check_cpu = timed(check_cmd(target), repeat)
    floor, floor_cpu = timed([PY, __file__, "--part", "floor", str(floor_probes), target],
                             repeat)
    return {"figure": "floor", "what": "gradsafe check (torch, 3 dtypes) vs import+batched VJP",
            "measured": check, "reference": floor, "unit": "s", "ratio": check / floor,
            "cpu": [check_cpu, floor_cpu], "target": 1.3, "better": "lower"}


def fig_parallel(work: Path, repeat: int) -> dict[str, Any]:
    tf_file = work / "elu_tf.py"
    tf_file.write_text(TF_ELU)
    files = {"torch": str(SEED / "elu_where_torch.py"), "jax": str(SEED / "elu_where_jax.py"),
             "tensorflow": str(tf_file)}
    alone = {fw: timed(check_cmd(f), repeat) for fw, f in files.items()}
    together, together_cpu = timed(check_cmd(*files.values()), repeat)
    slowest = max(alone, key=lambda fw: alone[fw][0])
    return {"figure": "parallel", "what": "3 frameworks in one run vs the slowest alone",
            "measured": together, "reference": alone[slowest][0], "unit": "s",
            "ratio": together / alone[slowest][0],
            # CPU: the three together vs the three alone (running them at once adds no work)
            "cpu": [together_cpu, sum(cpu for _, cpu in alone.values())],
            "target": 1.2, "better": "lower", "alone": alone}


def fig_throughput(work: Path, repeat: int) -> list[dict[str, Any]]:
    d = part("throughput", str(repeat))
    base = {"unit": "points/s", "better": "higher", "points": d["points"]}
    return [
        {**base, "figure": "gradcheck",
         "what": "batched sweep vs gradcheck(fast_mode=True) per point",
         "measured": d["sweep"], "reference": d["gradcheck"],
         "ratio": d["sweep"] / d["gradcheck"], "target": 100.0,
         "gradcheck_whole_vector": d["gradcheck_vector"]},
        {**base, "figure": "gradcheck-vector",
         "what": "batched sweep vs one gradcheck(fast_mode=True) call on all points "
                 "(a single pass/fail, no location; for reference, no target)",
         "measured": d["sweep"], "reference": d["gradcheck_vector"],
         "ratio": d["sweep"] / d["gradcheck_vector"], "target": None},
        {**base, "figure": "loop", "what": "batched sweep vs a Python loop over points",
         "measured": d["sweep"], "reference": d["loop"], "ratio": d["sweep"] / d["loop"],
         "target": 1000.0},
    ]


def fig_exhaustive(work: Path, repeat: int) -> list[dict[str, Any]]:
    tf_file = work / "elu_tf.py"
    tf_file.write_text(TF_ELU)
    out = []
    for fw, f in (("jax", SEED / "elu_where_jax.py"), ("tensorflow", tf_file),
                  ("torch", work / "elu_torch_fn.py")):
        if fw == "torch":
            Path(f).write_text(TORCH_ELU_FN)
        d = part("exhaustive", fw, str(f))
        rate = d["values_per_s"] / 1e6
        out.append({"figure": f"exhaustive-{fw}",
                    "what": f"--exhaustive float32 throughput, {fw} ({d['how']})",
                    "measured": rate, "reference": EXHAUSTIVE_TARGET, "unit": "M values/s",
                    "ratio": rate / EXHAUSTIVE_TARGET, "target": 1.0, "better": "higher",
                    "cpu": [d["values_per_cpu_s"] / 1e6, EXHAUSTIVE_TARGET],
                    "full_sweep_s": 2 ** 32 / d["values_per_s"],
                    "compile_s": d["compile_s"]})
    return out


def fig_cache(work: Path, repeat: int) -> dict[str, Any]:
    cache_dir = str(work / "cache")
    target = str(SEED / "elu_where_torch.py")
    cold, cold_cpu = timed(check_cmd(target, extra=()), 1, env(cache_dir))
    warm, warm_cpu = timed(check_cmd(target, extra=()), max(repeat, 3), env(cache_dir))
    return {"figure": "cache", "what": "unchanged re-run from the cache vs 0.3 s",
            "measured": warm, "reference": 0.3, "unit": "s", "ratio": warm / 0.3,
            "cpu": [warm_cpu, 0.3], "target": 1.0, "better": "lower",
            "uncached_s": cold, "uncached_cpu_s": cold_cpu}


def fig_bisection(work: Path, repeat: int) -> dict[str, Any]:
    d = part("bisection")
    per = d["evaluations"] / max(d["boundaries"], 1)
    return {"figure": "bisection", "what": "evaluations per boundary bisection vs 64",
            "measured": per, "reference": 64.0, "unit": "evaluations",
            "ratio": per / 64.0, "target": 1.0, "better": "lower", **d}


FIGURES: dict[str, Callable[[Path, int], Any]] = {
    "floor": fig_floor, "parallel": fig_parallel, "throughput": fig_throughput,
    "exhaustive": fig_exhaustive, "cache": fig_cache, "bisection": fig_bisection,
}


# --- in-process parts (run in a fresh interpreter each) ----------------------------------

def part_probes(path: str) -> None:
    import numpy as np

    from gradsafe.model.types import DEFAULT_DTYPES
    from gradsafe.numerics.probes import plan

    np.savez(path, **{dt: plan(dt, (1.0,)).values for dt in DEFAULT_DTYPES})


def part_floor(probes: str, target: str) -> None:
    """What any tool must do: import torch and the file, one forward + VJP per dtype."""
    import importlib.util

    import numpy as np
    import torch

    spec = importlib.util.spec_from_file_location("target", target)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    data = np.load(probes)
    for name in data.files:
        dt = getattr(torch, name)
        fn = mod.ELU().to(dt)
        x = torch.from_numpy(data[name]).to(dt).requires_grad_(True)
        y = fn(x)
        (g,) = torch.autograd.grad(y.sum(), x)
        np.isfinite(g.to(torch.float64).numpy())


def _best(fn: Callable[[], Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def part_throughput(repeat: str) -> dict[str, Any]:
    import warnings

    import numpy as np
    import torch

    from gradsafe.backends.torch_backend import BACKEND
    from gradsafe.numerics.probes import plan

    def elu(x: torch.Tensor) -> torch.Tensor:
        return torch.where(x > 0, x, torch.exp(x) - 1)

    values = plan("float32", (1.0,)).values
    n = int(values.size)
    r = int(repeat)
    BACKEND.evaluate(elu, values, "float32")  # warm-up
    sweep = n / _best(lambda: BACKEND.evaluate(elu, values, "float32"), r)
    finite = values[np.isfinite(values)]
    rng = np.random.default_rng(0)
    some = rng.choice(finite, 300, replace=False)

    def per_point() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for v in some:
                x = torch.tensor([v], dtype=torch.float64, requires_grad=True)
                torch.autograd.gradcheck(elu, (x,), fast_mode=True, raise_exception=False)

    gradcheck = some.size / _best(per_point, r)
    vec = torch.from_numpy(finite[np.abs(finite) < 80]).to(torch.float64).requires_grad_(True)

    def whole() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.autograd.gradcheck(elu, (vec,), fast_mode=True, raise_exception=False)

    gradcheck_vector = vec.numel() / _best(whole, r)
    loop_points = values[:2000]

    def loop() -> None:
        for v in loop_points:
            x = torch.tensor(v, dtype=torch.float32, requires_grad=True)
            (g,) = torch.autograd.grad(elu(x), x)
            bool(torch.isfinite(g))

    looped = loop_points.size / _best(loop, r)
    return {"points": n, "sweep": sweep, "gradcheck": gradcheck,
            "gradcheck_vector": gradcheck_vector, "loop": looped}


def part_exhaustive(framework: str, file: str) -> dict[str, Any]:
    from gradsafe.backends import get_backend
    from gradsafe.check.exhaustive import CHUNK
    from gradsafe.discover.load import load_target

    backend = get_backend(framework)
    fn, _ = backend.instantiate(load_target(file, "elu"), "function", "float32")
    t0 = time.perf_counter()
    masks = backend.sweep_masks(fn, "float32", CHUNK)
    masks(0x3F800000)
    compile_s = time.perf_counter() - t0
    # chunks spread evenly over all 2**32 bit patterns, so that clean chunks, chunks across
    # exp's overflow and NaN patterns come in the proportions of a full sweep
    chunks = 32
    total = 1 << 32
    starts = [i * total // chunks // CHUNK * CHUNK for i in range(chunks)]
    t0, c0 = time.perf_counter(), time.process_time()
    for start in starts:
        masks(start)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    how = {"jax": "jax.jit", "tensorflow": "tf.function(jit_compile=True)",
           "torch": "eager; torch.compile did not pay"}[framework]
    return {"values_per_s": chunks * CHUNK / dt, "values_per_cpu_s": chunks * CHUNK / cpu,
            "compile_s": compile_s, "how": how}


def part_bisection() -> dict[str, Any]:
    from gradsafe.backends.torch_backend import BACKEND
    from gradsafe.check.analyse import Counter
    from gradsafe.check.sweep import check
    from gradsafe.model.types import Options, Target
    from gradsafe.numerics.floats import info

    tmp = Path(tempfile.mkdtemp())
    src = tmp / "acts.py"
    # thresholds that are not probe points themselves (the plan holds exp's and x**2's own
    # overflow points), so that every boundary is found by bisection
    src.write_text("import torch\n\n"
                   "def elu(x):\n    return torch.where(x > 0, x, torch.exp(0.7 * x) - 1)\n\n"
                   "def softplus(x):\n    return torch.log(1 + torch.exp(1.3 * x))\n\n"
                   "def root(x):\n    return torch.sqrt(3 * x * x + 1e-30)\n")
    counter = Counter()
    boundaries = 0
    for name, feats in (("elu", {"where"}), ("softplus", set()), ("root", set())):
        t = Target(name, str(src), 1, "function", ("torch",), (0.7, 1.3, 3.0, 1e-30),
                   frozenset(feats))
        # 16-bit dtypes are swept value by value: their boundaries need no bisection
        res = check(BACKEND, t, Options(dtypes=("float32", "float64")), counter)
        for f in res.findings:
            if f.severity == "info":
                continue
            mx = info(f.dtype).max
            boundaries += sum(abs(v) < mx for v in {f.range.low, f.range.high})
    shutil.rmtree(tmp)
    return {"evaluations": counter.evaluations, "boundaries": boundaries}


PARTS: dict[str, Callable[..., Any]] = {
    "probes": part_probes, "floor": part_floor, "throughput": part_throughput,
    "exhaustive": part_exhaustive, "bisection": part_bisection,
}


# --- report ----------------------------------------------------------------------------

def met(f: dict[str, Any]) -> bool | None:
    if f["target"] is None:
        return None
    return bool(f["ratio"] <= f["target"] if f["better"] == "lower" else f["ratio"] >= f["target"])


def show(f: dict[str, Any]) -> str:
    sign = "<=" if f["better"] == "lower" else ">="
    value = f"{f['measured']:,.3g} {f['unit']}"
    ref = f"{f['reference']:,.3g} {f['unit']}"
    cpu = f"{f['cpu'][0] / f['cpu'][1]:.3g}x" if "cpu" in f else "-"
    if f["target"] is None:
        return f"{f['figure']:<20} {value:>20} {ref:>20} {f['ratio']:>9.3g}x {cpu:>9}  (info)"
    return (f"{f['figure']:<20} {value:>20} {ref:>20} {f['ratio']:>9.3g}x {cpu:>9}  "
            f"{sign} {f['target']:g}x  {'met' if met(f) else 'NOT MET'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", nargs="+", help=argparse.SUPPRESS)
    ap.add_argument("--repeat", type=int, default=3, help="runs per timing (best is kept)")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "run.json"))
    ap.add_argument("--only", default="", help=f"comma list of {', '.join(FIGURES)}")
    args = ap.parse_args()
    if args.part:
        name, *rest = args.part
        out = PARTS[name](*rest)
        if out is not None:
            print(json.dumps(out))
        return
    chosen = [n.strip() for n in args.only.split(",") if n.strip()] or list(FIGURES)
    figures: list[dict[str, Any]] = []
    print(f"{'figure':<20} {'measured':>20} {'reference':>20} {'ratio':>10} {'cpu ratio':>9}"
          "  target", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in chosen:
            got = FIGURES[name](Path(tmp), args.repeat)
            for f in got if isinstance(got, list) else [got]:
                f["met"] = met(f)
                figures.append(f)
                print(show(f), flush=True)
    result = {"machine": platform.machine(), "cpus": os.cpu_count(),
              "python": platform.python_version(), "load_average": os.getloadavg(),
              "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "figures": figures}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    judged = [f for f in figures if f["met"] is not None]
    print(f"\nwrote {args.json}; {sum(bool(f['met']) for f in judged)}/{len(judged)} targets met "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
