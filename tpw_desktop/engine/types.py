"""What the engine reports: token events, calls, prompt evaluations, llama.cpp's counters.

Every timestamp is ``time.monotonic_ns()``, the clock the power sampler
uses, taken right after the ``llama_decode`` that produced it returned (and
synchronized, so on a GPU the work is done, not just queued).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

from ..record.token import TokenEvent

StopReason = Literal["eos", "length", "stopped"]


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

    @property
    def prompt_tokens_per_s(self) -> float | None:
        return self.prompt_tokens / self.prompt_ms * 1e3 if self.prompt_ms > 0 else None

    @property
    def generation_tokens_per_s(self) -> float | None:
        return self.generated_tokens / self.generation_ms * 1e3 if self.generation_ms > 0 else None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Generation:
    """One prompt -> completion call, with the end time of every decode that mattered.

    ``t_prompt_done_ns``: the prompt's last batch finished (the first token's
    logits were ready). ``t_last_decode_ns``: the last single-token decode
    finished; ``decodes`` counts those after the prompt. A call stopped by its
    token limit ends on its last token (never decoded); one that ended on
    end-of-text ends on the decode that produced it.
    """

    prompt_tokens: int
    t_start_ns: int  # just before the prompt is evaluated
    t_prompt_done_ns: int
    t_last_decode_ns: int
    t_end_ns: int
    decodes: int
    stop_reason: StopReason
    perf: PerfCounters
    events: list[TokenEvent] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(e.text for e in self.events)


@dataclass(frozen=True)
class PromptEval:
    """A prompt evaluated with no sampling: llama-bench's ``pp`` test."""

    n_tokens: int
    t_start_ns: int
    t_end_ns: int
    stopped: bool
    perf: PerfCounters
