"""The stored sessions as the history view shows them: one row each, and a run's charts again.

A stored run is drawn by the live view's own series (``LiveSeries``), fed
the stored samples (downsampled per bucket, as the store does) and events
rebuilt from the stored calls, tokens and result windows, so a session
looks the same opened later as it did live.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from ..record.fields import label
from ..record.results import TestSummary
from ..record.stored import StoredSession
from ..record.vocab import PHASE_NAMES
from ..run.events import CallStarted, PhaseEnded
from ..run.server import clients
from ..store import Store
from ..view.live import LiveSeries
from .tables import summary_table

CHART_POINTS = 20_000  # per source: enough for 8 hours' detail at a window's width, loaded in well under a second


@dataclass(frozen=True)
class HistoryRow:
    """A session's line in the history table: its headline figure (the same as everywhere), None where unknown."""

    session_id: int = field(metadata=label("id"))
    started_at: str = field(metadata=label("date (UTC)"))
    model: str = field(metadata=label("model"))
    quantization: str = field(metadata=label("quant"))
    device: str = field(metadata=label("device"))  # CPU | GPU | server
    workload: str = field(metadata=label("workload"))
    figure: str = field(metadata=label("figure"))  # which test and phase the figures are: "tg128 · generation"
    tokens_per_s: float | None = field(metadata=label("tok/s", 1))
    tokens_per_j: float | None = field(metadata=label("tok/J", 2))
    j_per_token: float | None = field(metadata=label("J/token", 4))
    method: str = field(metadata=label("method"))
    status: str = field(metadata=label("status"))
    sweep: str = field(metadata=label("sweep"))  # "sweep 3 · Q8_0 · round 2", or ""


def history_rows(store: Store, limit: int | None = None) -> list[HistoryRow]:
    return [history_row(s) for s in store.list_sessions(limit=limit)]


def history_row(session: StoredSession) -> HistoryRow:
    meta = session.meta
    main = session.headline
    sweep = ""
    if meta.sweep is not None:
        sweep = f"sweep {meta.sweep.id} · {meta.sweep.variant} · round {meta.sweep.round + 1}"
    return HistoryRow(
        session.id,
        session.started_at[:19].replace("T", " "),
        meta.model.file_name,
        meta.model.quantization,
        "server" if meta.server else "GPU" if meta.on_gpu else "CPU",
        ", ".join(t.name for t in meta.tests),
        headline_label(main) if main else "",
        main.tokens_per_s_mean if main else None,
        main.pooled.tokens_per_j if main else None,
        main.pooled.j_per_token if main else None,
        meta.method,
        session.status,
        sweep,
    )


def stored_series(store: Store, session_id: int, max_points: int = CHART_POINTS) -> LiveSeries:
    """The session's power, tokens and phases as a ``LiveSeries`` (what the chart widgets draw)."""
    session = store.session(session_id)
    t0_ns = session.t0_ns
    methods = {s.name: s.method for s in session.meta.power_sources}
    samples = store.samples(session_id, max_points=max_points)
    names = [n for n in samples if n in methods] or list(methods)
    series = LiveSeries([(n, methods.get(n, "estimated")) for n in names], t0_ns)
    series.idle = session.outcome.idle  # the idle line and the "above idle" curve, as live
    for index, name in enumerate(names):
        if name in samples:
            data = samples[name]
            series.add_samples(index, (t0_ns + data["t_s"] * 1e9).astype(np.int64), data["power_w"])
    tokens = store.token_times_ns(session_id)
    events = sorted(_events(store, session), key=_when)
    if events or len(tokens):
        series.run_started(min([_when(e) for e in events] + ([int(tokens[0])] if len(tokens) else [])))
    done = 0
    for event in events:  # tokens before each event go in first, as they arrived live
        upto = int(np.searchsorted(tokens, _when(event), side="left"))
        series.add_tokens(tokens[done:upto].tolist())
        done = max(done, upto)
        series.feed([event])
    series.add_tokens(tokens[done:].tolist())
    series.run_ended(series.latest_ns)
    return series


