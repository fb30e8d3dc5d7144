"""What a measured run produces: per-phase results, per-test summaries, and the run's report.

Plain data plus one pure function (``summarise``): the session fills them,
the store keeps them, the CLI, the window and the reports read them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..metrics import IdleBaseline, latency, mean_sd, pooled_figures
from ..record.results import SPREAD_FIGURES, PhaseResult, TestSummary
from .events import CooldownChecked
from .runner import Repetition


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


def summarise(
    results: list[PhaseResult],
    reps: list[Repetition],
    idle: IdleBaseline | None,
    idle_reason: str | None,
    price_per_kwh: float | None,
) -> list[TestSummary]:
    summaries = []
    keys = list(dict.fromkeys((r.test, r.phase) for r in results))
    for test, phase in keys:
        rows = [r for r in results if r.test == test and r.phase == phase]
        figures = [r.figures for r in rows]
        pooled = pooled_figures(
            [(r.figures.tokens, r.window) for r in rows],
            idle=idle,
            idle_reason=idle_reason,
            price_per_kwh=price_per_kwh,
        )
        test_reps = [r for r in reps if r.test == test]
        summaries.append(
            TestSummary(
                test=test,
                phase=phase,
                repetitions=len(rows),
                tokens_per_repetition=figures[0].tokens,
                tokens_per_s=mean_sd([f.tokens_per_s for f in figures]),
                pooled=pooled,
                spread_sd={k: mean_sd([getattr(f, k) for f in figures])[1] for k in SPREAD_FIGURES},
                latency=_latency(test_reps) if phase == "total" else None,
            )
        )
    return summaries


def _latency(reps: list[Repetition]) -> dict | None:
    calls = [(c.generation.t_start_ns, [e.t_ns for e in c.generation.events]) for r in reps for c in r.calls]
    calls = [c for c in calls if c[1]]
    return latency(calls).as_dict() if calls else None
