"""Command line: parse options, call the engine, pick a reporter. No framework imports."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import click

from gradsafe import __version__, engine
from gradsafe.codes import CODES, lookup
from gradsafe.discover import DiscoveryError
from gradsafe.model import DTYPES, FRAMEWORKS, SEVERITIES, Options
from gradsafe.report import Format, renderer
from gradsafe.variants import VariantError, parse_params


def _split(values: tuple[str, ...], allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    out: list[str] = []
    for v in values:
        for item in v.split(","):
            item = item.strip().lower()
            if item == "tf":
                item = "tensorflow"
            if not item:
                continue
            if item not in allowed:
                raise click.BadParameter(f"unknown {what} '{item}' (choose from "
                                         f"{', '.join(allowed)})")
            if item not in out:
                out.append(item)
    return tuple(out)


def write_atomic(path: str, text: str) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent or ".", prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _use_color(choice: str, stream_is_tty: bool) -> bool:
    if choice == "always":
        return True
    if choice == "never" or os.environ.get("NO_COLOR"):
        return False
    return stream_is_tty


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gradsafe")
def main() -> None:
    """Find NaN/inf gradients in activation functions before you train."""


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--framework", "frameworks", multiple=True, metavar="NAME[,NAME]",
              help="torch, tensorflow, jax (default: every framework the target uses).")
@click.option("--dtype", "dtypes", multiple=True, metavar="NAME[,NAME]",
              help="float16, bfloat16, float32, float64 (default: float32,float16,bfloat16).")
@click.option("--target", "targets", multiple=True, metavar="NAME",
              help="Check only this function or class (repeatable).")
@click.option("--range", "operating_range", type=click.FloatRange(min=0, min_open=True),
              default=1e4, show_default=True,
              help="Operating range: findings with |x| <= R are errors, beyond are warnings.")
@click.option("--fail-on", type=click.Choice(SEVERITIES), default="error", show_default=True,
              help="Lowest severity that makes the exit code non-zero.")
@click.option("--format", "fmt", type=click.Choice([f.value for f in Format]), default="text",
              show_default=True, help="Report format.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True),
              help="Write the report to this file instead of stdout.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=60.0,
              show_default=True, help="Seconds allowed per target and framework.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed for the random probe points.")
@click.option("--param", "param_specs", multiple=True, metavar="NAME=V1[,V2...]",
              help="Constructor argument values to check (repeatable); replaces the "
                   "automatic grid of that argument. The defaults are always checked.")
@click.option("--param-sweep/--no-param-sweep", default=True, show_default=True,
              help="Vary each numeric constructor argument over an automatic grid.")
@click.option("--color", type=click.Choice(["auto", "always", "never"]), default="auto",
              show_default=True, help="Colour in the text report.")
@click.option("--no-color", is_flag=True, help="Same as --color never (NO_COLOR works too).")
def check(paths: tuple[str, ...], frameworks: tuple[str, ...], dtypes: tuple[str, ...],
          targets: tuple[str, ...], operating_range: float, fail_on: str, fmt: str,
          output: str | None, timeout: float, seed: int, param_specs: tuple[str, ...],
          param_sweep: bool, color: str, no_color: bool) -> None:
    """Check files, directories (*.py inside) or dotted built-ins like torch.nn.functional.elu.

    Exit code: 0 clean; bit 1 findings at or above --fail-on; bit 2 something could not be
    checked (so 3 = both).
    """
    fws = _split(frameworks, FRAMEWORKS, "framework") or None
    dts = _split(dtypes, DTYPES, "dtype") or Options().dtypes
    options = Options(fws, dts, targets, operating_range, fail_on, timeout, seed,  # type: ignore[arg-type]
                      parse_params(param_specs), param_sweep)
    progress = None
    if sys.stderr.isatty() and fmt == "text" and output is None:
        def progress(job: object) -> None:
            t = getattr(job, "target", None)
            click.echo(f"checked {getattr(t, 'name', '?')} ({getattr(job, 'framework', '')})",
                       err=True)
    try:
        report = engine.check(paths, options, progress)
    except (DiscoveryError, VariantError) as exc:
        raise click.UsageError(str(exc)) from None
    colored = _use_color("never" if no_color else color,
                         output is None and sys.stdout.isatty())
    text = renderer(Format(fmt))(report, colored and fmt == "text")
    if output:
        write_atomic(output, text)
    else:
        click.echo(text, nl=False)
    sys.exit(engine.exit_code(report))


@main.command()
@click.argument("code", required=False)
def explain(code: str | None) -> None:
    """Explain a finding code (or list all codes)."""
    if code is None:
        for c in CODES:
            click.echo(f"{c.code}  {c.name:<24} {c.summary}")
        return
    try:
        c = lookup(code)
    except KeyError as exc:
        raise click.UsageError(str(exc.args[0])) from None
    click.echo(f"{c.code} {c.name}\n\n{c.summary}\n\n{c.explanation}\n")
    click.echo(f"Before:\n    {c.before.replace(chr(10), chr(10) + '    ')}\n")
    click.echo(f"After:\n    {c.after.replace(chr(10), chr(10) + '    ')}")
    if c.links:
        click.echo("\nSee also:")
        for link in c.links:
            click.echo(f"    {link}")


if __name__ == "__main__":
    main()
