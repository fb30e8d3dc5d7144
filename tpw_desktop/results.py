"""What a measured run produces: per-phase results, per-test summaries, and the run's report.

Plain data plus one pure function (``summarise``): the session fills them,
the store keeps them, the CLI, the window and the reports read them.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .events import CooldownChecked
from .metrics import (
    IdleBaseline,
    PhaseFigures,
    WindowEnergy,
    latency,
    mean_sd,
    pooled_figures,
)
from .runner import Repetition


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
        return {"test": self.test, "repetition": self.repetition, "phase": self.phase,
                "t_start_ns": self.t_start_ns, "t_end_ns": self.t_end_ns, **self.figures.as_dict()}


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
            **{k: p[k] for k in ("seconds", "joules", "joules_error", "joules_above_idle", "average_w", "peak_w",
                                 "tokens_per_j", "j_per_token", "wh_per_1k_tokens", "cost_per_1m_tokens",
                                 "tokens_per_j_above_idle", "j_per_token_above_idle", "method", "confident",
                                 "low_confidence", "unknown")},
            "total_tokens": p["tokens"],
            **{f"{k}_sd": v for k, v in self.spread_sd.items()},
            "pooled": True,
            "latency": self.latency,
        }


@dataclass
class RunReport:
    meta: dict[str, Any]
    idle: IdleBaseline | None
    idle_reason: str | None = None  # why there is no baseline
    results: list[PhaseResult] = field(default_factory=list)
    summaries: list[TestSummary] = field(default_factory=list)
    cooldowns: list[CooldownChecked] = field(default_factory=list)
    status: str = "running"
    error: str | None = None
    session_id: int | None = None
    sampler: dict | None = None
    save_error: str | None = None  # the database did not take the outcome: say so, save it elsewhere

    def summary_row(self) -> dict[str, Any]:
        """What the store keeps of the run's outcome (the session row's summary columns)."""
        return {
            "idle": None if self.idle is None else asdict(self.idle),
            "idle_reason": self.idle_reason,
            "sampler": self.sampler,
            "summary": [s.as_dict() for s in self.summaries],
            "cooldowns": [asdict(c) for c in self.cooldowns],
        }

    def as_dict(self) -> dict:
        return {
            **self.meta,
            "session_id": self.session_id,
            "status": self.status,
            "error": self.error,
            "save_error": self.save_error,
            **self.summary_row(),
            "results": [r.as_dict() for r in self.results],
        }


def summarise(results: list[PhaseResult], reps: list[Repetition], idle: IdleBaseline | None,
              idle_reason: str | None, price_per_kwh: float | None) -> list[TestSummary]:
    summaries = []
    keys = list(dict.fromkeys((r.test, r.phase) for r in results))
    for test, phase in keys:
        rows = [r for r in results if r.test == test and r.phase == phase]
        figures = [r.figures for r in rows]
        pooled = pooled_figures([(r.figures.tokens, r.window) for r in rows], idle=idle,
                                idle_reason=idle_reason, price_per_kwh=price_per_kwh)
        test_reps = [r for r in reps if r.test == test]
        summaries.append(TestSummary(
            test=test,
            phase=phase,
            repetitions=len(rows),
            tokens_per_repetition=figures[0].tokens,
            tokens_per_s=mean_sd([f.tokens_per_s for f in figures]),
            pooled=pooled,
            spread_sd={k: mean_sd([getattr(f, k) for f in figures])[1] for k in SPREAD_FIGURES},
            latency=_latency(test_reps) if phase == "total" else None,
        ))
    return summaries


def headline(rows: list, phase_of) -> Any:
    """The row a table of one line per run shows: tg for llama-bench tests, the whole calls for a workload."""
    return next((r for r in rows if phase_of(r) == "tg"), None) or next(
        (r for r in rows if phase_of(r) == "total"), rows[0] if rows else None)


def _latency(reps: list[Repetition]) -> dict | None:
    calls = [(c.generation.t_start_ns, [e.t_ns for e in c.generation.events]) for r in reps for c in r.calls]
    calls = [c for c in calls if c[1]]
    return latency(calls).as_dict() if calls else None
