"""[tool.gradsafe] configuration through the real CLI: discovery, precedence, provenance and
one-line errors (exit 2) for bad files or values."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ROOT, run_cli

SAMPLE = ROOT / "tests" / "sample_project"


def _setting(out: str, key: str) -> tuple[str, str]:
    """(value text, source) of one `key = value  # source` line of `gradsafe config`."""
    for line in out.splitlines():
        if line.startswith(f"{key} = "):
            value, _, source = line[len(key) + 3:].rpartition("  # ")
            return value.strip(), source
    raise AssertionError(f"{key} not in:\n{out}")


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_config_sources_default_file_and_command_line() -> None:
    proc = run_cli("config", "--dtype", "float16,bfloat16", "--range", "100", cwd=SAMPLE)
    assert proc.returncode == 0, proc.stderr
    pyproject = str(SAMPLE / "pyproject.toml")
    assert proc.stdout.splitlines()[0] == f"# config file: {pyproject}"
    assert _setting(proc.stdout, "paths") == ('["activations"]', pyproject)
    assert _setting(proc.stdout, "frameworks") == ('["torch"]', pyproject)
    assert _setting(proc.stdout, "dtypes") == ('["float16", "bfloat16"]', "command line")
    assert _setting(proc.stdout, "range") == ("100.0", "command line")
    assert _setting(proc.stdout, "timeout") == ("120.0", pyproject)
    assert _setting(proc.stdout, "seed") == ("0", "default")
    assert _setting(proc.stdout, "per-file-ignores") == (
        '{ "activations/legacy_*.py" = ["GS202"] }', pyproject)


def test_config_is_found_from_a_subdirectory_and_paths_are_relative_to_it() -> None:
    proc = run_cli("config", cwd=SAMPLE / "activations")
    assert proc.returncode == 0, proc.stderr
    # paths in the file are relative to the file; shown relative to where gradsafe runs
    assert _setting(proc.stdout, "paths")[0] == '["."]'
    assert _setting(proc.stdout, "baseline")[0] == f'"{SAMPLE / "gradsafe-baseline.json"}"'


def test_explicit_config_file(tmp_path: Path) -> None:
    cfg = _write(tmp_path / "ci" / "gradsafe.toml", 'fail-on = "warning"\njobs = 4\n')
    proc = run_cli("config", "--config", str(cfg), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert _setting(proc.stdout, "fail-on") == ('"warning"', str(cfg))
    assert _setting(proc.stdout, "jobs") == ("4", str(cfg))


def test_no_config_found_uses_defaults(tmp_path: Path) -> None:
    _write(tmp_path / "pyproject.toml", "[project]\nname = 'x'\n")  # no [tool.gradsafe]
    proc = run_cli("config", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("# config file: none found (defaults)\n")
    assert _setting(proc.stdout, "fail-on") == ('"error"', "default")


@pytest.mark.parametrize(("toml", "message"), [
    ("framework = ['torch']", "unknown key 'framework' in [tool.gradsafe] "
                              "(did you mean 'frameworks'?)"),
    ("fail_on = 'info'", "unknown key 'fail_on' in [tool.gradsafe] (did you mean 'fail-on'?)"),
    ("frameworks = ['pytorch', 'mxnet']", "frameworks: unknown framework 'mxnet'"),
    ("dtypes = ['float8']", "dtypes: unknown dtype 'float8'"),
    ("dtypes = []", "dtypes: give at least one dtype"),
    ("range = -3", "range: expected a positive number, got -3"),
    ("range = 'big'", "range: expected a positive number, got \"big\""),
    ("jobs = 1.5", "jobs: expected a positive integer, got 1.5"),
    ("jobs = true", "jobs: expected a positive integer, got true"),
    ("fail-on = 'fatal'", "fail-on: expected one of error, warning, info, got \"fatal\""),
    ("select = ['GS999']", "select: unknown code 'GS999'"),
    ("ignore = 'XY1'", "ignore: unknown code 'XY1'"),
    ("per-file-ignores = ['GS101']", "per-file-ignores: expected a table"),
    ("per-file-ignores = { 'a.py' = ['GS7'] }", "per-file-ignores.a.py: unknown code 'GS7'"),
    ("paths = 3", "paths: expected a list of strings, got 3"),
    ("timeout = 0", "timeout: expected a positive number, got 0"),
    ("seed = 'x'", "seed: expected an integer"),
    ("[tool.gradsafe", "invalid TOML"),
])
def test_bad_config_is_one_line_exit_2(tmp_path: Path, toml: str, message: str) -> None:
    body = toml if toml.startswith("[") else f"[tool.gradsafe]\n{toml}\n"
    pyproject = _write(tmp_path / "pyproject.toml", body + "\n")
    for command in (("config",), ("check", "x.py")):
        proc = run_cli(*command, cwd=tmp_path)
        assert proc.returncode == 2, proc.stdout
        assert proc.stdout == ""
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.startswith(f"Error: {pyproject}: "), proc.stderr
        assert message in proc.stderr


@pytest.mark.parametrize(("args", "message"), [
    (("--framework", "caffe"), "--framework: unknown framework 'caffe'"),
    (("--dtype", "int8"), "--dtype: unknown dtype 'int8'"),
    (("--range", "0"), "--range: expected a positive number, got 0.0"),
    (("--select", "GS9"), "--select: unknown code 'GS9'"),
    (("--jobs", "0"), "--jobs: expected a positive integer, got 0"),
])
def test_bad_command_line_values_are_one_line(tmp_path: Path, args: tuple[str, ...],
                                              message: str) -> None:
    proc = run_cli("check", "x.py", *args, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"Error: {message}"), proc.stderr
    assert proc.stderr.count("\n") == 1


def test_missing_config_file_and_missing_paths(tmp_path: Path) -> None:
    proc = run_cli("check", "--config", "nope.toml", cwd=tmp_path)
    assert (proc.returncode, proc.stderr) == (
        2, "Error: config file not found: nope.toml\n")
    proc = run_cli("check", cwd=tmp_path)
    assert (proc.returncode, proc.stderr) == (
        2, "Error: no paths to check: pass PATHS or set paths in [tool.gradsafe]\n")
    proc = run_cli("check", "x.py", "--update-baseline", cwd=tmp_path)
    assert proc.returncode == 2 and "--update-baseline needs a file" in proc.stderr
