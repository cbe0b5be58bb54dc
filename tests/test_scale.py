"""Scale features: result cache, worker lanes, --shard/merge, --exhaustive, --device.

No timings here (benchmarks/run.py measures speed). Exhaustive sweeps run on a float32 window
of 2**20 values, never on all 2**32.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from conftest import ROOT, cli_env, run_cli

from gradsafe.backends.base import Backend, Evaluation, Fn
from gradsafe.check import exhaustive
from gradsafe.check.analyse import Context, Sample, analyse
from gradsafe.model.types import Options, Target, TargetKind, TargetResult
from gradsafe.numerics.floats import F64, info, values_to_keys
from gradsafe.numerics.probes import plan
from gradsafe.report.json_report import SCHEMA_PATH, render
from gradsafe.run import cache, devices, engine, interrupt, pool, shard

SCHEMA = json.loads(SCHEMA_PATH.read_text())
SEED = ROOT / "fixtures" / "seed000"
# float32 bit patterns 0x42b00000..0x42bfffff: 88.0 up to 95.99999, around exp's overflow
WINDOW = (0x42B00000, 0x42C00000)


# --- worker lanes -------------------------------------------------------------------------

def test_lanes_one_per_framework_then_by_work() -> None:
    assert pool.lane_sizes({"torch": 1, "jax": 1, "tensorflow": 1}, 2) == {
        "torch": 1, "jax": 1, "tensorflow": 1}
    assert pool.lane_sizes({"torch": 20, "jax": 2}, 4) == {"torch": 3, "jax": 1}
    assert pool.lane_sizes({"torch": 5}, 16) == {"torch": 2}  # one worker per 3 targets
    assert pool.lane_sizes({"torch": 100}, 1) == {"torch": 1}
    # a worker forked by the persistent worker costs no import: one per target
    assert pool.lane_sizes({"torch": 2, "jax": 5}, 4, {"torch": 1}) == {"torch": 2, "jax": 2}


def test_report_order_does_not_depend_on_the_number_of_workers(tmp_path: Path) -> None:
    src = tmp_path / "acts.py"
    src.write_text("import torch\n\n" + "".join(
        f"def act{i}(x):\n    return torch.where(x > {i}, x, torch.exp(x) - 1)\n\n"
        for i in range(4)))
    runs = [render(engine.check([str(src)], Options(dtypes=("float16",), param_sweep=False,
                                                     cache=False, jobs=jobs)))
            for jobs in (1, 2)]  # 2: two torch workers take the four targets in any order
    assert runs[0] == runs[1]
    assert [t["name"] for t in json.loads(runs[0])["targets"]] == [f"act{i}" for i in range(4)]


# --- cache --------------------------------------------------------------------------------

def _target(file: str, name: str = "elu") -> Target:
    return Target(name, file, 3, TargetKind.FUNCTION, ("torch",), (1.0,))


def test_cache_key_follows_source_options_and_versions(tmp_path: Path) -> None:
    f = tmp_path / "act.py"
    f.write_text("import torch\n\ndef elu(x):\n    return torch.exp(x)\n")
    opts = Options(dtypes=("float16",))
    k = cache.key(_target(str(f)), "torch", opts)
    assert k == cache.key(_target(str(f)), "torch", opts)
    assert k != cache.key(_target(str(f)), "jax", opts)
    assert k != cache.key(_target(str(f)), "torch", Options(dtypes=("float32",)))
    assert k != cache.key(_target(str(f)), "torch", Options(dtypes=("float16",), seed=1))
    # CI-gate options are applied after the sweep: they do not invalidate results
    assert k == cache.key(_target(str(f)), "torch", Options(dtypes=("float16",),
                                                            ignore=("GS1",), timeout=5.0))
    cache._source.cache_clear()
    f.write_text("import torch\n\ndef elu(x):\n    return torch.expm1(x)\n")
    assert k != cache.key(_target(str(f)), "torch", opts)
    # found without importing torch; in a fresh process, since other tests in this worker
    # may have imported torch already
    probe = ("import sys; from gradsafe.run import cache; "
             "assert 'torch:' in cache.framework_versions('torch'); "
             "assert 'torch' not in sys.modules, 'torch was imported'")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env=cli_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_cache_round_trip_skips_errors_and_survives_garbage(tmp_path: Path) -> None:
    store = cache.Cache(tmp_path)
    ok = TargetResult("elu", "a.py", 3, "torch", "pass", None, notes=("float16: x",))
    store.put("ab" * 32, ok)
    assert store.get("ab" * 32) == ok
    store.put("cd" * 32, TargetResult("elu", "a.py", 3, "torch", "error", "timed out"))
    assert store.get("cd" * 32) is None  # errors may be transient: never cached
    (tmp_path / "ef").mkdir()
    (tmp_path / "ef" / f"{'ef' * 32}.json").write_text('{"key": "ef', encoding="utf-8")
    assert store.get("ef" * 32) is None  # a torn or foreign file is a miss, not a crash
    assert not list(tmp_path.rglob(".tmp-*"))  # writes are renamed into place


def test_unchanged_rerun_is_served_from_the_cache(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRADSAFE_CACHE_DIR", str(tmp_path / "cache"))
    src = tmp_path / "act.py"
    shutil.copy(SEED / "elu_where_torch.py", src)
    opts = Options(dtypes=("float16",), param_sweep=False)
    first = engine.check([str(src)], opts)
    assert [f.code for t in first.targets for f in t.findings] == ["GS101"]

    def no_sweep(jobs: list[pool.Job], *args: object) -> object:
        assert not jobs, "a cached target was swept again"
        return {}, {}

    monkeypatch.setattr(pool, "run", no_sweep)
    assert render(engine.check([str(src)], opts)) == render(first)
    src.write_text(src.read_text().replace("torch.exp(x) - 1", "torch.expm1(x)"))
    with pytest.raises(AssertionError, match="swept again"):
        engine.check([str(src)], opts)


def test_jax_compiled_programs_are_kept_beside_the_cache(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Eager JAX compiles each primitive per shape and dtype; the workers keep those XLA
    programs in the cache directory (not with --no-cache), and the user's setting wins."""
    monkeypatch.setenv("GRADSAFE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    where = pool._compile_cache(Options())
    assert where == str(tmp_path / "cache" / "xla")
    assert pool._compile_cache(Options(cache=False)) is None
    env = pool.worker_env(1, "cpu", where)
    assert env["JAX_COMPILATION_CACHE_DIR"] == where
    assert env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] == "0"
    assert "JAX_COMPILATION_CACHE_DIR" not in pool.worker_env(1, "cpu", None)
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "mine"))
    assert pool.worker_env(1, "cpu", where)["JAX_COMPILATION_CACHE_DIR"] == str(
        tmp_path / "mine")
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR")
    report = engine.check([str(SEED / "elu_where_jax.py")],
                          Options(dtypes=("float16",), param_sweep=False, suggest=False))
    assert [f.code for t in report.targets for f in t.findings] == ["GS101"]
    assert any((tmp_path / "cache" / "xla").iterdir())  # the worker wrote its programs


