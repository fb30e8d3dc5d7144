"""The figures a dashboard shows, as one typed snapshot: computed here, never in the UI.

Two sources: the live series while a run streams (rolling speed, this run's
headline figure so far over its exact spans), and a finished run's pooled
summaries (the same headline). Each figure says what it covers ("tg128:
generation so far", "chat: whole calls, all repetitions") and by which
method, and why it is missing when it is. Every energy figure is one of
``metrics``' pooled figures: J/token, Wh and cost are never recomputed here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..metrics import PhaseFigures
from ..record.results import TestSummary, headline
from ..record.vocab import PHASE_NAMES, Phase
from ..run.server import clients
from .live import LiveFigures


@dataclass(frozen=True)
class Figure:
    value: float | None
    basis: str  # how it was obtained and over what: "counter · whole run"
    why: str | None = None  # why ``value`` is None


@dataclass(frozen=True)
class DashboardFigures:
    speed_tok_s: Figure
    power_w: Figure
    tokens_per_j: Figure
    j_per_token: Figure
    wh_per_1k_tokens: Figure
    cost_per_1m_tokens: Figure
    first_token_s: Figure
    currency: str


ENERGY_TILES = ("average_w", "tokens_per_j", "j_per_token", "wh_per_1k_tokens", "cost_per_1m_tokens")


def _energy(figures: PhaseFigures | None, basis: str, why: str = "") -> dict[str, Figure]:
    """The energy tiles from one set of pooled figures (``metrics`` computed them all: J/token, Wh, cost);
    a missing figure says why (``why`` when there are no figures at all)."""
    tiles = {}
    for name in ENERGY_TILES:
        value = None if figures is None else getattr(figures, name)
        reason = why if figures is None else figures.unknown.get(name, "not measured")
        tiles[name] = Figure(value, basis, None if value is not None else reason)
    return tiles


def _scope(test: str, phase: Phase, concurrency: int | None) -> str:
    return f"{test}: {clients(concurrency) if concurrency is not None else PHASE_NAMES[phase]}"


def live_dashboard(live: LiveFigures, *, method: str, currency: str) -> DashboardFigures:
    """While a run streams: rolling speed and power; energy is this run's headline so far, over its exact
    spans (the figure the run will save, growing), named with its test and phase on every tile."""
    run = live.run
    if run is None:
        energy = _energy(None, f"{method} · this run", "waiting for the first measured span")
    else:
        confidence = "" if run.figures.confident else " (low confidence)"
        scope = "last level" if run.kind == "server" else f"{PHASE_NAMES[run.phase]} so far"
        energy = _energy(run.figures, f"{run.figures.method}{confidence} · {run.test}: {scope}")
    power = Figure(
        live.power_w, f"{method} · rolling 2 s", None if live.power_w is not None else "no power reading yet"
    )
    return DashboardFigures(
        speed_tok_s=_live_speed(live),
        power_w=power,
        tokens_per_j=energy["tokens_per_j"],
        j_per_token=energy["j_per_token"],
        wh_per_1k_tokens=energy["wh_per_1k_tokens"],
        cost_per_1m_tokens=energy["cost_per_1m_tokens"],
        first_token_s=Figure(live.ttft_s, "timed · last call", None if live.ttft_s is not None else "no call yet"),
        currency=currency,
    )


def _live_speed(live: LiveFigures) -> Figure:
    """Tokens in the last 2 s; while a prompt is evaluated (its tokens are timed when it ends), the last
    prompt's rate, so the tile never reads 0 through prompt processing."""
    if not live.prompt_running:
        return Figure(live.tok_s, "timed · all tokens, rolling 2 s")
    if live.last_prompt_tok_s is None:
        return Figure(None, "timed · prompt processing", "a prompt's rate is known when it has been evaluated")
    return Figure(live.last_prompt_tok_s, "timed · prompt processing: the last prompt")


def finished_dashboard(summaries: Sequence[TestSummary], *, currency: str) -> DashboardFigures | None:
    """After a run: the session's headline figure (``record.results.headline``, the same as History's and
    the lists'), named with its test and phase on every tile; speed is generation's when the test has it.
    None when nothing finished."""
    main = headline(summaries)
    if main is None:
        return None
    speed = next((s for s in summaries if s.test == main.test and s.phase == "tg"), main)
    scope = _scope(main.test, main.phase, main.concurrency)
    basis = f"{main.method_text} · {scope}, {'whole window' if main.level else 'all repetitions'}"
    energy = _energy(main.pooled, basis)
    ttft = main.latency.time_to_first_token_s if main.latency else None
    return DashboardFigures(
        speed_tok_s=Figure(speed.tokens_per_s_mean, f"timed · {speed.test}: {PHASE_NAMES[speed.phase]}, mean"),
        power_w=energy["average_w"],
        tokens_per_j=energy["tokens_per_j"],
        j_per_token=energy["j_per_token"],
        wh_per_1k_tokens=energy["wh_per_1k_tokens"],
        cost_per_1m_tokens=energy["cost_per_1m_tokens"],
        first_token_s=Figure(ttft, "timed · mean of calls", None if ttft is not None else "no generated token"),
        currency=currency,
    )
