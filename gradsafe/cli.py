"""Command line: parse options, call the engine, pick a reporter. No framework imports."""

from __future__ import annotations

import os
import sys
import tempfile
import textwrap
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from gradsafe import __version__
from gradsafe.discover.selection import SelectionError
from gradsafe.discover.targets import DiscoveryError
from gradsafe.discover.variants import VariantError, parse_params
from gradsafe.gate import baseline, config
from gradsafe.model.codes import CODES, Code, lookup
from gradsafe.model.types import SEVERITIES, Report
from gradsafe.report import Format, renderer
from gradsafe.run import devices, engine, shard
from gradsafe.run.cache import forget_sources

if TYPE_CHECKING:
    from gradsafe.model.samples import GroupData


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


def _fail(message: str) -> NoReturn:
    """Bad input: one line on stderr and exit 2, never a traceback."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(2)


def _config_options(f: Callable[..., None]) -> Callable[..., None]:
    """Options that [tool.gradsafe] can also set; shared by `check` and `config`.

    Defaults are None/empty so that config.resolve can tell what the command line gave."""
    decorators = [
        click.argument("paths", nargs=-1),
        click.option("--config", "config_file", type=click.Path(dir_okay=False),
                     help="Read [tool.gradsafe] from this file instead of the nearest "
                          "pyproject.toml."),
        click.option("--framework", "frameworks", multiple=True, metavar="NAME[,NAME]",
                     help="torch, tensorflow, jax, numpy (default: every framework the "
                          "target uses)."),
        click.option("--dtype", "dtypes", multiple=True, metavar="NAME[,NAME]",
                     help="float16, bfloat16, float32, float64 "
                          "(default: float32,float16,bfloat16)."),
        click.option("--range", "operating_range", type=float, default=None,
                     help="Operating range R: findings with |x| <= R are errors, beyond are "
                          "warnings [default: 10000]."),
        click.option("--fail-on", type=click.Choice(SEVERITIES), default=None,
                     help="Lowest severity that makes the exit code non-zero [default: error]."),
        click.option("--select", multiple=True, metavar="CODE[,CODE]",
                     help="Report only these codes or prefixes (GS1, GS101)."),
        click.option("--ignore", multiple=True, metavar="CODE[,CODE]",
                     help="Never report these codes or prefixes."),
        click.option("--exclude", multiple=True, metavar="GLOB",
                     help="Skip files matching this glob (relative to the project root)."),
        click.option("--timeout", type=float, default=None,
                     help="Seconds allowed per target and framework [default: 60]."),
        click.option("--jobs", "-j", type=int, default=None,
                     help="Worker processes in all (default: the number of cores; at least "
                          "one per framework)."),
        click.option("--seed", type=int, default=None,
                     help="Seed for the random probe points [default: 0]."),
        click.option("--order", type=click.Choice(["1", "2"]), default=None,
                     help="Highest derivative to check: 2 also sweeps the second derivative "
                          "(physics-informed losses, force training) [default: 1]."),
        click.option("--baseline", "baseline_file", metavar="FILE", default=None,
                     help="Findings recorded in FILE do not fail the run (see "
                          "--update-baseline)."),
        click.option("--arg", "arg_specs", multiple=True, metavar="NAME=VALUE",
                     help="Call argument beyond x for every target that takes NAME "
                          "(repeatable; a Python literal: 8, 5.0, 'sum', True, (1, 2))."),
        click.option("--domain", "domain", metavar="LOW,HIGH", default=None,
                     help="Inputs the function is meant for (e.g. 0,inf for distances): "
                          "findings outside are not reported."),
        click.option("--sweep", "sweep", metavar="NAME|NAME[C]|all", default=None,
                     help="The argument to sweep (default: the first); the others are "
                          "bound with --arg. NAME[C]: column C of NAME's last axis, the "
                          "rest of each row from --arg NAME=[...]. 'all': each required "
                          "argument in turn."),
    ]
    for decorator in reversed(decorators):
        f = decorator(f)
    return f


def _resolve(paths: tuple[str, ...], config_file: str | None, targets: tuple[str, ...],
             **given: Any) -> config.Resolved:
    names = {"frameworks": "frameworks", "dtypes": "dtypes", "operating_range": "range",
             "fail_on": "fail-on", "select": "select", "ignore": "ignore",
             "exclude": "exclude", "timeout": "timeout", "jobs": "jobs", "seed": "seed",
             "baseline_file": "baseline", "arg_specs": "args", "domain": "domain",
             "order": "order", "sweep": "sweep"}
    cli = {names[k]: v for k, v in given.items() if v is not None and v != ()}
    if "args" in cli:
        table: dict[str, str] = {}
        for spec in cli["args"]:
            name, sep, value = spec.partition("=")
            if not sep or not name.strip().isidentifier() or not value.strip():
                _fail(f"--arg {spec!r}: expected NAME=VALUE")
            table[name.strip()] = value
        cli["args"] = table
    if paths:
        cli["paths"] = paths
    try:
        return config.resolve(cli, config_file, targets=targets)
    except config.ConfigError as exc:
        _fail(str(exc))


@main.command()
@_config_options
@click.option("--target", "targets", multiple=True, metavar="NAME",
              help="Check only this function or class (repeatable).")
@click.option("--format", "fmt", type=click.Choice([f.value for f in Format]), default="text",
              show_default=True, help="Report format.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True),
              help="Write the report to this file instead of stdout.")
@click.option("--update-baseline", is_flag=True,
              help="Write every current finding to the baseline file and exit 0.")
@click.option("--show-suppressed", is_flag=True,
              help="List findings hidden by comments or the baseline, and bare ignores.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the findings.")
@click.option("--verbose", "-v", is_flag=True,
              help="Print every finding's message, suggestions and notes.")
@click.option("--param", "param_specs", multiple=True, metavar="NAME=V1[,V2...]",
              help="Constructor argument values to check (repeatable); replaces the "
                   "automatic grid of that argument. The defaults are always checked.")
@click.option("--param-sweep/--no-param-sweep", default=True, show_default=True,
              help="Vary each numeric constructor argument over an automatic grid.")
@click.option("--suggest/--no-suggest", default=True, show_default=True,
              help="Propose a rewrite for each target with findings and verify it by "
                   "re-sweeping (--no-suggest skips the extra sweeps).")
@click.option("--exhaustive", is_flag=True,
              help="Sweep every float32 value (2**32, compiled chunks, progress on stderr) "
                   "instead of the float32 probe plan; Ctrl-C leaves a partial report.")
@click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]), default="cpu",
              show_default=True, help="Where the sweep runs; auto: a GPU when the framework "
                                      "sees one, else the CPU.")
@click.option("--shard", "shard_spec", metavar="I/N", default=None,
              help="Check only the I-th of N shares of the files (1-based); join the JSON "
                   "reports with `gradsafe merge`.")
@click.option("--cache/--no-cache", "use_cache", default=True, show_default=True,
              help="Reuse results of unchanged targets ($GRADSAFE_CACHE_DIR, else "
                   "~/.cache/gradsafe).")
@click.option("--color", type=click.Choice(["auto", "always", "never"]), default="auto",
              show_default=True, help="Colour in the text report.")
@click.option("--no-color", is_flag=True, help="Same as --color never (NO_COLOR works too).")
@click.option("--plot", "plot_file", type=click.Path(dir_okay=False), metavar="FILE.png",
              help="Draw f and f' of each checked function per framework and dtype, bad "
                   "ranges shaded, boundaries marked (needs matplotlib: the 'plot' extra).")
def check(paths: tuple[str, ...], config_file: str | None, targets: tuple[str, ...], fmt: str,
          output: str | None, update_baseline: bool, show_suppressed: bool, quiet: bool,
          verbose: bool, param_specs: tuple[str, ...], param_sweep: bool, suggest: bool,
          exhaustive: bool, device: str, shard_spec: str | None, use_cache: bool, color: str,
          no_color: bool, plot_file: str | None, **given: Any) -> None:
    """Check files, directories (*.py inside) or dotted built-ins like torch.nn.functional.elu.

    PATHS default to `paths` in [tool.gradsafe]. Exit code: 0 clean; bit 1 findings at or
    above --fail-on; bit 2 something could not be checked (so 3 = both); 2 also for bad
    configuration.
    """
    if output and not Path(output).resolve().parent.is_dir():
        _fail(f"cannot write --output {output}: its directory does not exist")
    if plot_file:
        _need_matplotlib(plot_file)
    resolved = _resolve(paths, config_file, targets, **given)
    try:
        options = replace(resolved.options, param_values=parse_params(param_specs),
                          param_sweep=param_sweep, suggest=suggest, cache=use_cache,
                          exhaustive=exhaustive,
                          device=devices.choose(device),
                          shard=shard.parse(shard_spec) if shard_spec else None)
    except (VariantError, shard.ShardError, devices.DeviceError) as exc:
        _fail(str(exc))
    if not options.paths:
        _fail("no paths to check: pass PATHS or set paths in [tool.gradsafe]")
    if update_baseline and options.shard is not None:
        _fail("--update-baseline needs every target: run it without --shard")
    if update_baseline and not options.baseline:
        _fail("--update-baseline needs a file: pass --baseline FILE or set baseline in "
              "[tool.gradsafe]")
    if options.baseline and not update_baseline:
        try:
            baseline.load(options.baseline)  # fail before the sweep, not after it
        except baseline.BaselineError as exc:
            _fail(str(exc))
    run_options = replace(options, baseline=None) if update_baseline else options
    progress = None
    if sys.stderr.isatty() and fmt == "text" and output is None and not quiet:
        def progress(job: object) -> None:
            t = getattr(job, "target", None)
            click.echo(f"checked {getattr(t, 'name', '?')} ({getattr(job, 'framework', '')})",
                       err=True)
    bar = None
    if options.exhaustive:
        from gradsafe.report.progress import ExhaustiveProgress  # rich.progress only when needed

        bar = ExhaustiveProgress()
    try:
        with bar if bar is not None else nullcontext():
            report, samples, left_out = engine.check_and_plot(
                options.paths, run_options, progress, bar.tick if bar is not None else None,
                PLOT_TARGETS if plot_file else 0)
    except (DiscoveryError, VariantError, SelectionError) as exc:
        _fail(str(exc))
    except baseline.BaselineError as exc:
        _fail(str(exc))
    if update_baseline:
        assert options.baseline is not None
        write_atomic(options.baseline, baseline.dumps(report))
        count = sum(len(t.findings) for t in report.targets)
        click.echo(f"gradsafe: wrote {count} finding{'s' * (count != 1)} to "
                   f"{options.baseline}", err=True)
        sys.exit(engine.exit_code(report) & 2)
    if not quiet:
        for s in report.unused_suppressions:
            what = f"ignore[{', '.join(s.codes)}]" if s.codes else "ignore"
            click.echo(f"{s.file}:{s.line}: warning: unused suppression "
                       f"'# gradsafe: {what}' (nothing to suppress here)", err=True)
    colored = _use_color("never" if no_color else color,
                         output is None and sys.stdout.isatty())
    if Format(fmt) is Format.TEXT:
        from gradsafe.report.text import render as render_text  # rich: text output only

        text = render_text(report, colored, quiet=quiet, verbose=verbose,
                           show_suppressed=show_suppressed)
    else:
        text = renderer(Format(fmt))(report, False)
    if plot_file:
        _plot_check(plot_file, report, samples, left_out)
    if output:
        try:
            write_atomic(output, text)
        except OSError as exc:
            _fail(f"cannot write {output}: {exc.strerror or exc}")
    else:
        click.echo(text, nl=False, color=colored)
    sys.exit(engine.exit_code(report))


def _shown(path: str) -> str:
    """A path as the user would write it: relative to the working directory when inside."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


