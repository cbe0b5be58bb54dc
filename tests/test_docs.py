"""The documentation site (docs/, mkdocs.yml) and README.md stay true to the code.

- `mkdocs build --strict` succeeds: every page in the nav exists, every link and anchor
  resolves, every included file exists.
- Each finding code has a page and each page a code; SARIF's helpUri is that page.
- Every option of `gradsafe check` and every `[tool.gradsafe]` key is documented.
- The before/after examples on the code pages are included from fixture files, and each
  *before* has the page's code and each *after* has not: files with a golden beside them are
  read from the golden (test_fixtures runs those), the others are checked here in one CLI call.
- The output shown in README.md and on the home page is what the CLI prints.
"""

from __future__ import annotations

import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import click
import pytest
from conftest import ROOT, cli_env, run_cli, run_json

from gradsafe.cli import check, compare, fix, merge
from gradsafe.gate.config import KEYS
from gradsafe.model.codes import BY_CODE, CODES
from gradsafe.report import sarif

DOCS = ROOT / "docs"
CODE_PAGES = DOCS / "codes"
README = ROOT / "README.md"
README_LIMIT = 15 * 1024
INCLUDE = re.compile(r'^-{1,}8<-{1,}\s+"([^"]+)"\s*$')
ROLE = re.compile(r"^\*\*(Before|After)\*\*")
# codes that only `gradsafe compare` produces: their pages show both ports, which
# test_compare.py runs and checks, instead of a before/after pair
FROM_COMPARE = {"GS401", "GS402"}


def _mkdocs_config() -> str:
    return (ROOT / "mkdocs.yml").read_text()


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
         str(ROOT / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
        capture_output=True, text=True, cwd=tmp_path, timeout=300, env=cli_env())
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "WARNING" not in output, output
    for code in CODES:
        assert (tmp_path / "site" / "codes" / code.code.lower() / "index.html").is_file()


def test_every_code_has_a_page_and_every_page_a_code() -> None:
    pages = {p.stem.upper() for p in CODE_PAGES.glob("gs*.md")}
    assert pages == set(BY_CODE), (pages ^ set(BY_CODE))
    nav = _mkdocs_config()
    table = (CODE_PAGES / "index.md").read_text()
    for c in CODES:
        page = (CODE_PAGES / f"{c.code.lower()}.md").read_text()
        assert page.startswith(f"# {c.code} {c.name}\n"), c.code
        assert f"codes/{c.code.lower()}.md" in nav, f"{c.code}'s page is not in mkdocs.yml's nav"
        assert f"| [{c.code}]({c.code.lower()}.md) | {c.name} |" in table, c.code


def test_sarif_help_uri_is_the_code_page() -> None:
    site_url = re.search(r"^site_url:\s*(\S+)\s*$", _mkdocs_config(), re.M)
    assert site_url and site_url.group(1) == sarif.DOCS_URL
    rules = sarif._rules()
    assert [r["id"] for r in rules] == [c.code for c in CODES]
    for rule in rules:
        page = f"codes/{rule['id'].lower()}"
        assert rule["helpUri"] == f"{sarif.DOCS_URL}{page}/"
        assert (DOCS / f"{page}.md").is_file()


@pytest.mark.parametrize(("command", "page"), [
    (check, "guide/first-check.md"), (fix, "guide/fix.md"), (compare, "guide/compare.md"),
    (merge, "scale.md")], ids=["check", "fix", "compare", "merge"])
def test_every_option_is_documented(command: click.Command, page: str) -> None:
    text = (DOCS / page).read_text()
    options = [o for p in command.params for o in (*p.opts, *p.secondary_opts)
               if o.startswith("--")]
    assert "--output" in options or "--diff" in options
    missing = [o for o in options if f"`{o}" not in text and f" {o}" not in text]
    assert not missing, f"options of `gradsafe {command.name}` missing from {page}: {missing}"


def test_every_config_key_is_documented() -> None:
    page = (DOCS / "configuration.md").read_text()
    missing = [k for k in KEYS if f"| `{k}` |" not in page]
    assert not missing, f"[tool.gradsafe] keys missing from configuration.md: {missing}"


def _examples() -> list[tuple[str, str, str]]:
    """(code, role, file) for every file a code page includes under **Before**/**After**."""
    out = []
    for page in sorted(CODE_PAGES.glob("gs*.md")):
        role = ""
        for line in page.read_text().splitlines():
            if m := ROLE.match(line):
                role = m.group(1).lower()
            elif m := INCLUDE.match(line):
                out.append((page.stem.upper(), role, m.group(1)))
    return out


