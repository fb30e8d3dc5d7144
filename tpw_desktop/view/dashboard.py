"""The figures a dashboard shows, as one typed snapshot: computed here, never in the UI.

Two sources: the live series while a run streams (rolling rates, this run's
cumulative efficiency), and a finished run's pooled summary. Each figure
says what it covers ("generation, mean of repetitions", "whole calls,
rolling 2 s") and by which method, and why it is missing when it is.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..metrics.efficiency import J_PER_KWH, J_PER_WH


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


def _inverse(tokens_per_j: float | None) -> float | None:
    return 1 / tokens_per_j if tokens_per_j else None


def _energy_figures(
    tokens_per_j: float | None, basis: str, why: str | None, price_per_kwh: float | None
) -> tuple[Figure, Figure, Figure, Figure]:
    """tok/J and what follows from it: J/token, Wh per 1k tokens, cost per 1M tokens."""
    j_per_token = _inverse(tokens_per_j)
    if j_per_token is None:
        why = why or "no energy measured yet"
    cost_why = why if j_per_token is None else (None if price_per_kwh is not None else "no electricity price set")
    return (
        Figure(tokens_per_j, basis, why),
        Figure(j_per_token, basis, why),
        Figure(None if j_per_token is None else j_per_token * 1000 / J_PER_WH, basis, why),
        Figure(None if cost_why else j_per_token * 1e6 / J_PER_KWH * price_per_kwh, basis, cost_why),
    )


def live_dashboard(
    tok_s: float | None,
    power_w: float | None,
    run_tokens_per_j: float | None,
    ttft_s: float | None,
    *,
    method: str,
    price_per_kwh: float | None,
    currency: str,
) -> DashboardFigures:
    """While a run streams: rolling speed and power, and this run's measured spans so far."""
    efficiency = _energy_figures(
        run_tokens_per_j,
        f"{method} · this run so far (pp + tg spans)",
        None if run_tokens_per_j else "waiting for the first measured span",
        price_per_kwh,
    )
    return DashboardFigures(
        speed_tok_s=Figure(tok_s, "timed · all tokens, rolling 2 s"),
        power_w=Figure(power_w, f"{method} · rolling 2 s", None if power_w is not None else "no power reading yet"),
        tokens_per_j=efficiency[0],
        j_per_token=efficiency[1],
        wh_per_1k_tokens=efficiency[2],
        cost_per_1m_tokens=efficiency[3],
        first_token_s=Figure(ttft_s, "timed · last call", None if ttft_s is not None else "no call yet"),
        currency=currency,
    )


def report_dashboard(summaries: list, *, currency: str) -> DashboardFigures | None:
    """After a run: speed is generation's (llama-bench's tg), energy the whole calls', pooled.

    ``summaries`` are ``session.TestSummary`` rows; None when no repetition finished.
    """
    if not summaries:
        return None
    by_phase = {s.phase: s for s in summaries}
    energy = by_phase.get("total") or summaries[-1]
    speed = by_phase.get("tg") or energy
    p = energy.pooled
    scope = "whole calls (pp + tg)" if energy.phase == "total" else energy.phase
    basis = f"{p.method}{'' if p.confident else ' (low confidence)'} · {energy.test}: {scope}, all repetitions"
    latency = energy.latency or {}
    ttft = latency.get("time_to_first_token_s")
    return DashboardFigures(
        speed_tok_s=Figure(speed.tokens_per_s[0], f"timed · {speed.test}: {_phase_name(speed.phase)}, mean"),
        power_w=Figure(p.average_w, basis, p.unknown.get("average_w")),
        tokens_per_j=Figure(p.tokens_per_j, basis, p.unknown.get("tokens_per_j")),
        j_per_token=Figure(p.j_per_token, basis, p.unknown.get("j_per_token")),
        wh_per_1k_tokens=Figure(p.wh_per_1k_tokens, basis, p.unknown.get("wh_per_1k_tokens")),
        cost_per_1m_tokens=Figure(p.cost_per_1m_tokens, basis, p.unknown.get("cost_per_1m_tokens")),
        first_token_s=Figure(ttft, "timed · mean of calls", None if ttft is not None else "no generated token"),
        currency=currency,
    )


def endpoint_dashboard(levels: list[dict], *, currency: str) -> DashboardFigures | None:
    """After measuring a server: the level with the most clients that finished (its batch), whole window.

    ``levels`` are ``TestSummary.as_dict()`` rows with their ``concurrency``; None when none finished.
    """
    if not levels:
        return None
    lv = max(levels, key=lambda level: level["concurrency"])
    clients = f"{lv['concurrency']} client{'s' if lv['concurrency'] != 1 else ''}"
    basis = f"{lv['method']}{'' if lv['confident'] else ' (low confidence)'} · {clients}, whole window"
    unknown = lv.get("unknown") or {}
    ttft = (lv.get("latency") or {}).get("time_to_first_token_s")

    def figure(key: str) -> Figure:
        return Figure(lv.get(key), basis, None if lv.get(key) is not None else unknown.get(key, "not measured"))

    return DashboardFigures(
        speed_tok_s=Figure(lv.get("tokens_per_s_mean"), f"timed · {clients}, all streams"),
        power_w=figure("average_w"),
        tokens_per_j=figure("tokens_per_j"),
        j_per_token=figure("j_per_token"),
        wh_per_1k_tokens=figure("wh_per_1k_tokens"),
        cost_per_1m_tokens=figure("cost_per_1m_tokens"),
        first_token_s=Figure(
            ttft, f"timed · mean of calls at {clients}", None if ttft is not None else "no streamed token"
        ),
        currency=currency,
    )


def _phase_name(phase: str) -> str:
    return {"tg": "generation", "pp": "prompt processing", "total": "whole calls"}.get(phase, phase)
