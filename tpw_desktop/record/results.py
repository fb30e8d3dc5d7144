"""The figures a run produces, as stored: per phase of each repetition, per test, per server level.

``ResultRow`` is a row of the ``results`` table and ``TestSummary`` one of
``summaries``; their field lists (``record.fields``) are those tables'
columns, the CSV's and the JSON's. A test's summary says what it measured
(``kind``, ``phase``) in fields, never in its name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeVar

from ..metrics import Latency, Method, PhaseFigures
from .fields import label
from .vocab import Phase, TestKind


@dataclass(frozen=True)
class ResultRow:
    """One phase of one repetition. ``t_start_ns``/``t_end_ns`` bound it on the engine's clock
    (a workload's phase is several spans inside them)."""

    test: str = field(metadata=label("test"))
    kind: TestKind = field(metadata=label("kind"))
    repetition: int = field(metadata=label("rep"))
    phase: Phase = field(metadata=label("phase"))
    t_start_ns: int = field(metadata=label("start (ns)"))
    t_end_ns: int = field(metadata=label("end (ns)"))
    figures: PhaseFigures = field(metadata=label())


InterTokenBasis = Literal["token", "chunk"]


@dataclass(frozen=True)
class ServerLevel:
    """What one concurrency level against a server adds to its summary."""

    concurrency: int = field(metadata=label("clients"))
    requests: int = field(metadata=label("requests"))
    counted_by: str = field(metadata=label("tokens from"))  # "server usage", "counted chunks", or both
    count_note: str | None = field(metadata=label("why not the server's count"))
    prompt_tokens: int | None = field(metadata=label("prompt tokens"))
    cut_short: int = field(metadata=label("cut short"))  # streams that ended without a finish reason
    inter_token_basis: InterTokenBasis = field(metadata=label("ITL per"))  # chunks carried one token each, or not


@dataclass(frozen=True)
class TestSummary:
    """A test's phase over its repetitions (or a server level's window).

    Speed is the mean and sample sd of per-repetition tokens/s, as llama-bench
    reports it. Energy figures are pooled: total tokens over total joules
    (never a mean of ratios, which one repetition barely above idle would
    dominate), with the per-repetition sd kept as the spread.
    """

    __test__ = False  # not a pytest class

    test: str = field(metadata=label("test"))
    kind: TestKind = field(metadata=label("kind"))
    phase: Phase = field(metadata=label("phase"))
    repetitions: int = field(metadata=label("reps"))
    tokens_per_repetition: int = field(metadata=label("tokens/rep"))
    tokens_per_s_mean: float | None = field(metadata=label("tok/s", 2))
    tokens_per_s_sd: float | None = field(metadata=label("tok/s sd", 2))
    pooled: PhaseFigures = field(metadata=label())
    tokens_per_j_sd: float | None = field(default=None, metadata=label("tok/J sd", 3))
    j_per_token_sd: float | None = field(default=None, metadata=label("J/token sd", 4))
    average_w_sd: float | None = field(default=None, metadata=label("W sd", 1))
    tokens_per_j_above_idle_sd: float | None = field(default=None, metadata=label("tok/J above idle sd", 3))
    latency: Latency | None = field(default=None, metadata=label())
    level: ServerLevel | None = field(default=None, metadata=label())

    @property
    def method(self) -> Method:
        return self.pooled.method

    @property
    def confident(self) -> bool:
        return self.pooled.confident

    @property
    def method_text(self) -> str:
        return self.method + ("" if self.confident else " (low confidence)")

    @property
    def concurrency(self) -> int | None:
        return self.level.concurrency if self.level else None


# The spread kept beside each pooled energy figure: the sample sd of the per-repetition values.
SPREAD_FIGURES = ("tokens_per_j", "j_per_token", "average_w", "tokens_per_j_above_idle")


@dataclass(frozen=True)
class CooldownChecked:
    """Power after the cool-down between two tests, against the idle baseline."""

    test: str  # the test about to start
    seconds: float
    power_w: float | None
    idle_w: float | None
    near_idle: bool | None  # None when either power is unknown


@dataclass(frozen=True)
class SamplerStats:
    target_hz: float
    achieved_hz: float  # over the samples actually taken
    n_samples: int
    n_late: int  # deadlines missed by more than a period (the thread was starved)
    max_interval_ms: float
    n_errors: int
    last_error: str | None


class Ranked(Protocol):
    """A row a headline can be picked from: a summary, or a comparison's row."""

    @property
    def kind(self) -> TestKind: ...

    @property
    def phase(self) -> Phase: ...

    @property
    def concurrency(self) -> int | None: ...


R = TypeVar("R", bound=Ranked)


def headline(rows: Sequence[R]) -> R | None:
    """A session's one headline figure, the same everywhere (tiles, History, lists, Compare, the report):
    the whole calls of its first workload (prompt and generated tokens over all their joules), else its first
    generation test (llama-bench's tg), else the busiest level of a server, else its first row."""
    for kind, phase in (("workload", "total"), ("tg", "tg")):
        row = next((r for r in rows if r.kind == kind and r.phase == phase), None)
        if row is not None:
            return row
    levels = [r for r in rows if r.concurrency is not None]
    if levels:
        return max(levels, key=lambda r: r.concurrency)
    return rows[0] if rows else None
