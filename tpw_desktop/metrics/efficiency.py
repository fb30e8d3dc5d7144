"""Headline figures from tokens and a window's energy: pure arithmetic, one place.

tokens/J is the same number as (tokens/s) / W. Wh per 1k tokens and cost per
1M tokens are the same quantity in the units people pay in.

A figure is either a number or ``None`` with the reason in ``unknown``
(a counter that didn't move, no idle baseline, a run within noise of idle):
never NaN, never a huge residue of a division by almost nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .energy import Method, WindowEnergy, concat

J_PER_WH = 3600.0
J_PER_KWH = 3.6e6

# Energy above idle must be at least this share of the run's energy, and more
# than the error bounds of both windows, to be a figure and not noise.
MIN_ABOVE_IDLE_SHARE = 0.05

ENERGY_FIGURES = ("joules", "average_w", "tokens_per_j", "j_per_token", "wh_per_1k_tokens", "cost_per_1m_tokens")
ABOVE_IDLE_FIGURES = ("joules_above_idle", "tokens_per_j_above_idle", "j_per_token_above_idle")


@dataclass(frozen=True)
class IdleBaseline:
    """Mean power while the machine waits, measured just before a run (after a settle)."""

    power_w: float
    seconds: float
    method: Method
    confident: bool
    error_w: float | None = None  # the idle window's error bound, per second
    settle_s: float = 0.0  # how long the machine was left to settle first


def idle_power_w(idle_joules: float, idle_seconds: float) -> float:
    """Mean idle power; from the window's energy so a counter source stays exact."""
    if idle_seconds <= 0:
        raise ValueError("idle window must be longer than zero")
    return idle_joules / idle_seconds


def idle_baseline(window: WindowEnergy, settle_s: float = 0.0) -> IdleBaseline | None:
    """The baseline a window gives, or None when its energy is unknown."""
    if not window.known:
        return None
    return IdleBaseline(
        power_w=idle_power_w(window.joules, window.seconds),
        seconds=window.seconds,
        method=window.method,
        confident=window.confident,
        error_w=None if window.error_j is None else window.error_j / window.seconds,
        settle_s=settle_s,
    )


def _label(header: str, digits: int | None = None) -> dict:
    """How a table heads and prints a figure (``record.fields`` reads it)."""
    return {"header": header, "digits": digits}


@dataclass(frozen=True)
class PhaseFigures:
    """Efficiency of one phase (prompt processing, generation, or the whole call).

    ``unknown`` maps each figure that is ``None`` to why; ``low_confidence``
    says why a known figure is not to be trusted far (None when it is).
    """

    tokens: int = field(metadata=_label("tokens"))
    seconds: float = field(metadata=_label("s", 2))
    joules: float | None = field(metadata=_label("J", 2))
    # the energy's error bound from the source's resolution
    joules_error: float | None = field(metadata=_label("± J", 2))
    joules_above_idle: float | None = field(metadata=_label("J above idle", 2))
    average_w: float | None = field(metadata=_label("W", 1))
    peak_w: float | None = field(metadata=_label("peak W", 1))
    method: Method = field(metadata=_label("method"))
    confident: bool = field(metadata=_label("confident"))
    low_confidence: str | None = field(metadata=_label("low confidence"))
    tokens_per_s: float | None = field(metadata=_label("tok/s", 2))
    tokens_per_j: float | None = field(metadata=_label("tok/J", 3))
    j_per_token: float | None = field(metadata=_label("J/token", 4))
    wh_per_1k_tokens: float | None = field(metadata=_label("Wh/1k tok", 4))
    cost_per_1m_tokens: float | None = field(metadata=_label("cost/1M tok", 4))
    tokens_per_j_above_idle: float | None = field(metadata=_label("tok/J above idle", 3))
    j_per_token_above_idle: float | None = field(metadata=_label("J/token above idle", 4))
    unknown: dict[str, str] = field(default_factory=dict, metadata=_label("unknown"))


def above_idle_j(window: WindowEnergy, idle: IdleBaseline) -> tuple[float | None, str | None]:
    """Energy above the idle baseline, or None with the reason when it is within noise.

    The noise floor is the larger of 5% of the window's energy and the sum of
    both error bounds (the window's, and the baseline's over the window's
    length): below it, tokens/J above idle would divide by noise.
    """
    above = window.joules - idle.power_w * window.seconds
    bound = (window.error_j or 0.0) + (idle.error_w or 0.0) * window.seconds
    floor = max(MIN_ABOVE_IDLE_SHARE * window.joules, bound)
    if above <= floor:
        return None, (
            f"not measurable: {window.average_w:.1f} W during the window is within noise of the "
            f"{idle.power_w:.1f} W idle baseline"
        )
    return above, None


