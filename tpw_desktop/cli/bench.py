"""``tpw bench``: llama-bench's tests and tpw's workloads, with energy, on one or more models.

Whatever happens after the first repetition, the measurement is shown: a
stop (Ctrl-C, SIGTERM) prints what finished, a second Ctrl-C too, and a
database that stops taking writes gets the results written to a JSON file
instead, with the reason.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click

from .. import __version__, serialize
from ..engine.gguf_info import format_params, format_size, read_model_facts
from ..engine.llama_engine import load_engine
from ..errors import TpwError
from ..files import atomic_writer
from ..power import (
    PowerEnvironment,
    Sampler,
    open_sources,
)
from ..record.meta import RunOptions
from ..run.results import RunReport
from ..run.session import MeasuredRun
from .common import (
    EXIT_CANCELLED,
    EXIT_PARTIAL,
    EXIT_USAGE,
    Progress,
    db_option,
    err,
    fmt,
    stop_on_signals,
)
from .endpoint import EndpointSpec, bench_endpoint, endpoint_options
from .exporter import bind_option, metrics_port_option, start_exporter
from .measure_options import MeasureSpec, build_spec, measure_options


@click.command()
@click.argument("models", nargs=-1, type=click.Path(path_type=Path))
@click.option("-r", "--repetitions", default=RunOptions.repetitions, show_default=True, type=click.IntRange(1, 1000))
@click.option(
    "--delay",
    "delay_s",
    type=click.FloatRange(min=0),
    default=RunOptions.delay_s,
    show_default=True,
    help="Cool-down between tests, as llama-bench's --delay; power is then checked against idle.",
)
@measure_options
@click.option("--no-save", is_flag=True, help="Don't record a session in the database.")
@click.option(
    "--save-failed-to",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the results as JSON if the database can't take them (default: tpw-results-TIME.json here).",
)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable results on stdout.")
@metrics_port_option
@bind_option
@endpoint_options
@db_option
@click.pass_obj
def bench(
    obj,
    models,
    repetitions,
    delay_s,
    shared,
    no_save,
    save_failed_to,
    as_json,
    metrics_port,
    bind,
    endpoint,
    api_model,
    api_key,
    concurrency,
    timeout_s,
):
    """Benchmark speed and energy, llama-bench style (default: the bundled model), or a server's (--endpoint)."""
    if endpoint:
        if models:
            raise click.UsageError("--endpoint measures the server's model: give no model file")
        spec = build_spec(
            {**shared, "n_prompt": "0", "n_gen": "0", "workloads": shared["workloads"] or ("chat",)},
            repetitions,
            delay_s,
        )
        writer, db_path = (None, None)
        if not no_save:
            from ..store import open_recorder

            writer, db_path = open_recorder(obj.get("db"))
        target = EndpointSpec(endpoint, api_model, api_key, concurrency, timeout_s)
        metrics = None if metrics_port is None else (metrics_port, bind)
        with stop_on_signals() as signals:
            bench_endpoint(
                target, spec, repetitions, writer, db_path, as_json, shared["workloads"], signals.stop, metrics
            )
        return
    spec = build_spec(shared, repetitions, delay_s)
    paths = list(models) or [None]
    for path in paths:  # a bad file fails before anything else starts
        if path is not None:
            read_model_facts(path)
    writer, db_path = (None, None)
    if not no_save:
        from ..store import open_recorder

        writer, db_path = open_recorder(obj.get("db"))  # ours, not newer, writable: before any model loads
    with stop_on_signals() as signals:
        metrics = None if metrics_port is None else (metrics_port, bind)
        reports, interrupted, failure = _run_all(paths, spec, writer, signals.stop, metrics)
        signals.done()  # what is left is printing what was measured: nothing more to stop
        _report(reports, interrupted, failure, as_json, db_path, save_failed_to)


def _report(
    reports: list[RunReport],
    interrupted: bool,
    failure: TpwError | None,
    as_json: bool,
    db_path: Path | None,
    save_failed_to: Path | None,
) -> None:
    """Print what was measured, save it elsewhere if the database didn't take it, exit accordingly."""
    if failure and not any(r.results for r in reports):
        raise failure  # nothing was measured: one line, status 2
    if as_json:
        click.echo(serialize.dumps({"tpw_version": __version__, "runs": [r.as_json() for r in reports]}, indent=2))
    else:
        print_bench_table(reports)
        for report in reports:
            if report.session_id is not None and not report.save_error:
                click.echo(f"\nsaved session {report.session_id} ({report.status}) in {db_path}", err=True)
    if any(r.save_error for r in reports):
        _save_elsewhere(reports, save_failed_to)
        sys.exit(EXIT_PARTIAL)
    if failure:
        err(str(failure))
        sys.exit(EXIT_USAGE)
    if interrupted or any(r.status == "cancelled" for r in reports):
        sys.exit(EXIT_CANCELLED)


