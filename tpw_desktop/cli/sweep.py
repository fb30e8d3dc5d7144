"""``tpw sweep`` and ``tpw quantize``: variants of a model, and the same tests over each, interleaved."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import click

from ..engine.gguf_info import read_model_facts
from ..engine.quantize import TYPES, describe, quantize
from ..errors import TpwError
from ..files import atomic_writer
from ..power import PowerEnvironment, Sampler, open_sources
from ..run.sweep import SweepProgress, SweepRunner, plan_sweep, sweep_command
from .common import EXIT_CANCELLED, Progress, db_option, err, stop_on_signals
from .measure_options import build_spec, measure_options


@click.command("quantize")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--type", "qtype", required=True, help=f"The quantization: {', '.join(TYPES)}.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The new file (default: beside SOURCE, named by type, e.g. model-Q4_K_M.gguf; in the user's models "
    "folder when SOURCE's folder is an installed package's or read-only).",
)
@click.option("--allow-requantize", is_flag=True, help="Quantize a file that is already quantized (loses quality).")
@click.option("-t", "--threads", type=click.IntRange(0), default=0, help="Threads (0: all cores).")
def quantize_command(source, qtype, output, allow_requantize, threads):
    """Make a quantized variant of a GGUF with llama.cpp's own quantizer."""
    from ..engine.quantize import is_quantized, output_path, partial_path

    facts = read_model_facts(source)
    if is_quantized(facts) and not allow_requantize and sys.stdin.isatty():
        allow_requantize = click.confirm(
            f"{facts.file_name} is already {facts.quantization}: quantizing it again loses quality twice. Go on?",
            err=True,
        )
    tty = sys.stderr.isatty()

    def progress(i: int, n: int) -> None:
        if tty:
            click.echo(f"\r\x1b[2Ktpw: quantizing {facts.file_name}: tensor {i}/{n}", err=True, nl=False)

    out = output_path(facts.path, qtype, output)

    def stop(signum, _frame) -> None:
        """llama.cpp's quantizer can't be interrupted, but it logs each tensor: the handler runs then. The
        partial file goes, no file takes the output's name, and the exit is 130 as for any stopped command."""
        partial_path(out).unlink(missing_ok=True)
        err(
            f"{'Ctrl-C' if signum == signal.SIGINT else signal.Signals(signum).name}: stopped quantizing "
            f"{facts.file_name}; {out.name} was not written"
        )
        os._exit(EXIT_CANCELLED)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = quantize(source, qtype, out, allow_requantize=allow_requantize, threads=threads, progress=progress)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if tty:
        click.echo("\r\x1b[2K", err=True, nl=False)
    click.echo(describe(result))


