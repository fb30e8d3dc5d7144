"""``tpw exporter`` and ``tpw fleet``: tpw's figures into Prometheus, and a fleet's back out of it."""

from __future__ import annotations

import time
from dataclasses import asdict

import click

from ..errors import TpwError
from ..power import DEFAULT_RATE_HZ, DEFAULT_TDP_W, PowerEnvironment, Sampler, open_sources
from ..prometheus.exporter import DEFAULT_BIND, DEFAULT_PORT, MetricsExporter
from .common import err, output_options, print_rows, stop_on_signals

metrics_port_option = click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve Prometheus metrics on this port while measuring (0: a free one, printed).",
)
bind_option = click.option(
    "--bind",
    default=DEFAULT_BIND,
    show_default=True,
    help="The address to listen on. Only loopback by default: 0.0.0.0 exposes the metrics to your network.",
)


def start_exporter(sampler, port: int, bind: str, price_per_kwh=None, currency: str = "") -> MetricsExporter:
    """An exporter serving the sampler's metrics, or a TpwError saying why it can't listen."""
    exporter = MetricsExporter(sampler, price_per_kwh=price_per_kwh, currency=currency)
    try:
        actual = exporter.serve(port, bind)
    except OSError as exc:
        raise TpwError(f"can't serve metrics on {bind}:{port}: {exc.strerror or exc}") from None
    err(f"serving Prometheus metrics on http://{bind}:{actual}/metrics")
    return exporter


@click.command()
@click.option(
    "--power",
    "power_spec",
    default="auto",
    show_default=True,
    help="Power sources, as for tpw bench: auto, nvml[:0+1], rapl, estimate[:TDP], replay:FILE; comma-separated.",
)
@click.option("--tdp-w", type=click.FloatRange(min=1), default=DEFAULT_TDP_W, show_default=True)
@click.option("--rate-hz", type=click.FloatRange(min=1, max=1000), default=DEFAULT_RATE_HZ, show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True)
@bind_option
@click.option(
    "--price",
    "price_per_kwh",
    type=click.FloatRange(min=0),
    default=None,
    help="Electricity price per kWh, exported for the cost-per-1M-tokens rule.",
)
@click.option("--currency", default="", help="The price's currency, as a label.")
@click.option("--seconds", type=click.FloatRange(min=0), default=None, help="Stop after this long (default: Ctrl-C).")
def exporter(power_spec, tdp_w, rate_hz, port, bind, price_per_kwh, currency, seconds):
    """Serve energy counters and power gauges per source, for Prometheus to scrape.

    tokens come from `tpw bench --metrics-port` (or the window's exporter)
    on the same machine; this command alone exports watts and joules.
    """
    sources = open_sources(power_spec, PowerEnvironment(tdp_w=tdp_w))
    try:
        with stop_on_signals() as signals, Sampler(sources, rate_hz=rate_hz) as sampler:
            served = start_exporter(sampler, port, bind, price_per_kwh, currency)
            for source in sources:
                err(f"  {source.name} [{source.method}]: {source.measures}")
            deadline = None if seconds is None else time.monotonic() + seconds
            while not signals.stop.is_set() and (deadline is None or time.monotonic() < deadline):
                signals.stop.wait(0.2)
            signals.done()
            served.close()
    finally:
        for source in sources:
            source.close()


def _shown(n) -> dict:
    def fig(value, digits):
        return "n/a" if value is None else f"{value:.{digits}f}"

    why = n.unknown.get("tokens_per_j") if n.tokens_per_j is None else None
    return {
        "node": n.node,
        "engine": ", ".join(n.engines) or "-",
        "tok/s": fig(n.tokens_per_s, 1),
        "W": fig(n.watts, 1),
        "tok/J": fig(n.tokens_per_j, 3),
        "method": n.method_text,
        "resolution": f"{n.resolution_s:g} s" if n.resolution_s else "?",
        "note": why or "",
    }


@click.command()
@click.argument("url")
@click.option(
    "--window",
    "window_s",
    type=click.FloatRange(min=1),
    default=60.0,
    show_default=True,
    help="Seconds of history each figure covers.",
)
@click.option(
    "--watch",
    "every_s",
    type=click.FloatRange(min=1),
    default=None,
    help="Print the table again every this many seconds, until Ctrl-C.",
)
@click.option(
    "--top",
    "top_n",
    type=click.IntRange(1),
    default=20,
    show_default=True,
    help="Show the busiest this many nodes (and the fleet); the rest are counted.",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="Seconds to wait for each answer from Prometheus.",
)
@output_options
def fleet(url, window_s, every_s, top_n, timeout_s, as_json, as_csv, table_format):
    """Tokens per joule per node and for the fleet, from a Prometheus server (dcgm-exporter, llama-server, vLLM).

    URL is the Prometheus server, e.g. http://127.0.0.1:9090.
    """
    from ..peers.prometheus_server import PrometheusApi
    from ..prometheus.fleet import fleet_figures

    api = PrometheusApi(url, timeout_s=timeout_s)
    columns = [(k, k) for k in ("node", "engine", "tok/s", "W", "tok/J", "method", "resolution", "note")]
    with stop_on_signals() as signals:
        while True:
            figures = fleet_figures(api, window_s)
            top, hidden = figures.top(top_n)
            rows = [_shown(n) for n in [*top, figures.fleet]]
            raw = {
                "window_s": figures.window_s,
                "nodes": [asdict(n) for n in figures.nodes],
                "fleet": asdict(figures.fleet),
            }
            print_rows(
                rows, columns, as_json=as_json, as_csv=as_csv, table_format=table_format, empty="no nodes", raw=raw
            )
            if hidden and not (as_json or as_csv):
                click.echo(
                    f"… and {hidden} more node{'s' if hidden != 1 else ''} (--top to show more; "
                    "the fleet row counts them all)"
                )
            if every_s is None or signals.stop.wait(every_s):
                break
            click.echo("")
