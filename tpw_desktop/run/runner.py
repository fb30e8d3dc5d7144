"""Run benchmark tests on an engine and cut each repetition into timed phases.

This knows nothing about power: it produces token timestamps and phase
windows on the monotonic clock, and tells a watcher about them as typed
events as they happen; ``session`` puts joules on the windows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..engine.llama_engine import Engine, Generation
from ..engine.workloads import TestSpec
from ..metrics import Phase, Span, merge, split_call
from ..record.calls import CallRow
from ..record.vocab import TestKind
from .events import CallStarted, PhaseEnded, RunEvent

Emit = Callable[[RunEvent], None]


def _ignore(_event: RunEvent) -> None:
    pass


@dataclass
class CallRecord:
    """One prompt -> completion inside a repetition (a workload has several)."""

    prompt: str | None
    generation: Generation


@dataclass
class Repetition:
    test: str
    kind: TestKind
    index: int
    t_start_ns: int
    t_end_ns: int
    phases: dict[str, Phase]
    stopped: bool = False
    calls: list[CallRecord] = field(default_factory=list)

    @property
    def output_text(self) -> str:
        return "".join(c.generation.text for c in self.calls)

    def call_rows(self, store_text: bool) -> list[CallRow]:
        """Each call as the store keeps it (its prompt and output only when the user keeps text)."""
        return [
            CallRow(
                test=self.test,
                repetition=self.index,
                call=i,
                t_start_ns=c.generation.t_start_ns,
                t_end_ns=c.generation.t_end_ns,
                prompt_tokens=c.generation.prompt_tokens,
                generated_tokens=len(c.generation.events),
                stop_reason=c.generation.stop_reason,
                prompt_text=c.prompt if store_text else None,
                output_text=c.generation.text if store_text else None,
                perf=c.generation.perf,
            )
            for i, c in enumerate(self.calls)
        ]


def _random_prompt(engine: Engine, n_tokens: int, seed: int) -> list[int]:
    """llama-bench's pp input: BOS then uniformly random token ids."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, engine.n_vocab, size=n_tokens).tolist()
    if tokens:
        tokens[0] = engine.token_bos()
    return tokens


def _phase_events(spec: TestSpec, index: int, call: int, phases: dict[str, Phase]) -> list[PhaseEnded]:
    return [
        PhaseEnded(spec.name, index, call, name, p.spans[0].t_start_ns, p.spans[0].t_end_ns, p.tokens, spec.kind)
        for name, p in phases.items()
    ]


def run_once(
    engine: Engine,
    spec: TestSpec,
    index: int,
    *,
    temperature: float = 0.0,
    stop: threading.Event | None = None,
    emit: Emit = _ignore,
    warmup: bool = False,
) -> Repetition:
    """One repetition of a test; a warm-up is a shortened one (as llama-bench does).

    ``emit`` hears each call start, every token and each phase's edges as
    they happen, so a live view needs to derive nothing.
    """
    if spec.kind == "pp":
        prompt = _random_prompt(engine, spec.n_tokens, seed=index + 1)
        emit(CallStarted(spec.name, "pp", index, 0, len(prompt), time.monotonic_ns()))
        result = engine.evaluate(prompt, stop=stop)
        phases = {"pp": Phase("pp", spec.n_tokens, (Span(result.t_start_ns, result.t_end_ns),))}
        if not result.stopped:
            for event in _phase_events(spec, index, 0, phases):
                emit(event)
        return Repetition(spec.name, "pp", index, result.t_start_ns, result.t_end_ns, phases, result.stopped)

    if spec.kind == "tg":
        n = 1 if warmup else spec.n_tokens
        emit(CallStarted(spec.name, "tg", index, 0, 0, time.monotonic_ns()))
        gen = engine.decode_only(n, seed=index + 1, stop=stop, on_token=emit)
        # n decodes, each timed when it returned: [start, last decode]
        phases = {"tg": Phase("tg", gen.decodes, (Span(gen.t_start_ns, gen.t_last_decode_ns),))} if gen.decodes else {}
        for event in _phase_events(spec, index, 0, phases):
            emit(event)
        return Repetition(
            spec.name,
            "tg",
            index,
            gen.t_start_ns,
            gen.t_end_ns,
            phases,
            gen.stop_reason == "stopped",
            [CallRecord(None, gen)],
        )

    assert spec.workload is not None
    calls: list[CallRecord] = []
    per_call: list[dict[str, Phase]] = []
    stopped = False
    for i, call in enumerate(spec.workload.calls[:1] if warmup else spec.workload.calls):
        prompt = engine.format_chat(call.messages)
        tokens = engine.tokenize(prompt)
        emit(CallStarted(spec.name, "workload", index, i, len(tokens), time.monotonic_ns()))
        gen = engine.generate(
            tokens, 1 if warmup else call.max_tokens, temperature=temperature, stop=stop, on_token=emit
        )
        calls.append(CallRecord(prompt, gen))
        if gen.stop_reason == "stopped":
            stopped = True
            break
        phases = split_call(
            gen.t_start_ns, gen.t_prompt_done_ns, gen.t_last_decode_ns, gen.prompt_tokens, len(gen.events), gen.decodes
        )
        per_call.append(phases)
        for event in _phase_events(spec, index, i, phases):
            emit(event)
    merged = {
        name: merge([p[name] for p in per_call if name in p])
        for name in ("pp", "tg", "total")
        if any(name in p for p in per_call)
    }
    return Repetition(
        spec.name,
        "workload",
        index,
        calls[0].generation.t_start_ns,
        calls[-1].generation.t_end_ns,
        merged,
        stopped,
        calls,
    )


def warm_up(engine: Engine, spec: TestSpec, stop: threading.Event | None = None, emit: Emit = _ignore) -> None:
    """An unrecorded, shortened run: first-call costs (allocations, caches) stay out of the figures."""
    run_once(engine, spec, -1, stop=stop, emit=emit, warmup=True)