@main.command()
@_config_options
@click.option("--target", "targets", multiple=True, metavar="NAME",
              help="Fix only this function or class (repeatable).")
@click.option("--diff", "mode", flag_value="diff", default=True,
              help="Print the verified rewrites as a unified diff (the default).")
@click.option("--write", "mode", flag_value="write",
              help="Apply the verified rewrites to the files, then check them again.")
@click.option("--param", "param_specs", multiple=True, metavar="NAME=V1[,V2...]",
              help="Constructor argument values to check (as for check).")
@click.option("--param-sweep/--no-param-sweep", default=True, show_default=True,
              help="Vary each numeric constructor argument over an automatic grid.")
def fix(paths: tuple[str, ...], config_file: str | None, targets: tuple[str, ...], mode: str,
        param_specs: tuple[str, ...], param_sweep: bool, **given: Any) -> None:
    """Rewrite the code behind findings, using only suggestions verified by a re-sweep.

    --diff prints the rewrites; --write applies them (atomically, keeping file permissions,
    refusing a file changed since it was analysed) and checks the files again. Exit code as
    for check: of the analysis with --diff, of the check after writing with --write; 2 when
    a file could not be written.
    """
    from gradsafe import fix as fixing  # libcst (~0.1 s): `gradsafe fix` only

    resolved = _resolve(paths, config_file, targets, **given)
    try:
        options = replace(resolved.options, param_values=parse_params(param_specs),
                          param_sweep=param_sweep, suggest=True)
    except VariantError as exc:
        _fail(str(exc))
    if not options.paths:
        _fail("no paths to fix: pass PATHS or set paths in [tool.gradsafe]")
    try:
        files = fixing.snapshot(options.paths)
        report = engine.check(options.paths, options)
    except (DiscoveryError, VariantError, SelectionError, baseline.BaselineError) as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"cannot read {exc.filename}: {exc.strerror or exc}")
    plans = fixing.plan(report, files)
    for p in plans:
        for name, why in p.skipped:
            click.echo(f"{_shown(p.path)}: {name}: not rewritten: {why}", err=True)
    changes = [p for p in plans if p.new != p.old]
    if mode == "diff":
        for p in changes:
            click.echo(p.diff(_shown(p.path)), nl=False)
        if not changes:
            click.echo("gradsafe: no verified rewrite to apply", err=True)
        sys.exit(engine.exit_code(report))
    failed = 0
    for p in changes:
        try:
            fixing.write(p)
        except fixing.FixError as exc:
            click.echo(f"Error: {exc}", err=True)
            failed = 2
            continue
        click.echo(f"gradsafe: rewrote {', '.join(p.applied)} in {_shown(p.path)}", err=True)
    if not changes:
        click.echo("gradsafe: no verified rewrite to apply", err=True)
    forget_sources()
    after = engine.check(options.paths, replace(options, suggest=False))
    from gradsafe.report.text import render as render_text  # rich: text output only

    click.echo(render_text(after, False, quiet=False), nl=False)
    sys.exit(engine.exit_code(after) | failed)