# --- shards -------------------------------------------------------------------------------

def test_shards_partition_by_file() -> None:
    targets = [_target(f"f{i % 5}.py", f"t{i}") for i in range(12)] + [
        Target("torch.nn.functional.elu", None, None, TargetKind.BUILTIN, ("torch",))]
    shards = [shard.select(targets, (i, 3)) for i in (1, 2, 3)]
    assert sorted((t.name for s in shards for t in s), key=str) == sorted(
        (t.name for t in targets), key=str)
    for s in shards:
        files = {t.file for t in s}
        assert all(t.file not in files for other in shards if other is not s for t in other)
    assert shards == [shard.select(targets, (i, 3)) for i in (1, 2, 3)]  # deterministic


@pytest.mark.parametrize(("text", "message"), [
    ("3/2", "between 1 and N"), ("0/2", "between 1 and N"), ("a/b", "expected I/N")])
def test_bad_shard_values(text: str, message: str) -> None:
    with pytest.raises(shard.ShardError, match=message):
        shard.parse(text)


@pytest.mark.parametrize(("args", "message"), [
    (("--shard", "3/2"), "Error: --shard: I must be between 1 and N, got '3/2'"),
    (("--shard", "1/2", "--update-baseline", "--baseline", "b.json"),
     "Error: --update-baseline needs every target: run it without --shard")])
def test_bad_shard_options_fail_before_sweeping(args: tuple[str, ...], message: str) -> None:
    proc = run_cli("check", str(SEED), *args)
    assert proc.returncode == 2 and proc.stderr.strip() == message


def test_merge_refuses_incomplete_or_mixed_shards() -> None:
    base = {"schema": "gradsafe-report/1", "gradsafe_version": "0", "options": {"fail_on": "error"},
            "targets": []}
    with pytest.raises(shard.ShardError, match="missing 2/2"):
        shard.merge([{**base, "shard": {"index": 1, "count": 2}}])
    with pytest.raises(shard.ShardError, match="differ in options"):
        shard.merge([{**base, "shard": {"index": 1, "count": 2}},
                     {**base, "options": {"fail_on": "info"}, "shard": {"index": 2, "count": 2}}])