def _run_all(
    paths, spec: MeasureSpec, writer, stop, metrics: tuple[int, str] | None = None
) -> tuple[list[RunReport], bool, TpwError | None]:
    """Each model in turn; what finished is returned even when a failure or a second Ctrl-C cuts it short."""
    sources = open_sources(spec.power_spec, PowerEnvironment(tdp_w=spec.tdp_w))
    reports: list[RunReport] = []
    sampler = Sampler(sources, rate_hz=spec.rate_hz)
    exporter = None
    try:
        with sampler:
            if metrics is not None:
                exporter = start_exporter(sampler, *metrics, spec.options.price_per_kwh, spec.options.currency)
            for path in paths:
                if stop.is_set():
                    break
                progress = Progress(
                    Path(path).name if path else "bundled SmolLM2-135M-Instruct Q4_1", enabled=not spec.quiet
                )
                progress.status("loading the model")
                engine = load_engine(path, spec.settings, on_warning=lambda m: err(f"warning: {m}"))
                listener = progress
                if exporter is not None:
                    exporter.set_model(
                        engine.facts.file_name,
                        engine.facts.quantization,
                        "GPU" if engine.settings.n_gpu_layers else "CPU",
                    )
                    listener = lambda event, progress=progress: (progress(event), exporter.listener(event))  # noqa: E731
                run = MeasuredRun(engine, sampler, spec.options, recorder=writer, listener=listener, stop=stop)
                try:
                    reports.append(run.run(spec.tests))
                except (KeyboardInterrupt, TpwError) as exc:
                    if run.report is not None:
                        reports.append(run.report)
                    return reports, isinstance(exc, KeyboardInterrupt), exc if isinstance(exc, TpwError) else None
                finally:
                    progress.done()
                    engine.close()
    finally:
        if exporter is not None:
            exporter.close()
        for source in sources:
            source.close()
        if writer:
            writer.close()
    return reports, False, None


def _save_elsewhere(reports: list[RunReport], path: Path | None) -> None:
    """The results the database didn't take, as JSON where the user can find them."""
    path = path or Path.cwd() / f"tpw-results-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    for report in reports:
        if report.save_error:
            err(f"the session was measured but not saved: {report.save_error}")
    with atomic_writer(path) as f:
        serialize.dump({"tpw_version": __version__, "runs": [r.as_json() for r in reports]}, f, indent=2)
    err(f"the results are in {path}")


def _backend(report: RunReport) -> str:
    build = report.meta.build
    if report.meta.on_gpu:
        for name in ("CUDA", "Metal", "Vulkan", "ROCm", "SYCL"):
            if name.upper() in build.system_info.upper():
                return name
        return "GPU"
    return "CPU"


def _cell(value, digits: int, notes: dict[str, int], reason: str | None, sd=None) -> str:
    """A figure, ± its spread, or n/a with a footnote number pointing at why."""
    if value is None:
        if reason is None:
            return "n/a"
        number = notes.setdefault(reason, len(notes) + 1)
        return f"n/a [{number}]"
    return f"{value:.{digits}f}" + ("" if sd is None else f" ± {sd:.{digits}f}")


def print_bench_table(reports: list[RunReport]) -> None:
    from tabulate import tabulate

    header = ["model", "size", "params", "backend", "ngl", "threads", "fa", "test", "t/s", "W",
              "tok/J", "tok/J >idle", "J/tok", "method"]  # fmt: skip
    rows, notes = [], {}
    for report in reports:
        model, settings = report.meta.model, report.meta.settings
        for s in report.summaries:
            single_phase = s.kind == s.phase  # pp512/pp, tg128/tg: the test says it all
            p, why = s.pooled, s.pooled.unknown.get
            rows.append(
                [
                    f"{model.architecture} {model.quantization}",
                    format_size(model.size_bytes or 0),
                    format_params(model.n_params or 0),
                    _backend(report),
                    str(settings.n_gpu_layers),
                    str(settings.n_threads),
                    "on" if settings.flash_attn else "off",
                    s.test if single_phase else f"{s.test}/{s.phase}",
                    _cell(s.tokens_per_s_mean, 2, notes, why("tokens_per_s"), s.tokens_per_s_sd),
                    _cell(p.average_w, 1, notes, why("average_w")),
                    _cell(p.tokens_per_j, 3, notes, why("tokens_per_j"), s.tokens_per_j_sd),
                    _cell(p.tokens_per_j_above_idle, 3, notes, why("tokens_per_j_above_idle")),
                    _cell(p.j_per_token, 4, notes, why("j_per_token")),
                    s.method_text,
                ]
            )
    if rows:
        click.echo(
            tabulate(
                rows, header, tablefmt="github", disable_numparse=True, colalign=["left"] * 8 + ["right"] * 5 + ["left"]
            )
        )
    else:
        click.echo("no repetition finished: nothing to report")
    for reason, number in notes.items():
        click.echo(f"[{number}] {reason}")
    for report in reports:
        _print_notes(report)


def _print_notes(report: RunReport) -> None:
    if report.idle is not None:
        idle = report.idle
        settle = f" after {idle.settle_s:g} s settling" if idle.settle_s else ""
        click.echo(
            f"\nidle baseline: {idle.power_w:.1f} W over {idle.seconds:.1f} s{settle} "
            f"({idle.method}{'' if idle.confident else ', low confidence'})"
        )
    elif report.idle_reason:
        click.echo(f"\nidle baseline: none ({report.idle_reason})")
    for c in report.cooldowns:
        state = {True: "back near idle", False: "NOT back near idle", None: "unknown against idle"}[c.near_idle]
        click.echo(f"cool-down before {c.test}: {c.seconds:g} s, then {fmt(c.power_w, 1)} W ({state})")
    low = {s.pooled.low_confidence for s in report.summaries if not s.pooled.confident} - {None}
    for reason in sorted(low):
        click.echo(f"low confidence: {reason}")
    if report.status in ("cancelled", "interrupted"):
        click.echo(f"run {report.status}: the table holds the repetitions that finished")
    if any(s.method == "estimated" for s in report.meta.power_sources):
        click.echo(
            "note: 'estimated' figures come from CPU busy time x TDP, not a sensor: "
            "treat them as rough (errors of -60% to +190% are reported for this method)."
        )
