"""The stored sessions as the history view shows them: one row each, and a run's charts again.

A stored run is drawn by the live view's own series (``LiveSeries``), fed
the stored samples (downsampled per bucket, as the store does) and events
rebuilt from the stored calls, tokens and result windows, so a session
looks the same opened later as it did live.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..record.results import headline
from ..run.events import CallStarted, PhaseEnded
from ..view.live import LiveSeries

CHART_POINTS = 20_000  # per source: enough for 8 hours' detail at a window's width, loaded in well under a second


@dataclass(frozen=True)
class HistoryRow:
    """A session's line in the history table; None where a figure is unknown."""

    session_id: int
    started_at: str
    model: str
    quantization: str
    device: str  # CPU | GPU
    workload: str
    tokens_per_s: float | None
    tokens_per_j: float | None
    j_per_token: float | None
    method: str
    status: str
    sweep: str  # "sweep 3 · Q8_0 · round 2", or ""


def history_rows(store, limit: int | None = None) -> list[HistoryRow]:
    return [history_row(s) for s in store.list_sessions(limit=limit)]


def history_row(session: dict) -> HistoryRow:
    main = headline(session.get("summary") or [], lambda r: r["phase"]) or {}
    settings = session.get("settings") or {}
    on_gpu = bool(session.get("gpu_offload")) and settings.get("n_gpu_layers", 0) != 0
    sweep = ""
    if session.get("sweep_id") is not None:
        sweep = (
            f"sweep {session['sweep_id']} · {session.get('sweep_variant')} · round {session.get('sweep_round', 0) + 1}"
        )
    return HistoryRow(
        session["id"],
        (session.get("started_at") or "")[:19].replace("T", " "),
        session.get("model") or "?",
        session.get("quantization") or "?",
        "GPU" if on_gpu else "CPU",
        ", ".join(session.get("tests") or []),
        main.get("tokens_per_s_mean"),
        main.get("tokens_per_j"),
        main.get("j_per_token"),
        session.get("method") or "?",
        session.get("status") or "?",
        sweep,
    )


def stored_series(store, session_id: int, max_points: int = CHART_POINTS) -> LiveSeries:
    """The session's power, tokens and phases as a ``LiveSeries`` (what the chart widgets draw)."""
    session = store.session(session_id)
    t0_ns = int(session["t0_ns"])
    methods = {s["name"]: s["method"] for s in session["sources"]}
    samples = store.samples(session_id, max_points=max_points)
    names = [n for n in samples if n in methods] or list(methods)
    series = LiveSeries([(n, methods.get(n, "estimated")) for n in names], t0_ns)
    series.idle_w = session.get("idle_power_w")  # the idle line and the "above idle" curve, as live
    for index, name in enumerate(names):
        if name in samples:
            data = samples[name]
            series.add_samples(index, (t0_ns + data["t_s"] * 1e9).astype(np.int64), data["power_w"])
    tokens = store.token_times_ns(session_id)
    events = sorted(_events(store, session_id), key=_when)
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


def _kind(test: str) -> str:
    return test[:2] if test[:2] in ("pp", "tg") and test[2:].isdigit() else "workload"


def _events(store, session_id: int) -> list:
    """Calls as they started and phases as they ended; a pp test stores no call, so its phase starts one."""
    out: list = []
    started = set()
    for c in store.calls(session_id):
        if c.get("t_start_ns") is not None:
            out.append(
                CallStarted(
                    c["test"],
                    _kind(c["test"]),
                    c["repetition"],
                    c["call"],
                    c.get("prompt_tokens") or 0,
                    int(c["t_start_ns"]),
                )
            )
            started.add((c["test"], c["repetition"]))
    for r in store.results(session_id):
        if r["phase"] in ("pp", "tg") and r.get("t_start_ns") is not None and r.get("t_end_ns") is not None:
            if (r["test"], r["repetition"]) not in started:
                out.append(CallStarted(r["test"], r["phase"], r["repetition"], 0, 0, int(r["t_start_ns"])))
            out.append(
                PhaseEnded(
                    r["test"],
                    r["repetition"],
                    0,
                    r["phase"],
                    int(r["t_start_ns"]),
                    int(r["t_end_ns"]),
                    r.get("tokens") or 0,
                )
            )
    return out


