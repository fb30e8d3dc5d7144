"""What this machine offers: models, workloads, power sources, and live watts."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import click

from ..engine.gguf_info import format_params, format_size
from ..engine.workloads import load_workloads
from ..paths import bundled_model_path
from ..power import (
    DEFAULT_RATE_HZ,
    DEFAULT_TDP_W,
    PowerEnvironment,
    Sampler,
    availability,
    open_sources,
)
from .common import output_options, print_rows


@click.command()
@click.argument("folders", nargs=-1, type=click.Path(path_type=Path, file_okay=False))
@output_options
def models(folders, as_json, as_csv, table_format):
    """List the bundled model and the GGUF files in model folders, and why any is unusable.

    Folders searched: those given, those in TPW_MODEL_DIRS (separated by
    the OS path separator), and ~/models if it exists.
    """
    from ..engine.finder import find_models

    bundled = bundled_model_path()
    rows = [
        {"path": str(path), "bundled": path == bundled, **(asdict(facts.ref()) if facts else {}), "problem": problem}
        for path, facts, problem in find_models(list(folders))
    ]
    shown = [
        {
            "name": Path(r["path"]).name + (" (bundled default)" if r["bundled"] else ""),
            "model": "unusable" if r["problem"] else f"{r['architecture']} {r['quantization']}",
            "params": "" if r["problem"] else format_params(r["n_params"]),
            "size": "" if r["problem"] else format_size(r["size_bytes"]),
            "context": r.get("n_ctx_train"),
            "path or problem": r["problem"] or r["path"],
        }
        for r in rows
    ]
    print_rows(
        shown,
        [(k, k) for k in ("name", "model", "params", "size", "context", "path or problem")],
        as_json=as_json,
        as_csv=as_csv,
        table_format=table_format,
        empty="no GGUF models found",
        raw=rows,
    )


@click.command()
def workloads():
    """List the named workloads that `tpw bench --workload` and the app can run."""
    for w in load_workloads().values():
        budget = sum(c.max_tokens for c in w.calls)
        click.echo(f"{w.name:14} {w.title}: {w.description} ({len(w.calls)} call(s), up to {budget} tokens)")


@click.command()
@click.option("--tdp-w", type=click.FloatRange(min=1), default=DEFAULT_TDP_W, show_default=True)
@output_options
def power(tdp_w, as_json, as_csv, table_format):
    """Which power sources this machine has, and why the others are unavailable."""
    report = availability(PowerEnvironment(tdp_w=tdp_w))
    shown = [{"kind": r.kind, "available": "yes" if r.available else "no", "detail": r.detail} for r in report]
    print_rows(
        shown,
        [("kind", "source"), ("available", "available"), ("detail", "what it measures, or why not")],
        as_json=as_json,
        as_csv=as_csv,
        table_format=table_format,
        empty="",
        raw=report,
    )
    if not (as_json or as_csv):
        click.echo(
            "\nauto picks the first available of nvml, rapl, estimate. Choose with --power, e.g. --power nvml:0,rapl"
        )


@click.command()
@click.option("--power", "power_spec", default="auto", show_default=True)
@click.option("--tdp-w", type=click.FloatRange(min=1), default=DEFAULT_TDP_W, show_default=True)
@click.option(
    "--interval", type=click.FloatRange(min=0.05), default=0.5, show_default=True, help="Seconds between lines."
)
@click.option("--rate-hz", type=click.FloatRange(min=1, max=1000), default=DEFAULT_RATE_HZ, show_default=True)
@click.option(
    "--count", type=click.IntRange(min=1), default=None, help="Stop after this many lines (default: until Ctrl-C)."
)
def watch(power_spec, tdp_w, interval, rate_hz, count):
    """Print live watts per source (each interval's energy over its length) until Ctrl-C."""
    sources = open_sources(power_spec, PowerEnvironment(tdp_w=tdp_w))
    sampler = Sampler(sources, rate_hz=rate_hz)
    click.echo("  ".join(f"{s.name} [{s.method}]: {s.measures}" for s in sources), err=True)
    lines = 0
    try:
        with sampler:
            sampler.wait_until(time.monotonic_ns())  # a first sample, so every interval has a left edge
            t_prev = time.monotonic_ns()
            while count is None or lines < count:
                time.sleep(interval)
                t_now = time.monotonic_ns()
                sampler.wait_until(t_now)
                cells = []
                for source, window in zip(sources, sampler.per_source_energy([(t_prev, t_now)])):
                    watts = f"{window.average_w:8.1f} W" if window.known else "     n/a  "
                    cells.append(f"{source.name} {watts} ({source.method})")
                click.echo(time.strftime("%H:%M:%S  ") + "   ".join(cells))
                t_prev = t_now
                lines += 1
    except KeyboardInterrupt:
        pass
    finally:
        for source in sources:
            source.close()
