"""Cut a call into prompt-processing and generation windows from its decode times.

Every edge is the moment a ``llama_decode`` returned, so each window holds
whole decodes and nothing else:

prompt processing (pp): from the request to the end of the prompt's decode;
    its tokens are the prompt's.
generation (tg): from the end of the prompt's decode to the end of the last
    single-token decode; its tokens are those decodes. A call stopped by its
    token limit never decodes its last sampled token (one fewer decode than
    tokens); a call that ends on end-of-text decoded every token it returned,
    the last of them producing the end-of-text, so that decode is inside too.
    llama.cpp's own ``n_eval`` counts the same way.
total: from the request to the end of the last decode; prompt + generated tokens.
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
    def tokens_per_s(self) -> float | None:
        seconds = self.seconds
        return self.tokens / seconds if seconds > 0 else None


def split_call(
    t_start_ns: int,
    t_prompt_done_ns: int,
    t_last_decode_ns: int,
    prompt_tokens: int,
    generated_tokens: int,
    decodes: int,
) -> dict[str, Phase]:
    """Phases of one prompt -> completion call.

    ``decodes`` is the number of single-token decodes between the prompt's
    end and ``t_last_decode_ns``; with none there is no generation phase.
    """
    phases = {"pp": Phase("pp", prompt_tokens, (Span(t_start_ns, t_prompt_done_ns),))}
    if decodes > 0:
        phases["tg"] = Phase("tg", decodes, (Span(t_prompt_done_ns, t_last_decode_ns),))
    phases["total"] = Phase("total", prompt_tokens + generated_tokens, (Span(t_start_ns, t_last_decode_ns),))
    return phases


def merge(phases: list[Phase]) -> Phase:
    """The same phase over several calls (an agentic burst): tokens add, spans join."""
    if not phases:
        raise ValueError("nothing to merge")
    return Phase(phases[0].name, sum(p.tokens for p in phases), tuple(s for p in phases for s in p.spans))
