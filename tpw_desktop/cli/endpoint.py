"""``tpw bench --endpoint URL``: a server tpw didn't start, at 1..N clients, against this machine's power."""

from __future__ import annotations

import sys

import click

from .. import __version__, serialize
from ..engine.workloads import get_workload
from ..errors import TpwError
from ..power import PowerEnvironment, Sampler, open_sources
from .common import EXIT_CANCELLED, EXIT_PARTIAL, Progress, err

_OPTIONS = [
    click.option(
        "--endpoint",
        help="An OpenAI-compatible server to measure instead of a local model "
        "(llama-server, vLLM, Ollama, LM Studio), e.g. http://127.0.0.1:8080.",
    ),
    click.option("--api-model", help="The model name the server expects (default: the first it lists)."),
    click.option(
        "--concurrency",
        type=click.IntRange(1, 256),
        default=1,
        show_default=True,
        help="Measure 1, 2, 4 … up to this many clients at once: tokens/J against concurrency.",
    ),
    click.option(
        "--timeout",
        "timeout_s",
        type=click.FloatRange(min=0.1),
        default=60.0,
        show_default=True,
        help="Seconds without an answer before a request fails.",
    ),
]


def endpoint_options(fn):
    """--endpoint, --api-model, --concurrency and --timeout."""
    for option in reversed(_OPTIONS):
        fn = option(fn)
    return fn


def bench_endpoint(
    url: str,
    api_model: str | None,
    most: int,
    timeout_s: float,
    spec,
    repetitions: int,
    writer,
    db_path,
    as_json: bool,
    workloads: tuple[str, ...],
    stop,
) -> None:
    from ..peers.openai_server import Endpoint
    from ..run.server import EndpointBench, concurrency_levels, cut_short_note

    if len(workloads) > 1:
        raise TpwError("--endpoint measures one workload at a time: give one --workload")
    workload = get_workload(workloads[0] if workloads else "chat")
    endpoint = Endpoint(url, timeout_s)
    try:
        model = api_model or next(iter(endpoint.models()), None)
        if model is None:
            raise TpwError(f"{url}: lists no model; name one with --api-model")
        sources = open_sources(spec.power_spec, PowerEnvironment(tdp_w=spec.tdp_w))
        progress = Progress(f"{model} at {url}", enabled=not spec.quiet)
        try:
            with Sampler(sources, rate_hz=spec.rate_hz) as sampler:
                report = EndpointBench(
                    endpoint,
                    model,
                    workload,
                    concurrency_levels(most),
                    sampler,
                    spec.options,
                    repetitions=repetitions,
                    recorder=writer,
                    listener=progress,
                    stop=stop,
                ).run()
        finally:
            progress.done()
            for source in sources:
                source.close()
    finally:
        if writer:
            writer.close()
    _print(report, as_json)
    note = cut_short_note([lv.as_dict() for lv in report.levels])
    if note:
        err(f"warning: {note}")
    if report.session_id is not None:
        err(f"saved session {report.session_id} ({report.status}) in {db_path}")
    if report.status == "failed":
        err(report.error)
        sys.exit(EXIT_PARTIAL if report.levels else 2)
    if report.status in ("cancelled", "interrupted"):
        sys.exit(EXIT_CANCELLED)


def _print(report, as_json: bool) -> None:
    from ..run.server import levels_table

    if as_json:
        click.echo(
            serialize.dumps(
                {
                    "tpw_version": __version__,
                    "endpoint": report.url,
                    "model": report.model,
                    "status": report.status,
                    "error": report.error,
                    "session_id": report.session_id,
                    "levels": [lv.as_dict() for lv in report.levels],
                },
                indent=2,
            )
        )
        return
    if report.levels:
        click.echo(levels_table([lv.as_dict() for lv in report.levels]))
    else:
        click.echo("no concurrency level finished: nothing to report")
    if report.idle is not None:
        click.echo(f"\nidle baseline: {report.idle.power_w:.1f} W ({report.idle.method})")