@main.command()
@click.argument("specs", nargs=-1, required=True, metavar="A B [C]")
@click.option("--framework", "frameworks", multiple=True, metavar="NAME[,NAME]",
              help="Frameworks for portable definitions (default: torch, tensorflow, jax).")
@click.option("--dtype", "dtypes", multiple=True, metavar="NAME[,NAME]",
              help="float16, bfloat16, float32, float64 (default: float32,float16,bfloat16).")
@click.option("--range", "operating_range", type=float, default=None,
              help="Operating range of the probe plan [default: 10000].")
@click.option("--fail-on", type=click.Choice(SEVERITIES), default=None,
              help="Lowest severity that makes the exit code non-zero [default: error].")
@click.option("--timeout", type=float, default=None,
              help="Seconds allowed per target and framework [default: 60].")
@click.option("--seed", type=int, default=None, help="Seed for the random probe points.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Report format.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True),
              help="Write the report to this file instead of stdout.")
@click.option("--plot", "plot_file", type=click.Path(dir_okay=False), metavar="FILE.png",
              help="Draw f and f' of every side per dtype, differences shaded (needs "
                   "matplotlib: the 'plot' extra).")
@click.option("--color", type=click.Choice(["auto", "always", "never"]), default="auto",
              show_default=True, help="Colour in the text report.")
