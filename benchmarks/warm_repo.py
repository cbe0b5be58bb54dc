"""The pre-commit case and a directory of code that is not activations.

warm    one changed file in a warm repository vs. the framework import alone  goal <= 1.5x
        The repository is fixtures/zoo/torch and fixtures/real_cases (torch activation
        files, real code among them). A first `gradsafe check` fills the result cache
        ($GRADSAFE_CACHE_DIR in a temporary directory); then, for each measured run, one file
        gets an edit (a new comment line: a new content hash, so its targets are checked
        again) and `gradsafe check REPO` runs; every other file comes from the cache. The
        reference is a fresh `python -c "import torch"`, which a check of a torch file pays
        in its worker unless the persistent worker (gradsafe/run/server.py, started by the
        cold check) forks one that has torch loaded. Measured with the persistent worker
        (the default) and without it (GRADSAFE_WORKER_IDLE=0). Wall time: a forked worker
        is not a child of the run, so its CPU time is not in the run's. Runs alternate,
        best of --repeat.
skip    `gradsafe check DIR --no-cache` over 200 real Python files that are not activation
        code (the first 200 modules of the running Python's standard library by path, tests
        left out):
        seconds per file for discovery and skipping, against 50 ms per file.

Run: PYTHONPATH=. python benchmarks/warm_repo.py [--repeat N] [--json PATH]
Prints the ratios measured in this run. Timings never go into tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import PY, ROOT, env, timed

REPO = [ROOT / "fixtures" / "zoo" / "torch", ROOT / "fixtures" / "real_cases"]
CHANGED = "sigmoid.py"  # from the zoo: a file with a finding (the re-check suggests a fix)
SKIP_FILES = 200
SKIP_GOAL = 0.050  # s per file


def repo(work: Path) -> Path:
    dest = work / "repo"
    dest.mkdir()
    for folder in REPO:
        for f in sorted(folder.glob("*.py")):
            if not (dest / f.name).exists():
                shutil.copy(f, dest / f.name)
    return dest


def stdlib_files(work: Path, n: int) -> Path:
    dest = work / "stdlib"
    dest.mkdir()
    lib = Path(sysconfig.get_paths()["stdlib"])
    picked = sorted(p for p in lib.rglob("*.py") if not any(
        "test" in part or part == "site-packages" for part in p.relative_to(lib).parts))[:n]
    for p in picked:
        (dest / p.relative_to(lib)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, dest / p.relative_to(lib))
    return dest


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", default=str(ROOT / "benchmarks/results/warm_repo.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        src = repo(work)
        environ = {**env(str(work / "cache")), "GRADSAFE_WORKER_IDLE": "600"}
        check = [PY, "-m", "gradsafe", "check", str(src), "--format", "json"]
        cold, _ = timed(check, 1, environ)
        changed = src / CHANGED
        edits = [0]

        def edit_and_check() -> list[str]:
            edits[0] += 1
            with changed.open("a", encoding="utf-8") as fh:
                fh.write(f"# edit {edits[0]}\n")
            return check

        no_server = {**environ, "GRADSAFE_WORKER_IDLE": "0"}  # each run imports torch
        best_warm = best_import = best_plain = (float("inf"), float("inf"))
        for _ in range(args.repeat):
            w = timed(edit_and_check(), 1, environ)
            i = timed([PY, "-c", "import torch"], 1, environ)
            p = timed(edit_and_check(), 1, no_server)
            best_warm = min(best_warm, w)
            best_import = min(best_import, i)
            best_plain = min(best_plain, p)
        proc = subprocess.run(edit_and_check(), capture_output=True, text=True, env=environ)
        report = json.loads(proc.stdout)
        files = len({t["file"] for t in report["targets"]})

        lib = stdlib_files(work, SKIP_FILES)
        skip_cmd = [PY, "-m", "gradsafe", "check", str(lib), "--format", "json", "--no-cache"]
        skip, skip_cpu = timed(skip_cmd, args.repeat, env(), ok=(0, 1, 2))
        skipped = json.loads(subprocess.run(skip_cmd, capture_output=True, text=True,
                                            env=env()).stdout)
    statuses: dict[str, int] = {}
    for t in skipped["targets"]:
        statuses[t["status"]] = statuses.get(t["status"], 0) + 1
    ratio = best_warm[0] / best_import[0]
    per_file = skip / SKIP_FILES
    load = os.getloadavg()[0]
    print(f"repository of {files} torch files; cold check {cold:.2f} s")
    plain_ratio = best_plain[0] / best_import[0]
    print(f"warm   one changed file {best_warm[0]:6.2f} s | import torch {best_import[0]:6.2f} s"
          f" | x{ratio:.2f} (goal <= 1.5)")
    print(f"       without the persistent worker {best_plain[0]:6.2f} s | x{plain_ratio:.2f}")
    print(f"skip   {SKIP_FILES} standard-library files: {skip:.2f} s wall ({skip_cpu:.2f} s CPU),"
          f" {1000 * per_file:.1f} ms per file (goal < {1000 * SKIP_GOAL:.0f} ms); "
          f"results {statuses}")
    print(f"load average {load:.1f} on {os.cpu_count()} CPUs")
    out = {"machine": platform.platform(), "cpus": os.cpu_count(), "loadavg": load,
           "warm": {"changed_wall_s": best_warm[0], "import_wall_s": best_import[0],
                    "ratio": ratio, "without_server_wall_s": best_plain[0],
                    "without_server_ratio": plain_ratio, "cold_s": cold, "files": files},
           "skip": {"files": SKIP_FILES, "wall_s": skip, "cpu_s": skip_cpu,
                    "ms_per_file": 1000 * per_file, "statuses": statuses}}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