def _when(event) -> int:
    return event.t_ns if isinstance(event, CallStarted) else event.t_end_ns


def _figure(value, digits: int) -> str:
    return "unknown" if value is None else f"{value:.{digits}f}"


def session_details(session: dict) -> tuple[list[tuple], list[tuple[str, str]]]:
    """The summary as table rows (a header first), and what the session ran on as (label, value) pairs."""
    summary = [("test", "phase", "reps", "tok/s", "tok/J", "J/token", "W", "method")]
    for r in session.get("summary") or []:
        speed = _figure(r.get("tokens_per_s_mean"), 1)
        if r.get("tokens_per_s_sd"):
            speed += f" ± {r['tokens_per_s_sd']:.1f}"
        unknown = r.get("unknown") or {}
        tok_j = (
            _figure(r.get("tokens_per_j"), 2)
            if r.get("tokens_per_j") is not None
            else (f"unknown: {unknown.get('tokens_per_j', 'no energy')}")
        )
        summary.append(
            (
                r["test"],
                r["phase"],
                r.get("repetitions", 1),
                speed,
                tok_j,
                _figure(r.get("j_per_token"), 4),
                _figure(r.get("average_w"), 1),
                r.get("method") + ("" if r.get("confident") else " (low confidence)"),
            )
        )
    settings = session.get("settings") or {}
    sources = "; ".join(f"{s['name']} ({s['method']}: {s.get('measures') or '?'})" for s in session.get("sources", []))
    gpus = (
        "; ".join(f"{g.get('name', '?')} (driver {g.get('driver', '?')})" for g in session.get("gpus") or []) or "none"
    )
    limits = [
        str(s["info"].get("power_limit_w")) + " W"
        for s in session.get("sources", [])
        if isinstance(s.get("info"), dict) and s["info"].get("power_limit_w") not in (None, "N/A")
    ]
    idle = session.get("idle_power_w")
    facts = [
        ("status", session.get("status") or "?"),
        ("started (UTC)", (session.get("started_at") or "?")[:19].replace("T", " ")),
        (
            "model",
            f"{session.get('model') or '?'} · {session.get('quantization') or '?'} · "
            f"{session.get('n_params') or '?'} params · sha256 {(session.get('model_sha256') or '?')[:12]}",
        ),
        (
            "machine",
            f"{session.get('hostname') or '?'} · {session.get('cpu') or '?'} · {session.get('ram_gib') or '?'} GiB"
            f" · {session.get('os') or '?'}",
        ),
        ("GPUs", gpus),
        (
            "llama.cpp",
            f"{session.get('llama_cpp_version') or '?'} · GPU offload "
            f"{'supported' if session.get('gpu_offload') else 'not built in'}",
        ),
        (
            "settings",
            ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in settings.items()) or "?",
        ),
        ("power", f"{session.get('method') or '?'}: {sources or 'no source'}"),
        (
            "power limit",
            f"{session['power_limit_w']:g} W (set by the sweep)"
            if session.get("power_limit_w")
            else (", ".join(limits) or "not reported"),
        ),
        ("idle", "unknown" if idle is None else f"{idle:.1f} W ({session.get('idle_method') or '?'})"),
    ]
    if session.get("sweep_id") is not None:
        facts.append(
            (
                "sweep",
                f"{session['sweep_id']} · {session.get('sweep_variant')} · "
                f"round {(session.get('sweep_round') or 0) + 1}",
            )
        )
    if session.get("error"):
        facts.append(("error", session["error"]))
    return summary, facts
