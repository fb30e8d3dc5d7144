"""What a measured run produces: each phase's window and figures, each test's summary, and the run's report.

Plain data plus one pure function (``summarise``): the session fills them,
the store keeps their records, the CLI, the window and the reports read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..metrics import IdleBaseline, Latency, WindowEnergy, latency, mean_sd, pooled_figures
from ..record import fields
from ..record.meta import RunMeta
from ..record.results import SPREAD_FIGURES, CooldownChecked, ResultRow, SamplerStats, TestSummary
from ..record.stored import RunOutcome
from ..record.vocab import Status
from .runner import Repetition


@dataclass(frozen=True)
class PhaseResult:
    """One phase of one repetition: its stored row, and the energy window it was computed from (pooled later)."""

    row: ResultRow
    window: WindowEnergy


@dataclass
class RunReport:
    """A run as it goes and as it ended: the record the store keeps, the window and the CLI show."""

    meta: RunMeta
    idle: IdleBaseline | None = None
    idle_reason: str | None = None  # why there is no baseline
    results: list[PhaseResult] = field(default_factory=list)
    summaries: list[TestSummary] = field(default_factory=list)
    cooldowns: list[CooldownChecked] = field(default_factory=list)
    status: Status = "running"
    error: str | None = None
    session_id: int | None = None
    sampler: SamplerStats | None = None
    save_error: str | None = None  # the database did not take the outcome: say so, save it elsewhere

    def outcome(self) -> RunOutcome:
        """What the store keeps of the run's outcome beside its meta."""
        return RunOutcome(self.idle, self.idle_reason, tuple(self.summaries), self.sampler, tuple(self.cooldowns))

    def as_json(self) -> dict:
        """The run for ``--json`` and a results file: meta, outcome, and every row as the exports write it."""
        return {
            "meta": self.meta,
            "session_id": self.session_id,
            "status": self.status,
            "error": self.error,
            "save_error": self.save_error,
            "idle": self.idle,
            "idle_reason": self.idle_reason,
            "sampler": self.sampler,
            "cooldowns": self.cooldowns,
            "summary": fields.rows(self.summaries, json_text=False),
            "results": fields.rows((r.row for r in self.results), json_text=False),
        }


def summarise(
    results: list[PhaseResult],
    reps: list[Repetition],
    idle: IdleBaseline | None,
    idle_reason: str | None,
    price_per_kwh: float | None,
) -> list[TestSummary]:
    summaries = []
    keys = list(dict.fromkeys((r.row.test, r.row.kind, r.row.phase) for r in results))
    for test, kind, phase in keys:
        rows = [r for r in results if (r.row.test, r.row.phase) == (test, phase)]
        figures = [r.row.figures for r in rows]
        pooled = pooled_figures(
            [(f.tokens, r.window) for f, r in zip(figures, rows)],
            idle=idle,
            idle_reason=idle_reason,
            price_per_kwh=price_per_kwh,
        )
        spread = {f"{k}_sd": mean_sd([getattr(f, k) for f in figures])[1] for k in SPREAD_FIGURES}
        speed_mean, speed_sd = mean_sd([f.tokens_per_s for f in figures])
        test_reps = [r for r in reps if r.test == test]
        summaries.append(
            TestSummary(
                test=test,
                kind=kind,
                phase=phase,
                repetitions=len(rows),
                tokens_per_repetition=figures[0].tokens,
                tokens_per_s_mean=speed_mean,
                tokens_per_s_sd=speed_sd,
                pooled=pooled,
                latency=_latency(test_reps) if phase == "total" else None,
                **spread,
            )
        )
    return summaries


def _latency(reps: list[Repetition]) -> Latency | None:
    calls = [(c.generation.t_start_ns, [e.t_ns for e in c.generation.events]) for r in reps for c in r.calls]
    calls = [c for c in calls if c[1]]
    return latency(calls) if calls else None