@click.command("sweep")
@click.argument("models", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "-r",
    "--rounds",
    default=3,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Runs per variant; every round runs each variant once, interleaved.",
)
@click.option("--setting", help="A setting to vary: threads=1,2 | batch=512,2048 | ngl=0,99 | flash-attn=on,off.")
@click.option("--power-limit", "power_limits", help="GPU power limits to sweep, in W, comma-separated (needs root).")
@click.option("--gpu", type=click.IntRange(0), default=0, show_default=True, help="The GPU whose limit is swept.")
@click.option(
    "--settle-timeout",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Longest wait, between runs, for power to come back near idle.",
)
@measure_options
@click.option(
    "--report", type=click.Path(dir_okay=False, path_type=Path), help="Write the comparison (.html, .csv, .json)."
)
@click.option("--json", "as_json", is_flag=True, help="The comparison as JSON on stdout.")
@db_option
@click.pass_obj
def sweep_cli(obj, models, rounds, setting, power_limits, gpu, settle_timeout, shared, report, as_json):
    """The same tests over several models, setting values and/or GPU power limits, interleaved round by round."""
    spec = build_spec(shared, repetitions=1)
    for path in models:
        read_model_facts(path)
    limits = _limits(power_limits)
    command = sweep_command(
        list(models),
        spec.tests,
        rounds,
        settings=spec.settings,
        options=spec.options,
        setting=setting,
        power_limits_w=limits,
        settle_timeout_s=settle_timeout,
        power_spec=spec.power_spec,
        tdp_w=spec.tdp_w,
        rate_hz=spec.rate_hz,
    )
    plan = plan_sweep(
        list(models),
        spec.settings,
        spec.tests,
        rounds,
        spec.options,
        setting=setting,
        power_limits_w=limits,
        settle_timeout_s=settle_timeout,
        command=command,
    )
    limiter = None
    if limits:
        from ..power.limits import PowerLimiter

        limiter = PowerLimiter(gpu)
    from ..store import open_recorder

    writer, db_path = open_recorder(obj.get("db"))
    sources = open_sources(spec.power_spec, PowerEnvironment(tdp_w=spec.tdp_w))
    progress = _SweepProgress(not spec.quiet)
    try:
        with stop_on_signals() as signals, Sampler(sources, rate_hz=spec.rate_hz) as sampler:
            runner = SweepRunner(plan, sampler, recorder=writer, listener=progress, stop=signals.stop, limiter=limiter)
            result = runner.run()
            signals.done()
    finally:
        progress.done()
        for source in sources:
            source.close()
        if limiter is not None:
            limiter.close()
        writer.close()
    click.echo(
        f"sweep {result.sweep_id}: {len(result.runs)} runs of {len(plan.variants)} variants, {result.status}; "
        f"in {db_path}",
        err=True,
    )
    from ..analysis.compare import compare
    from ..store import Store

    with Store(db_path) as store:
        comparison = compare(store, sweep_id=result.sweep_id)
    show_comparison(comparison, as_json, report)
    if result.status == "cancelled":
        sys.exit(EXIT_CANCELLED)


def _limits(text: str | None) -> list[float]:
    if not text:
        return []
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected watts like 200,250,300, got {text!r}", param_hint="--power-limit") from None


class _SweepProgress(Progress):
    """Progress, plus which run of how many and the time left."""

    def __init__(self, enabled: bool):
        super().__init__("sweep", enabled)
        self.where = ""

    def __call__(self, event) -> None:
        if isinstance(event, SweepProgress):
            self.where = event.text
            self.status(self.where)
        else:
            super().__call__(event)

    def status(self, message: str) -> None:
        super().status(message if message == self.where else f"{self.where}: {message}")


def show_comparison(comparison, as_json: bool, report: Path | None) -> None:
    """The comparison as a table (or JSON), and as a report file when asked."""
    from tabulate import tabulate

    from ..analysis.report import json_text, write_report

    if as_json:
        click.echo(json_text(comparison))
    else:
        from ..analysis.compare import plus_minus, ratio_text

        rows = [
            [
                r.variant,
                f"{r.test}/{r.phase}",
                r.runs,
                plus_minus(r.tokens_per_s, 2),
                plus_minus(r.tokens_per_j, 3),
                ratio_text(r.ratio_tokens_per_j),
                r.method + ("" if r.confident else " (low confidence)"),
            ]
            for r in comparison.rows
        ]
        click.echo(
            tabulate(
                rows,
                ["variant", "test/phase", "runs", "t/s", "tok/J", f"tok/J vs {comparison.baseline}", "method"],
                tablefmt="github",
                disable_numparse=True,
            )
        )
        for warning in comparison.differences:
            click.echo(f"warning: {warning}")
        best = comparison.best_power_limit()
        if best:
            click.echo(
                f"most tokens per joule at {best.power_limit_w:g} W: {best.tokens_per_j.mean:.3f} tok/J, "
                f"{best.tokens_per_s.mean:.1f} tok/s"
            )
    if report is not None:
        write_report(comparison, report)
        err(f"wrote {report}")


def write_charts(comparison, folder: Path) -> list[Path]:
    """The report's charts as SVG files (the window also saves PNG)."""
    from ..analysis.report import charts

    if not folder.is_dir():
        raise TpwError(f"{folder}: no such folder")
    paths = []
    for name, svg in charts(comparison).items():
        path = folder / f"{name}.svg"
        with atomic_writer(path) as f:
            f.write(svg)
        paths.append(path)
    return paths