def test_merged_shards_equal_the_unsharded_report(tmp_path: Path) -> None:
    """Byte for byte, with suppressed findings, unused suppressions and notes carried."""
    project = tmp_path / "proj"
    shutil.copytree(SEED, project)
    (project / "plain.py").write_text("def helper(x):\n    return x\n")  # skipped, with why
    (project / "unused.py").write_text(
        "import torch\n\n\ndef safe(x):  # gradsafe: ignore[GS101]\n    return torch.tanh(x)\n")
    src = project / "elu_where_torch.py"
    src.write_text(src.read_text().replace(
        "class ELU(nn.Module):", "class ELU(nn.Module):  # gradsafe: ignore[GS101]"))
    args = ("check", str(project), "--dtype", "float16", "--no-param-sweep", "--format", "json")
    whole = run_cli(*args)
    assert whole.returncode == 1, whole.stderr
    data = json.loads(whole.stdout)
    assert data["suppressed"] and data["unused_suppressions"]
    assert [t["name"] for t in data["targets"] if t["status"] == "skipped"] == ["helper"]
    assert data["shard"] is None and data["partial"] is False
    jsonschema.validate(data, SCHEMA)
    parts = []
    for i in (1, 2, 3):
        out = tmp_path / f"shard{i}.json"
        proc = run_cli(*args, "--shard", f"{i}/3", "-o", str(out))
        assert proc.returncode in (0, 1), proc.stderr
        jsonschema.validate(json.loads(out.read_text()), SCHEMA)
        parts.append(str(out))
    assert all(json.loads(Path(p).read_text())["targets"] for p in parts)
    merged = run_cli("merge", *reversed(parts))
    assert merged.returncode == whole.returncode
    assert merged.stdout == whole.stdout
    missing = run_cli("merge", *parts[:2])
    assert missing.returncode == 2 and missing.stderr.strip() == \
        "Error: merge: shards missing 3/3"


# --- device -------------------------------------------------------------------------------

def test_device_choice() -> None:
    assert devices.choose("cpu") == "cpu"
    if devices.gpu_visible():
        assert devices.choose("auto") == "cuda"
    else:
        assert devices.choose("auto") == "cpu"
        with pytest.raises(devices.DeviceError, match="no GPU is visible"):
            devices.choose("cuda")


def test_device_cuda_without_gpu_is_one_line_error() -> None:
    env = {**cli_env(), "CUDA_VISIBLE_DEVICES": ""}
    proc = run_cli("check", str(SEED / "elu_where_torch.py"), "--device", "cuda", env=env)
    assert proc.returncode == 2
    assert proc.stderr.startswith("Error: --device cuda: no GPU is visible")
    assert len(proc.stderr.strip().splitlines()) == 1


# --- exhaustive ---------------------------------------------------------------------------

class NumpyElu(Backend):
    """A where-ELU in NumPy float32 with the backward autograd computes (0 * inf = NaN)."""

    name = "numpy"

    def version(self) -> str:
        return np.__version__

    def instantiate(self, obj: object, kind: str, dtype: str) -> tuple[Fn, str | None]:
        return lambda x: x, None

    def run_chunk(self, fn: Fn, xs: F64, dtype: str, grad: bool) -> Evaluation:
        x = xs.astype(np.float32)
        with np.errstate(over="ignore", invalid="ignore"):
            e = np.exp(x)
            fwd = np.where(x > 0, x, e - np.float32(1))
            keep = (x > 0).astype(np.float32)
            g = keep + (np.float32(1) - keep) * e
        return Evaluation(fwd.astype(np.float64), g.astype(np.float64) if grad else None)


def _sampler(backend: Backend) -> Callable[[F64], Sample]:
    def sample(xs: F64) -> Sample:
        ev = backend.evaluate(lambda x: x, xs, "float32")
        return Sample(xs, ev.forward, ev.gradient, ev.forward)
    return sample


