"""The figures a run produces: per phase of each repetition, and per test over its repetitions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..metrics import PhaseFigures, WindowEnergy


@dataclass(frozen=True)
class PhaseResult:
    """One phase of one repetition, with its energy window and figures.

    ``t_start_ns``/``t_end_ns`` bound the phase on the engine's clock (a
    multi-call workload's phase is several spans inside them).
    """

    test: str
    repetition: int
    phase: str
    window: WindowEnergy
    figures: PhaseFigures
    t_start_ns: int
    t_end_ns: int

    def as_dict(self) -> dict:
        return {
            "test": self.test,
            "repetition": self.repetition,
            "phase": self.phase,
            "t_start_ns": self.t_start_ns,
            "t_end_ns": self.t_end_ns,
            **self.figures.as_dict(),
        }


SPREAD_FIGURES = ("tokens_per_j", "j_per_token", "average_w", "tokens_per_j_above_idle")


@dataclass(frozen=True)
class TestSummary:
    """A test's phase over its repetitions.

    Speed is the mean and sample sd of per-repetition tokens/s, as llama-bench
    reports it. Energy figures are pooled: total tokens over total joules
    (never a mean of ratios, which one repetition barely above idle would
    dominate), with the per-repetition sd kept as the spread.
    """

    __test__ = False  # not a pytest class

    test: str
    phase: str
    repetitions: int
    tokens_per_repetition: int
    tokens_per_s: tuple[float | None, float | None]
    pooled: PhaseFigures
    spread_sd: dict[str, float | None]
    latency: dict | None = None

    @property
    def method(self) -> str:
        return self.pooled.method

    @property
    def confident(self) -> bool:
        return self.pooled.confident

    def as_dict(self) -> dict:
        p = self.pooled.as_dict()
        return {
            "test": self.test,
            "phase": self.phase,
            "repetitions": self.repetitions,
            "tokens": self.tokens_per_repetition,
            "tokens_per_s_mean": self.tokens_per_s[0],
            "tokens_per_s_sd": self.tokens_per_s[1],
            **{
                k: p[k]
                for k in (
                    "seconds",
                    "joules",
                    "joules_error",
                    "joules_above_idle",
                    "average_w",
                    "peak_w",
                    "tokens_per_j",
                    "j_per_token",
                    "wh_per_1k_tokens",
                    "cost_per_1m_tokens",
                    "tokens_per_j_above_idle",
                    "j_per_token_above_idle",
                    "method",
                    "confident",
                    "low_confidence",
                    "unknown",
                )
            },
            "total_tokens": p["tokens"],
            **{f"{k}_sd": v for k, v in self.spread_sd.items()},
            "pooled": True,
            "latency": self.latency,
        }


def headline(rows: list, phase_of) -> Any:
    """The row a table of one line per run shows: tg for llama-bench tests, the whole calls for a workload."""
    return next((r for r in rows if phase_of(r) == "tg"), None) or next(
        (r for r in rows if phase_of(r) == "total"), rows[0] if rows else None
    )
