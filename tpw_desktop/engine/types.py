"""What the engine reports: token events, calls, prompt evaluations, llama.cpp's counters.

Every timestamp is ``time.monotonic_ns()``, the clock the power sampler
uses, taken right after the ``llama_decode`` that produced it returned (and
synchronized, so on a GPU the work is done, not just queued).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..record.calls import PerfCounters, TokenEvent
from ..record.vocab import StopReason


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
