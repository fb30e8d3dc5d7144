"""The closed vocabularies of a run: phases, test kinds, statuses, power methods.

Literal types, so a checker catches a typo and the values stay plain
strings in the database, the JSON and the CSV. ``checked`` validates a value
read back from a file or a database (never trusted) against its vocabulary.
"""

from __future__ import annotations

import typing
from typing import Literal

from ..metrics import Method

# Prompt processing, generation, and a whole call (prompt + generated tokens).
Phase = Literal["pp", "tg", "total"]
# llama-bench's pp and tg tests, a named workload of chat calls, one concurrency level against a server.
TestKind = Literal["pp", "tg", "workload", "server"]
Status = Literal["running", "completed", "failed", "interrupted", "cancelled"]
StopReason = Literal["eos", "length", "stopped"]

PHASES: tuple[Phase, ...] = typing.get_args(Phase)
TEST_KINDS: tuple[TestKind, ...] = typing.get_args(TestKind)
STATUSES: tuple[Status, ...] = typing.get_args(Status)
METHODS: tuple[Method, ...] = typing.get_args(Method)
PHASE_NAMES: dict[Phase, str] = {"pp": "prompt processing", "tg": "generation", "total": "whole calls"}


def checked(value: object, vocabulary: tuple[str, ...], what: str) -> str:
    """``value`` if it is one of ``vocabulary``, else a ValueError naming what it should have been."""
    if value not in vocabulary:
        raise ValueError(f"{what} {value!r} is not one of {', '.join(vocabulary)}")
    return typing.cast(str, value)
