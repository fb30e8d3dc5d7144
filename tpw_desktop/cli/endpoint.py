"""``tpw bench --endpoint URL``: a server tpw didn't start, at 1..N clients, against this machine's power.

The server is an untrusted peer: whatever it answers ends in a table, or one
line and exit status 2 with the session stored as failed; Ctrl-C or SIGTERM
cuts the requests in flight and exits 130. Credentials in the URL and the
API key are used for the requests only: never printed, stored or exported.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import click

from .. import __version__, serialize
from ..engine.workloads import get_workload
from ..errors import TpwError
from ..power import PowerEnvironment, Sampler, open_sources
from .common import EXIT_CANCELLED, EXIT_PARTIAL, EXIT_USAGE, Progress, err

_OPTIONS = [
    click.option(
        "--endpoint",
        help="An OpenAI-compatible server to measure instead of a local model "
        "(llama-server, vLLM, Ollama, LM Studio), e.g. http://127.0.0.1:8080.",
    ),
    click.option("--api-model", help="The model name the server expects (default: the first it lists)."),
    click.option(
        "--api-key",
        envvar="OPENAI_API_KEY",
        help="A key the server needs, sent as a bearer token (env OPENAI_API_KEY); never printed or stored.",
    ),
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
        help="Seconds a whole request may take (connection, answer and stream) before it fails.",
    ),
]


@dataclass(frozen=True)
class EndpointSpec:
    url: str
    api_model: str | None
    api_key: str | None
    concurrency: int
    timeout_s: float

    def __repr__(self) -> str:  # never the key, nor the URL's credentials
        return f"EndpointSpec(api_model={self.api_model!r}, concurrency={self.concurrency})"


def endpoint_options(fn):
    """--endpoint, --api-model, --api-key, --concurrency and --timeout."""
    for option in reversed(_OPTIONS):
        fn = option(fn)
    return fn


def bench_endpoint(
    target: EndpointSpec,
    spec,
    repetitions: int,
    writer,
    db_path,
    as_json: bool,
    workloads: tuple[str, ...],
    stop,
    metrics: tuple[int, str] | None = None,
) -> None:
    from ..analysis.tables import cut_short_note
    from ..peers.openai_server import Endpoint
    from ..run.server import EndpointBench, concurrency_levels
    from .exporter import start_exporter

    if len(workloads) > 1:
        raise TpwError("--endpoint measures one workload at a time: give one --workload")
    workload = get_workload(workloads[0] if workloads else "chat")
    endpoint = Endpoint(target.url, target.timeout_s, api_key=target.api_key, stop=stop)
    exporter = None
    try:
        model = target.api_model or next(iter(endpoint.models()), None)
        if model is None:
            raise TpwError(f"{endpoint.url}: lists no model; name one with --api-model")
        sources = open_sources(spec.power_spec, PowerEnvironment(tdp_w=spec.tdp_w))
        progress = Progress(f"{model} at {endpoint.url}", enabled=not spec.quiet)
        listener = progress
        try:
            with Sampler(sources, rate_hz=spec.rate_hz) as sampler:
                if metrics is not None:
                    exporter = start_exporter(sampler, *metrics, spec.options.price_per_kwh, spec.options.currency)
                    exporter.set_model(model, "?", "endpoint")
                    listener = lambda event: (progress(event), exporter.listener(event))  # noqa: E731
                report = EndpointBench(
                    endpoint,
                    model,
                    workload,
                    concurrency_levels(target.concurrency),
                    sampler,
                    spec.options,
                    repetitions=repetitions,
                    recorder=writer,
                    listener=listener,
                    stop=stop,
                ).run()
        finally:
            progress.done()
            if exporter is not None:
                exporter.close()
            for source in sources:
                source.close()
    finally:
        endpoint.close()
        if writer:
            writer.close()
    _print(report, as_json)
    note = cut_short_note(report.summaries)
    if note:
        err(f"warning: {note}")
    if report.session_id is not None:
        err(f"saved session {report.session_id} ({report.status}) in {db_path}")
    if report.status == "failed":
        err(report.error or "the server run failed")
        sys.exit(EXIT_PARTIAL if report.summaries else EXIT_USAGE)
    if report.status in ("cancelled", "interrupted"):
        sys.exit(EXIT_CANCELLED)


def _print(report, as_json: bool) -> None:
    from ..analysis.tables import levels_table

    if as_json:
        click.echo(serialize.dumps({"tpw_version": __version__, **report.as_json()}, indent=2))
        return
    if report.summaries:
        click.echo(levels_table(report.summaries))
    else:
        click.echo("no concurrency level finished: nothing to report")
    if report.idle is not None:
        click.echo(f"\nidle baseline: {report.idle.power_w:.1f} W ({report.idle.method})")