def test_exhaustive_window_gives_exact_runs_and_readable_examples() -> None:
    backend = NumpyElu()
    base = plan("float32", (), 1e4, 0)
    seen: list[tuple[int, int]] = []
    extended, note = exhaustive.sweep(backend, lambda x: x, "float32", base,
                                      lambda d, t: seen.append((d, t)), WINDOW, 1 << 16)
    assert note is None and seen[-1] == (WINDOW[1] - WINDOW[0],) * 2
    lo = int(values_to_keys(np.array([88.72284]), "float32")[0])
    assert lo in extended.keys and lo - 1 in extended.keys  # the transition itself
    assert set(base.keys) <= set(extended.keys)
    sample = _sampler(backend)
    found = analyse(extended, sample(extended.values), sample,
                    Context("float32", "numpy", 1e4, None, frozenset({"where"})))
    grads = [f for f in found if f.kind == "gradient"]
    assert [(f.range.low, f.range.high, f.example_input) for f in grads] == [
        (float(np.float32(88.72284)), info("float32").max, 89.0)]


def test_exhaustive_interrupt_keeps_what_was_swept() -> None:
    class Interrupted(NumpyElu):
        calls = 0

        def run_chunk(self, fn: Fn, xs: F64, dtype: str, grad: bool) -> Evaluation:
            self.calls += 1
            if self.calls == 2:  # SIGINT arrives during the second chunk
                interrupt.stop.set()
            return super().run_chunk(fn, xs, dtype, grad)

    base = plan("float32", (), 1e4, 0)
    try:
        extended, note = exhaustive.sweep(Interrupted(), lambda x: x, "float32", base, None,
                                          WINDOW, 1 << 16)
    finally:
        interrupt.stop.clear()
    assert note is not None and note.startswith(interrupt.PARTIAL_NOTE)
    assert "interrupted after 131,072 of 1,048,576 values" in note
    assert len(extended.keys) > len(base.keys)


@pytest.mark.parametrize("framework", ["jax", "torch"])
def test_compiled_masks_match_eager_ones(framework: str) -> None:
    """The fast --exhaustive path (jax.jit; torch with bit patterns made by int32 wrap-around)
    gives the masks of the generic path, on both halves of the lattice."""
    if framework == "jax":
        import jax.numpy as jnp

        from gradsafe.backends.jax_backend import BACKEND as b

        def elu(x: object) -> object:
            return jnp.where(x > 0, x, jnp.exp(x) - 1)  # type: ignore[operator]
    else:
        import torch

        from gradsafe.backends.torch_backend import BACKEND as b

        def elu(x: object) -> object:
            return torch.where(x > 0, x, torch.exp(x) - 1)  # type: ignore[operator]

    fast = b.sweep_masks(elu, "float32", 1 << 16)
    eager = Backend.sweep_masks(b, elu, "float32", 1 << 16)
    for start in (WINDOW[0] + 0x10000, 0x7F800000 - 0x10000, 0x80000000, 0xC2B10000,
                  0xFF800000, 0xFFFF0000):
        for c, e in zip(fast(start), eager(start), strict=True):
            assert np.array_equal(c, e), hex(start)
    grad_bad, _, _ = fast(0x42B10000)  # 88.53 .. 88.78: the boundary is inside
    keys = 0x42B10000 + np.flatnonzero(grad_bad)
    assert keys.min() == int(values_to_keys(np.array([88.72284]), "float32")[0])


def test_ctrl_c_leaves_a_partial_report(tmp_path: Path) -> None:
    """A real CLI run with --exhaustive, interrupted once the sweep has started."""
    out = tmp_path / "report.json"
    env = {**cli_env(), "GRADSAFE_CACHE_DIR": str(tmp_path / "cache")}
    # A shell without job control starts background commands with SIGINT ignored, and a
    # child inherits that: restore Python's handler in the child before the CLI starts.
    start = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler);"
             " sys.argv = ['gradsafe', *sys.argv[1:]]; runpy.run_module('gradsafe', "
             "run_name='__main__')")
    proc = subprocess.Popen(
        [sys.executable, "-c", start, "check", str(SEED / "elu_where_jax.py"),
         "--exhaustive", "--dtype", "float32", "--format", "json", "-o", str(out)],
        cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert line.startswith("exhaustive elu (jax) float32:"), line
    os.kill(proc.pid, signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=120) == 3, rest  # findings, and not everything was checked
    data = json.loads(out.read_text())
    jsonschema.validate(data, SCHEMA)
    assert data["partial"] is True
    (t,) = data["targets"]
    assert any(n.startswith("partial: the exhaustive float32 sweep was interrupted")
               for n in t["notes"])
    # the probe plan still finds the boundary the sweep had not reached yet
    assert [f["boundary"] for f in t["findings"]] == [88.72283935546875]
    cached = [json.loads(p.read_text())["data"] for p in (tmp_path / "cache").rglob("*.json")]
    assert not [d for d in cached if isinstance(d, dict)]  # a partial result is never cached
