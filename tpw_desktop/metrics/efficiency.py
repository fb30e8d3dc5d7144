"""Headline figures from tokens, seconds and joules: pure arithmetic, one place.

tokens/J is the same number as (tokens/s) / W. Wh per 1k tokens and cost per
1M tokens are the same quantity in the units people pay in.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

J_PER_WH = 3600.0
J_PER_KWH = 3.6e6

NAN = float("nan")


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else NAN


@dataclass(frozen=True)
class IdleBaseline:
    """Mean power while the machine waits, measured just before a run."""

    power_w: float
    seconds: float
    method: str
    confident: bool


def idle_power_w(idle_joules: float, idle_seconds: float) -> float:
    """Mean idle power; from the window's energy so a counter source stays exact."""
    if idle_seconds <= 0:
        raise ValueError("idle window must be longer than zero")
    return idle_joules / idle_seconds


@dataclass(frozen=True)
class PhaseFigures:
    """Efficiency of one phase (prompt processing, generation, or the whole call)."""

    tokens: int
    seconds: float
    joules: float
    joules_above_idle: float | None
    average_w: float
    peak_w: float
    method: str
    confident: bool
    tokens_per_s: float
    tokens_per_j: float
    j_per_token: float
    wh_per_1k_tokens: float
    cost_per_1m_tokens: float | None
    tokens_per_j_above_idle: float | None
    j_per_token_above_idle: float | None

    def as_dict(self) -> dict:
        return asdict(self)


def phase_figures(
    tokens: int,
    seconds: float,
    joules: float,
    *,
    method: str,
    confident: bool,
    peak_w: float = NAN,
    idle_w: float | None = None,
    price_per_kwh: float | None = None,
) -> PhaseFigures:
    j_per_token = _ratio(joules, tokens)
    above = joules - idle_w * seconds if idle_w is not None else None
    return PhaseFigures(
        tokens=tokens,
        seconds=seconds,
        joules=joules,
        joules_above_idle=above,
        average_w=_ratio(joules, seconds),
        peak_w=peak_w,
        method=method,
        confident=confident,
        tokens_per_s=_ratio(tokens, seconds),
        tokens_per_j=_ratio(tokens, joules),
        j_per_token=j_per_token,
        wh_per_1k_tokens=j_per_token * 1000 / J_PER_WH,
        cost_per_1m_tokens=j_per_token * 1e6 / J_PER_KWH * price_per_kwh if price_per_kwh is not None else None,
        tokens_per_j_above_idle=_ratio(tokens, above) if above is not None else None,
        j_per_token_above_idle=_ratio(above, tokens) if above is not None else None,
    )


@dataclass(frozen=True)
class Latency:
    time_to_first_token_s: float | None
    inter_token_p50_ms: float | None
    inter_token_p95_ms: float | None
    inter_token_p99_ms: float | None

    def as_dict(self) -> dict:
        return asdict(self)


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


def mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation, as llama-bench reports repetitions."""
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return NAN, NAN
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0
