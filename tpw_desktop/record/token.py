"""One generated token, as the engine stamps it and every layer above hears it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TokenEvent:
    """One generated token: when its logits were ready, which it is, its text."""

    t_ns: int
    index: int
    token_id: int
    text: str
