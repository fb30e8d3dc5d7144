"""What a session records as it runs: its tokens, its calls (with llama.cpp's own counters), its power samples."""

from __future__ import annotations

from dataclasses import dataclass, field

from .fields import label
from .vocab import StopReason


@dataclass(frozen=True, slots=True)
class TokenEvent:
    """One generated token: when its logits were ready, which it is, its text."""

    t_ns: int
    index: int
    token_id: int
    text: str


@dataclass(frozen=True)
class PerfCounters:
    """llama.cpp's own timings for the last call (``llama_perf_context``).

    llama.cpp counts multi-token batches as prompt evaluation and single-token
    decodes as generation, the same split llama-bench reports.
    """

    load_ms: float
    prompt_tokens: int
    prompt_ms: float
    generated_tokens: int
    generation_ms: float


@dataclass(frozen=True)
class CallRow:
    """One prompt -> completion of a repetition (a row of the ``calls`` table); text None when not kept."""

    test: str
    repetition: int
    call: int
    t_start_ns: int
    t_end_ns: int
    prompt_tokens: int | None
    generated_tokens: int
    stop_reason: StopReason | None  # None: a server's stream that ended without a finish reason
    prompt_text: str | None
    output_text: str | None
    perf: PerfCounters | None = field(default=None, metadata=label(json=True))  # llama.cpp's own timings


@dataclass(frozen=True)
class StoredToken:
    """A token as the ``tokens`` table keeps it (text None when the user keeps no text)."""

    test: str
    repetition: int
    call: int
    idx: int
    t_ns: int
    token_id: int
    text: str | None


@dataclass(frozen=True)
class SampleRow:
    """One power sample of one source, as exported: with its source's method and its time in the session."""

    source: str
    method: str
    t_ns: int
    t_s: float
    power_w: float | None  # None: the read failed
    energy_j: float | None  # the source's counter, cumulative; None without one or when the read failed