def _golden(path: str) -> Path:
    return ROOT / path.replace(".py", ".expected.json")


def test_code_pages_include_fixture_files() -> None:
    examples = _examples()
    for code in BY_CODE:
        files = [(role, f) for c, role, f in examples if c == code]
        assert all(f.startswith("fixtures/") for _, f in files), files
        if code in FROM_COMPARE:
            compared = (ROOT / "tests" / "test_compare.py").read_text()
            assert files and all(not role and Path(f).stem.split("_")[0] in compared
                                 for role, f in files), files
            continue
        roles = [role for role, _ in files]
        assert roles.count("before") == roles.count("after") >= 2, (code, files)
        assert len(files) == len({f for _, f in files}), files


def _needs_run() -> list[tuple[str, str, str]]:
    return [(c, r, f) for c, r, f in _examples() if r and not _golden(f).is_file()]


@cache
def _docs_report() -> tuple[int, dict[str, Any]]:
    files = sorted({f for _, _, f in _needs_run()})
    # classes at their defaults only: the pages' examples are about the default values, and the
    # grid would multiply the run's time by five; a generous time limit, since a loaded 2-core
    # machine can take a minute for one eager JAX target
    return run_json("check", *files, "--dtype", "float32", "--no-param-sweep", "--no-suggest",
                    "--no-cache", "--timeout", "300")


def _codes_found(targets: list[dict[str, Any]]) -> set[str]:
    return {f["code"] for t in targets for f in t["findings"]}


@pytest.mark.slow
def test_before_has_the_code_and_after_has_not() -> None:
    """Each *before* shows its page's code; each *after* is checked, has no error and not
    the page's code (classes at their default arguments)."""
    _, report = _docs_report()
    by_file: dict[str, list[dict[str, Any]]] = {}
    for t in report["targets"]:
        by_file.setdefault(t["file"], []).append(t)
    for code, role, path in _needs_run():
        targets = by_file.get(path, [])
        assert targets, f"{path} gave no target"
        assert all(t["status"] not in ("error", "skipped") for t in targets), (path, targets)
        found = _codes_found(targets)
        if role == "before":
            assert code in found, (path, found)
        else:
            errors = {f["code"] for t in targets for f in t["findings"]
                      if f["severity"] == "error"}
            assert code not in found and not errors, (path, found)


def test_examples_with_a_golden_show_the_code() -> None:
    """Included files that have their own golden: test_fixtures checks the file against it;
    here the golden must show the page's code (before) or not (after)."""
    import json

    for code, role, path in _examples():
        golden = _golden(path)
        if not role or not golden.is_file():
            continue
        found = {f.get("code") for f in json.loads(golden.read_text()).get("findings", [])}
        assert (code in found) == (role == "before"), (code, role, path, found)
        if role == "after":
            assert all(f.get("severity") != "error"
                       for f in json.loads(golden.read_text()).get("findings", [])), path


def _readme_output() -> str:
    text = README.read_text()
    match = re.search(r"```\n\$ gradsafe check examples/my_act.py --target elu\n(.*?)```",
                      text, re.S)
    assert match, "README.md lost its example output"
    return match.group(1)


@pytest.mark.slow
def test_shown_output_is_what_the_cli_prints() -> None:
    shown = (DOCS / "outputs" / "check-elu.txt").read_text()
    proc = run_cli("check", "examples/my_act.py", "--target", "elu", "--no-cache")
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == shown
    assert _readme_output() == shown


def test_readme_is_short_and_links_the_docs() -> None:
    text = README.read_text()
    assert len(text.encode()) < README_LIMIT, len(text.encode())
    for page in ("docs/guide/install.md", "docs/codes/index.md", "docs/ci.md",
                 "docs/configuration.md"):
        assert f"({page})" in text, page
        assert (ROOT / page).is_file()
    for code in CODES:
        assert f"[{code.code}](docs/codes/{code.code.lower()}.md)" in text, code.code


def test_readme_test_command_is_the_one_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    command = next(line for line in ci.splitlines() if line.startswith("python3 -m venv"))
    command = command.split(" && ")
    assert f"```bash\n{' && '.join(command[:3])}\n```" in README.read_text()
