"""What a measured run tells whoever watches it: small frozen dataclasses, one per kind.

They cross layers (session -> CLI progress, session -> measuring process ->
window) instead of tuples decoded by position or dicts indexed by string.
All times are ``time.monotonic_ns()``, the engine's and the sampler's clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..metrics import IdleBaseline
from ..record.calls import TokenEvent
from ..record.results import CooldownChecked, ResultRow
from ..record.vocab import Phase, TestKind

# Stretches of a run that are not measured tokens, shown shaded in the charts.
MarkKind = Literal["settle", "idle", "cooldown"]


@dataclass(frozen=True, slots=True)
class Status:
    """A line of progress for a human."""

    message: str


@dataclass(frozen=True, slots=True)
class Marked:
    """A stretch of the run that is not inference: the settle before idle, the idle window, a cool-down."""

    kind: MarkKind
    t_start_ns: int
    t_end_ns: int


@dataclass(frozen=True, slots=True)
class IdleMeasured:
    """The idle baseline, or None with the reason it is unknown."""

    baseline: IdleBaseline | None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class CallStarted:
    """A call begins (a pp evaluation, a tg decode loop, or one prompt of a workload).

    ``repetition`` is -1 for the unrecorded warm-up.
    """

    test: str
    kind: TestKind
    repetition: int
    call: int
    prompt_tokens: int
    t_ns: int

    @property
    def warmup(self) -> bool:
        return self.repetition < 0


@dataclass(frozen=True, slots=True)
class PhaseEnded:
    """A measured span of one call (prompt processing, generation, or the whole call), or a server level's
    window: its edges (decode ends) and its tokens. The same spans the run's results are computed over."""

    test: str
    repetition: int
    call: int
    phase: Phase
    t_start_ns: int
    t_end_ns: int
    tokens: int
    kind: TestKind

    @property
    def warmup(self) -> bool:
        return self.repetition < 0


@dataclass(frozen=True, slots=True)
class SaveProblem:
    """The database stopped taking writes (disk full, I/O error): the run goes on, kept in memory."""

    message: str


@dataclass(frozen=True, slots=True)
class Caution:
    """Something the user should know before trusting the figures; the run goes on."""

    message: str


@dataclass(frozen=True, slots=True)
class RepetitionDone:
    test: str
    repetition: int
    results: tuple[ResultRow, ...]


RunEvent = (
    Status
    | Marked
    | IdleMeasured
    | CallStarted
    | TokenEvent
    | PhaseEnded
    | CooldownChecked
    | SaveProblem
    | Caution
    | RepetitionDone
)