@click.option("--no-color", is_flag=True, help="Same as --color never (NO_COLOR works too).")
def compare(specs: tuple[str, ...], fmt: str, output: str | None, plot_file: str | None,
            color: str, no_color: bool, **given: Any) -> None:
    """Run the same probes through two or three definitions and show where forward values
    and gradients agree.

    A, B, C: files (targets matched by name), FILE.py::NAME, or dotted built-ins such as
    torch.nn.functional.elu jax.nn.elu tf.nn.elu. One portable definition (keras.ops or
    array-API) is compared across the frameworks it runs on. Exit code: bit 1 GS401
    differences (at or above --fail-on), bit 2 a side could not be evaluated.
    """
    from gradsafe.compare.groups import CompareError  # this command's stack only
    from gradsafe.compare.groups import compare as run_compare

    if len(specs) > 3:
        _fail("compare takes one to three targets (A B [C])")
    for path in (output, plot_file):
        if path and not Path(path).resolve().parent.is_dir():
            _fail(f"cannot write {path}: its directory does not exist")
    if plot_file:
        _need_matplotlib(plot_file)
    options = _resolve((), None, (), **given).options
    try:
        report, data = run_compare(specs, options)
    except (CompareError, DiscoveryError) as exc:
        _fail(str(exc))
    colored = _use_color("never" if no_color else color,
                         output is None and sys.stdout.isatty())
    if fmt == "json":
        from gradsafe.report.json_report import render as render_json  # as renderer() does

        text = render_json(report)
    else:
        from gradsafe.report.text import render as render_text  # rich: text output only

        text = render_text(report, colored)
    if plot_file:
        from gradsafe.report.plot import plot_comparisons  # matplotlib: --plot only

        _write_plot(plot_file, lambda path: plot_comparisons(report, data, path))
    if output:
        try:
            write_atomic(output, text)
        except OSError as exc:
            _fail(f"cannot write {output}: {exc.strerror or exc}")
    else:
        click.echo(text, nl=False, color=colored)
    sys.exit(engine.exit_code(report))