def _events(store: Store, session: StoredSession) -> list:
    """Calls as they started and phases as they ended; a pp test stores no call, so its phase starts one."""
    session_id = session.id
    kinds = {t.name: t.kind for t in session.meta.tests}
    out: list = []
    started = set()
    for c in store.calls(session_id):
        out.append(
            CallStarted(c.test, kinds.get(c.test, "workload"), c.repetition, c.call, c.prompt_tokens or 0, c.t_start_ns)
        )
        started.add((c.test, c.repetition))
    for r in store.results(session_id):
        if r.phase in ("pp", "tg"):
            if (r.test, r.repetition) not in started:
                out.append(CallStarted(r.test, r.kind, r.repetition, 0, 0, r.t_start_ns))
            out.append(PhaseEnded(r.test, r.repetition, 0, r.phase, r.t_start_ns, r.t_end_ns, r.figures.tokens, r.kind))
    return out


def _when(event) -> int:
    return event.t_ns if isinstance(event, CallStarted) else event.t_end_ns


def headline_label(summary: TestSummary) -> str:
    """Which figure a session's headline is: its test and phase (or server level) in words."""
    if summary.level is not None:
        return f"{summary.test} · {clients(summary.level.concurrency)}"
    return f"{summary.test} · {PHASE_NAMES[summary.phase]}"


def session_details(session: StoredSession) -> tuple[list[tuple[str, ...]], list[tuple[str, str]]]:
    """The summary as table rows (a header first), and what the session ran on as (label, value) pairs."""
    meta = session.meta
    summary = summary_table(session.outcome.summaries)
    settings = ", ".join(settings_lines(session))
    if meta.load_ms is not None:
        settings += f", loaded in {meta.load_ms:.0f} ms"
    sources = "; ".join(f"{s.name} ({s.method}: {s.measures})" for s in meta.power_sources)
    gpus = "; ".join(f"{g.gpu_name} (driver {g.driver or '?'})" for g in meta.gpus) or "none"
    limits = [f"{g.power_limit_w:g} W" for g in meta.gpus if g.power_limit_w is not None]
    idle = session.outcome.idle
    m = meta.machine
    facts = [
        ("status", session.status),
        ("started (UTC)", session.started_at[:19].replace("T", " ")),
        (
            "model",
            f"{meta.model.file_name} · {meta.model.quantization} · {meta.model.n_params or '?'} params · "
            f"sha256 {(session.model_sha256 or '?')[:12]}",
        ),
        ("machine", f"{m.hostname} · {m.cpu} · {m.ram_gib or '?'} GiB · {m.os}"),
        ("GPUs", gpus),
        (
            "llama.cpp",
            f"{meta.build.llama_cpp_python_version} · GPU offload "
            f"{'supported' if meta.build.gpu_offload_supported else 'not built in'}",
        ),
        ("settings", settings),
        ("power", f"{meta.method}: {sources or 'no source'}"),
        (
            "power limit",
            f"{meta.sweep.power_limit_w:g} W (set by the sweep)"
            if meta.sweep and meta.sweep.power_limit_w
            else (", ".join(limits) or "not reported"),
        ),
        (
            "idle",
            f"{idle.power_w:.1f} W ({idle.method})"
            if idle
            else f"unknown ({session.outcome.idle_reason or 'not measured'})",
        ),
    ]
    if meta.server is not None:
        facts.append(("server", f"{meta.server.url} · model {meta.server.api_model}"))
    if meta.sweep is not None:
        facts.append(("sweep", f"{meta.sweep.id} · {meta.sweep.variant} · round {meta.sweep.round + 1}"))
    if session.error:
        facts.append(("error", session.error))
    return summary, facts


def settings_lines(session: StoredSession) -> list[str]:
    """The engine settings as a reader wants them: ``name=value`` each, numbers as they were typed."""
    meta = session.meta
    if meta.server is not None:
        return [f"server {meta.server.url}", f"model {meta.server.api_model}"]
    if meta.settings is None:
        return ["?"]
    return [f"{k}={_shown(v)}" for k, v in dataclasses.asdict(meta.settings).items() if v is not None]


def _shown(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
