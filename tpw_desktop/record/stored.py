"""A session and a sweep as the store gives them back: typed, validated, never a dict of columns."""

from __future__ import annotations

from dataclasses import dataclass

from ..metrics import IdleBaseline
from .meta import RunMeta
from .results import CooldownChecked, SamplerStats, TestSummary, headline
from .vocab import Status


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended up, as the store keeps it beside its meta (the idle baseline as soon as it is known)."""

    idle: IdleBaseline | None
    idle_reason: str | None  # why there is no baseline
    summaries: tuple[TestSummary, ...] = ()
    sampler: SamplerStats | None = None
    cooldowns: tuple[CooldownChecked, ...] = ()


@dataclass(frozen=True)
class StoredSession:
    id: int
    started_at: str  # ISO 8601, UTC
    ended_at: str | None
    status: Status
    error: str | None
    t0_ns: int  # the monotonic clock at its start: samples and tokens are relative to it
    meta: RunMeta
    outcome: RunOutcome
    model_sha256: str | None = None

    @property
    def headline(self) -> TestSummary | None:
        return headline(self.outcome.summaries)

    @property
    def variant(self) -> str:
        """What a comparison calls it: its sweep variant, else its id and model."""
        return self.meta.sweep.variant if self.meta.sweep else f"#{self.id} {self.meta.model.file_name}"


@dataclass(frozen=True)
class Settle:
    """Before one run of a sweep: how long power took to come back near idle (``settled`` None: unknown)."""

    variant: str
    round: int
    waited_s: float
    power_w: float | None
    settled: bool | None


@dataclass(frozen=True)
class StoredSweep:
    id: int
    started_at: str
    ended_at: str | None
    status: Status
    kind: str  # what varies: models, threads, power_limit ... joined by "+"
    variants: tuple[str, ...]  # in the plan's order
    command: str  # the tpw sweep command that reproduces it
    settles: tuple[Settle, ...]
    error: str | None
    session_ids: tuple[int, ...]