PLOT_TARGETS = 6


def _plot_check(path: str, report: Report, data: list[GroupData], left_out: int) -> None:
    from gradsafe.report.plot import plot_check  # matplotlib: --plot only

    if not any(gd.values for gd in data):
        click.echo(f"gradsafe: nothing to plot in {path} (no function could be evaluated)",
                   err=True)
        return
    _write_plot(path, lambda tmp: plot_check(report, data, tmp))
    more = f"; {left_out} more targets not drawn (pick some with --target)" if left_out else ""
    click.echo(f"gradsafe: wrote {path}{more}", err=True)


def _need_matplotlib(path: str) -> None:
    if not path.lower().endswith(".png"):
        _fail(f"--plot {path}: the plot is a PNG file; name it *.png")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        _fail("--plot needs matplotlib: pip install 'gradsafe[plot]'")


def _write_plot(path: str, draw: Callable[[str], None]) -> None:
    """Draw into a temporary file and rename: never half a PNG."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent or ".", prefix=f".{target.name}.",
                               suffix=".png")
    os.close(fd)
    try:
        draw(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # a normal file, not mkstemp's private 0600
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        _fail(f"cannot write {path}: {exc.strerror or exc}")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@main.command()
@click.argument("reports", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True),
              help="Write the merged report to this file instead of stdout.")
def merge(reports: tuple[str, ...], output: str | None) -> None:
    """Join the JSON reports of `check --shard I/N --format json` runs into one.

    The result is the report an unsharded run writes, byte for byte; the exit code is its
    exit code.
    """
    try:
        merged = shard.merge([shard.load(path) for path in reports])
    except shard.ShardError as exc:
        _fail(str(exc))
    text = shard.render(merged)
    if output:
        try:
            write_atomic(output, text)
        except OSError as exc:
            _fail(f"cannot write {output}: {exc.strerror or exc}")
    else:
        click.echo(text, nl=False)
    sys.exit(int(merged["summary"]["exit_code"]))


@main.command("config")
@_config_options
def config_command(paths: tuple[str, ...], config_file: str | None, **given: Any) -> None:
    """Print the effective configuration and where each value came from."""
    click.echo(config.render(_resolve(paths, config_file, (), **given)), nl=False)


@main.command()
@click.argument("code", required=False)
def explain(code: str | None) -> None:
    """Explain a finding code: the cause, a before/after example per framework, links.

    Without CODE, list every code."""
    if code is None:
        for c in CODES:
            click.echo(f"{c.code}  {c.name:<24} {c.summary}")
        click.echo("\nRun `gradsafe explain CODE` for the cause, examples and links.")
        return
    try:
        c = lookup(code)
    except KeyError as exc:
        _fail(str(exc.args[0]))
    click.echo(explain_text(c), nl=False)


_FRAMEWORK_TITLES = {"torch": "PyTorch", "tensorflow": "TensorFlow", "jax": "JAX"}


def explain_text(c: Code) -> str:
    """The long explanation of one code, as `gradsafe explain CODE` prints it."""
    def block(text: str) -> str:
        return "    " + text.replace("\n", "\n    ")

    out = [f"{c.code} {c.name}", "", *textwrap.wrap(c.summary, 88), "",
           *textwrap.wrap(c.explanation, 88), ""]
    for ex in c.all_examples:
        title = _FRAMEWORK_TITLES.get(ex.framework, ex.framework)
        out += [f"{title} before:" if title else "Before:", block(ex.before), "",
                f"{title} after:" if title else "After:", block(ex.after), ""]
    if c.links:
        out.append("See also:")
        out += [f"    {link}" for link in c.links]
        out.append("")
    return "\n".join(out)


def run() -> None:
    """Console entry point: internal errors become one line unless GRADSAFE_DEBUG is set."""
    if not os.environ.get("GRADSAFE_DEBUG"):
        # numpy's floating-point warnings from gradsafe's own code (a cast that overflows)
        # are not the user's business; the code avoids them, this keeps a slip off stderr
        warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"gradsafe(\.|$)")
    try:
        main()
    except KeyboardInterrupt:  # outside a sweep (which reports partially instead)
        click.echo("gradsafe: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("GRADSAFE_DEBUG"):
            raise
        click.echo(f"gradsafe: internal error: {type(exc).__name__}: {exc} "
                   "(set GRADSAFE_DEBUG=1 for the traceback)", err=True)
        sys.exit(2)


if __name__ == "__main__":
    run()