def phase_figures(
    tokens: int,
    window: WindowEnergy,
    *,
    idle: IdleBaseline | None = None,
    idle_reason: str | None = None,
    price_per_kwh: float | None = None,
) -> PhaseFigures:
    """Every figure of a window that processed ``tokens``; ``idle_reason`` says why ``idle`` is None."""
    unknown: dict[str, str] = {}
    seconds = window.seconds
    energy_reason = window.unknown_reason or (
        None if window.joules > 0 else "the source measured no energy in this window (0 J)"
    )
    if window.peak_w is None:
        unknown["peak_w"] = "no power reading in or around the window"
    if energy_reason:
        for key in ENERGY_FIGURES + ABOVE_IDLE_FIGURES:
            if key != "peak_w":  # the power reading may be there when the counter says nothing
                unknown[key] = energy_reason
    if tokens <= 0:
        for key in (
            "tokens_per_j",
            "j_per_token",
            "wh_per_1k_tokens",
            "cost_per_1m_tokens",
            "tokens_per_j_above_idle",
            "j_per_token_above_idle",
        ):
            unknown.setdefault(key, "no tokens in this window")
    if seconds <= 0:
        unknown.setdefault("tokens_per_s", "the window has no length")
        unknown.setdefault("average_w", "the window has no length")
    if price_per_kwh is None:
        unknown.setdefault("cost_per_1m_tokens", "no electricity price was given")

    above = None
    if "joules_above_idle" not in unknown:
        if idle is None:
            reason = idle_reason or "no idle baseline was measured"
        else:
            above, reason = above_idle_j(window, idle)
        if reason:
            for key in ABOVE_IDLE_FIGURES:
                unknown.setdefault(key, reason)

    def fig(name: str, value):
        return None if name in unknown else float(value() if callable(value) else value)

    joules = window.joules
    j_per_token = joules / tokens if tokens > 0 else None
    return PhaseFigures(
        tokens=tokens,
        seconds=seconds,
        joules=fig("joules", joules),
        joules_error=None if "joules" in unknown else window.error_j,
        joules_above_idle=fig("joules_above_idle", lambda: above),
        average_w=fig("average_w", lambda: joules / seconds),
        peak_w=fig("peak_w", lambda: window.peak_w),
        method=window.method,
        confident=window.confident and not energy_reason,
        low_confidence=energy_reason or window.low_confidence_reason,
        tokens_per_s=fig("tokens_per_s", lambda: tokens / seconds),
        tokens_per_j=fig("tokens_per_j", lambda: tokens / joules),
        j_per_token=fig("j_per_token", lambda: j_per_token),
        wh_per_1k_tokens=fig("wh_per_1k_tokens", lambda: j_per_token * 1000 / J_PER_WH),
        cost_per_1m_tokens=fig("cost_per_1m_tokens", lambda: j_per_token * 1e6 / J_PER_KWH * price_per_kwh),
        tokens_per_j_above_idle=fig("tokens_per_j_above_idle", lambda: tokens / above),
        j_per_token_above_idle=fig("j_per_token_above_idle", lambda: above / tokens),
        unknown=unknown,
    )


def pooled_figures(
    parts: Sequence[tuple[int, WindowEnergy]],
    *,
    idle: IdleBaseline | None = None,
    idle_reason: str | None = None,
    price_per_kwh: float | None = None,
) -> PhaseFigures:
    """A test's figures over its repetitions: total tokens over total energy.

    Not the mean of per-repetition ratios, which one repetition with almost
    no energy above idle would dominate. (Rates in tokens/s are averaged per
    repetition, as llama-bench does; see ``mean_sd``.)
    """
    if not parts:
        raise ValueError("nothing to pool")
    return phase_figures(
        sum(n for n, _ in parts),
        concat([w for _, w in parts]),
        idle=idle,
        idle_reason=idle_reason,
        price_per_kwh=price_per_kwh,
    )


@dataclass(frozen=True)
class Latency:
    time_to_first_token_s: float | None = field(metadata=_label("TTFT s", 3))
    inter_token_p50_ms: float | None = field(metadata=_label("ITL p50 ms", 1))
    inter_token_p95_ms: float | None = field(metadata=_label("ITL p95 ms", 1))
    inter_token_p99_ms: float | None = field(metadata=_label("ITL p99 ms", 1))


def latency(calls: Sequence[tuple[int, Sequence[int]]]) -> Latency:
    """Time to first token (mean over calls) and inter-token latency percentiles.

    Each call is (request time, token times), all in ns. Gaps are pooled
    across calls, never measured across a call boundary; percentiles use
    linear interpolation.
    """
    ttfts = [(tokens[0] - start) / 1e9 for start, tokens in calls if len(tokens)]
    if not ttfts:
        return Latency(None, None, None, None)
    gaps = [np.diff(np.asarray(tokens, dtype=np.int64)) for _, tokens in calls if len(tokens) > 1]
    if not gaps:
        return Latency(float(np.mean(ttfts)), None, None, None)
    p50, p95, p99 = np.percentile(np.concatenate(gaps) / 1e6, [50, 95, 99])
    return Latency(float(np.mean(ttfts)), float(p50), float(p95), float(p99))


def mean_sd(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation of the known values, as llama-bench reports repetitions."""
    a = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if a.size == 0:
        return None, None
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0
