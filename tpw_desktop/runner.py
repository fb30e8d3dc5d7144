"""Run benchmark tests on an engine and cut each repetition into timed phases.

This knows nothing about power: it produces token timestamps and phase
windows on the monotonic clock; ``session`` puts joules on them.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .engine.llama_engine import Engine, Generation, TokenEvent
from .engine.workloads import TestSpec
from .metrics import Phase, Span, merge, split_call


@dataclass
class CallRecord:
    """One prompt -> completion inside a repetition (a workload has several)."""

    prompt: str | None
    generation: Generation


@dataclass
class Repetition:
    test: str
    index: int
    t_start_ns: int
    t_end_ns: int
    phases: dict[str, Phase]
    stopped: bool = False
    calls: list[CallRecord] = field(default_factory=list)

    @property
    def output_text(self) -> str:
        return "".join(c.generation.text for c in self.calls)


def _random_prompt(engine: Engine, n_tokens: int, seed: int) -> list[int]:
    """llama-bench's pp input: BOS then uniformly random token ids."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, engine.n_vocab, size=n_tokens).tolist()
    if tokens:
        tokens[0] = engine.token_bos()
    return tokens


def run_once(
    engine: Engine,
    spec: TestSpec,
    index: int,
    *,
    temperature: float = 0.0,
    stop: threading.Event | None = None,
    on_token: Callable[[TokenEvent], None] | None = None,
    on_call: Callable[[int, int], None] | None = None,
    warmup: bool = False,
) -> Repetition:
    """One repetition of a test; a warm-up is a shortened one (as llama-bench does).

    ``on_call(i, prompt_tokens)`` is told just before the i-th call of the
    repetition starts, so a listener can file the tokens that follow under it.
    """
    on_call = on_call or (lambda _i, _n: None)
    if spec.kind == "pp":
        prompt = _random_prompt(engine, spec.n_tokens, seed=index + 1)
        on_call(0, len(prompt))
        result = engine.evaluate(prompt, stop=stop)
        phases = {"pp": Phase("pp", spec.n_tokens, (Span(result.t_start_ns, result.t_end_ns),))}
        return Repetition(spec.name, index, result.t_start_ns, result.t_end_ns, phases, result.stopped)

    if spec.kind == "tg":
        n = 1 if warmup else spec.n_tokens
        on_call(0, 1)
        gen = engine.generate([engine.token_bos()], n, temperature=0.0, ignore_eos=True, stop=stop, on_token=on_token)
        end = gen.events[-1].t_ns if gen.events else gen.t_end_ns
        # n decodes (the BOS, then every sampled token but the last) in [start, last token]
        phases = {"tg": Phase("tg", len(gen.events), (Span(gen.t_start_ns, end),))} if gen.events else {}
        return Repetition(spec.name, index, gen.t_start_ns, gen.t_end_ns, phases, gen.stop_reason == "stopped",
                          [CallRecord(None, gen)])

    assert spec.workload is not None
    calls: list[CallRecord] = []
    per_call: list[dict[str, Phase]] = []
    stopped = False
    for i, call in enumerate(spec.workload.calls[:1] if warmup else spec.workload.calls):
        prompt = engine.format_chat(call.messages)
        tokens = engine.tokenize(prompt)
        on_call(i, len(tokens))
        gen = engine.generate(tokens, 1 if warmup else call.max_tokens, temperature=temperature, stop=stop,
                              on_token=on_token)
        calls.append(CallRecord(prompt, gen))
        per_call.append(split_call(gen.t_start_ns, [e.t_ns for e in gen.events], gen.prompt_tokens))
        if gen.stop_reason == "stopped":
            stopped = True
            break
    phases = {}
    for name in ("pp", "tg", "total"):
        parts = [p[name] for p in per_call if name in p]
        if parts:
            phases[name] = merge(parts)
    return Repetition(spec.name, index, calls[0].generation.t_start_ns, calls[-1].generation.t_end_ns, phases,
                      stopped, calls)


def warm_up(engine: Engine, spec: TestSpec, stop: threading.Event | None = None,
            on_call: Callable[[int, int], None] | None = None) -> None:
    """An unrecorded, shortened run: first-call costs (allocations, caches) stay out of the figures."""
    run_once(engine, spec, -1, stop=stop, on_call=on_call, warmup=True)
