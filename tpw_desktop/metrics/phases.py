"""Cut a call into prompt-processing and generation windows from its token times.

prompt processing (pp): from the request to the first token; its tokens are
    the prompt's.
generation (tg): from the first token to the last; its tokens are the decodes
    inside it, one fewer than the tokens generated (the first token's decode
    cost belongs to pp, and the last sampled token is never decoded), which is
    also how llama.cpp's own counters count it.
total: from the request to the last token; prompt + generated tokens.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    t_start_ns: int
    t_end_ns: int

    @property
    def seconds(self) -> float:
        return (self.t_end_ns - self.t_start_ns) / 1e9


@dataclass(frozen=True)
class Phase:
    """Tokens processed over one or more disjoint spans of time."""

    name: str
    tokens: int
    spans: tuple[Span, ...]

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.spans)

    @property
    def tokens_per_s(self) -> float:
        seconds = self.seconds
        return self.tokens / seconds if seconds > 0 else float("nan")


def split_call(t_start_ns: int, token_t_ns: list[int], prompt_tokens: int) -> dict[str, Phase]:
    """Phases of one prompt -> completion call; generation needs two tokens."""
    if not token_t_ns:
        return {}
    first, last = token_t_ns[0], token_t_ns[-1]
    phases = {"pp": Phase("pp", prompt_tokens, (Span(t_start_ns, first),))}
    if len(token_t_ns) >= 2:
        phases["tg"] = Phase("tg", len(token_t_ns) - 1, (Span(first, last),))
    phases["total"] = Phase("total", prompt_tokens + len(token_t_ns), (Span(t_start_ns, last),))
    return phases


def merge(phases: list[Phase]) -> Phase:
    """The same phase over several calls (an agentic burst): tokens add, spans join."""
    if not phases:
        raise ValueError("nothing to merge")
    return Phase(phases[0].name, sum(p.tokens for p in phases), tuple(s for p in phases for s in p.spans))
