"""The same targets in a 4,774-line real file and in a file of their own (goal: <= 1.2x).

The real file is x-transformers 2.31.10's `x_transformers/x_transformers.py` (4,774 lines,
51 classes). Its `log(t, eps=1e-20)` helper has a real float16 finding (log(0) = -inf where
float64 gives -46.05; no rewrite applies, so it gets advice), and the seed's ELU
(`torch.where(x > 0, x, torch.exp(x) - 1)`, a GS101 with a verified rewrite) is appended to a
copy of the file, so that locating, rewriting and verifying all run. The file "alone" holds the
real file's import lines and the two functions, in the same package: both import the same
modules, so the difference is the size of the file.

Each side is one `gradsafe check FILE:log FILE:elu --no-cache` in a fresh process (CLI and
torch worker, default dtypes, suggestions on); the two sides alternate, best of --repeat.

Needs the package's dependencies: pip install einops einx loguru torch-einops-utils
Run: PYTHONPATH=. python benchmarks/file_size.py [--wheel-dir DIR] [--repeat N] [--json PATH]
(without --wheel-dir, `pip download --no-deps x-transformers==2.31.10` fetches the wheel).
Timings never go into tests.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import PY, ROOT, env, timed

ELU = "\n\ndef elu(x):\n    return torch.where(x > 0, x, torch.exp(x) - 1)\n"


def unpack(wheel_dir: str | None, work: Path) -> Path:
    """The unpacked package directory x_transformers/ (a copy: benchmark files go in it)."""
    if wheel_dir is None:
        wheel_dir = str(work / "wheel")
        subprocess.run([PY, "-m", "pip", "download", "-q", "--no-deps",
                        "x-transformers==2.31.10", "-d", wheel_dir], check=True)
    wheel = next(Path(wheel_dir).glob("x_transformers-2.31.10-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        z.extractall(work / "site")
    return work / "site" / "x_transformers"


def files(pkg: Path) -> tuple[Path, Path, int]:
    source = (pkg / "x_transformers.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    header_end = max(n.end_lineno or n.lineno for n in tree.body
                     if isinstance(n, (ast.Import, ast.ImportFrom)))
    log = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "log")
    big = pkg / "bench_big.py"
    big.write_text(source + ELU, encoding="utf-8")
    alone = pkg / "bench_alone.py"
    alone.write_text("".join(lines[:header_end]) + "\n\n"
                     + "".join(lines[log.lineno - 1:log.end_lineno]) + ELU, encoding="utf-8")
    return big, alone, len(source.splitlines())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--wheel-dir", default=None, help="holds x_transformers-2.31.10-*.whl")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", default=str(ROOT / "benchmarks/results/file_size.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pkg = unpack(args.wheel_dir, Path(tmp))
        big, alone, n_lines = files(pkg)

        def cmd(f: Path) -> list[str]:
            return [PY, "-m", "gradsafe", "check", f"{f}:log", f"{f}:elu", "--format", "json",
                    "--no-cache"]

        environ = env()
        environ["PYTHONPATH"] = f"{pkg.parent}{os.pathsep}{environ['PYTHONPATH']}"
        reports = {}
        for name, f in (("big", big), ("alone", alone)):  # warm-up: .pyc files, page cache
            proc = subprocess.run(cmd(f), capture_output=True, text=True, env=environ)
            if proc.returncode not in (0, 1):
                raise SystemExit(f"{name}: exit {proc.returncode}\n{proc.stderr[-2000:]}")
            reports[name] = json.loads(proc.stdout)
        best = {"big": [float("inf")] * 2, "alone": [float("inf")] * 2}
        for _ in range(args.repeat):  # alternating, so that a busy spell hits both sides
            for name, f in (("big", big), ("alone", alone)):
                wall, cpu = timed(cmd(f), 1, environ)
                best[name] = [min(best[name][0], wall), min(best[name][1], cpu)]
        same = [
            [(f["code"], f["dtype"], f["range"], (f["suggestion"] or {}).get("verified"))
             for f in t["findings"]] for t in (reports["big"]["targets"] + reports["alone"]
                                               ["targets"])]
        half = len(same) // 2
        agree = same[:half] == same[half:]
    wall = best["big"][0] / best["alone"][0]
    cpu = best["big"][1] / best["alone"][1]
    print(f"x_transformers.py ({n_lines} lines) + elu vs. the two functions alone, "
          f"targets log and elu, best of {args.repeat}")
    print(f"  in the big file  {best['big'][0]:6.2f} s wall  {best['big'][1]:6.2f} s CPU")
    print(f"  alone            {best['alone'][0]:6.2f} s wall  {best['alone'][1]:6.2f} s CPU")
    print(f"  ratio            x{wall:.2f} wall  x{cpu:.2f} CPU  (goal <= 1.2); same findings "
          f"and suggestions: {agree}; load average {os.getloadavg()[0]:.1f}")
    out = {"machine": platform.platform(), "cpus": os.cpu_count(), "lines": n_lines,
           "big": {"wall_s": best["big"][0], "cpu_s": best["big"][1]},
           "alone": {"wall_s": best["alone"][0], "cpu_s": best["alone"][1]},
           "ratio_wall": wall, "ratio_cpu": cpu, "same_findings": agree,
           "loadavg": os.getloadavg()[0]}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
