"""Measure a server tpw didn't start: a workload over HTTP at 1..N concurrent clients, against local power.

Each concurrency level is one window: from the first request sent to the
last stream finished, its energy is the sampler's (counter differenced, or
power integrated) and its tokens are every client's generated tokens. So
tokens/J at 4 clients is the batch's, which is where servers gain
efficiency; single-stream figures alone mislead. Every token is stamped on
the sampler's clock as its chunk arrives (time to first token from the
request's sending, inter-token latency).

The server is a peer, not trusted: its ``usage`` counts are used only when
plausible (``counted_tokens``), else the content chunks are counted and the
level says why. A failed request ends the run: the levels that finished and
the failure are kept, the session saved as failed with the reason. A Stop
cuts the requests in flight at once; the level they belonged to is dropped
(its window holds work whose tokens never arrived).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

from ..engine.workloads import Workload
from ..errors import TpwError
from ..metrics import latency, phase_figures
from ..peers.openai_server import Completion, Endpoint, ServerError, Stopped
from ..power import Sampler
from ..record.calls import CallRow, TokenEvent
from ..record.meta import BuildFacts, ModelRef, RunMeta, RunOptions, ServerTarget, TestRef
from ..record.results import ResultRow, ServerLevel, TestSummary
from .events import PhaseEnded, RunEvent, Status
from .meta import run_meta
from .probe import Probe
from .recording import Recorder, recording
from .results import PhaseResult, RunReport

SERVER_BUILD = BuildFacts("endpoint", False, "a server tpw didn't start")
# A prompt's tokens can't outnumber its bytes; the chat template adds at most this many.
TEMPLATE_TOKENS = 1024
# OpenAI's finish reasons as tpw's stop reasons ("stop": the model ended the text).
FINISH_REASONS = {"stop": "eos", "length": "length"}


def blind_to_servers(sources) -> list[str]:
    """Sources that count only tpw's own process (``estimate-process``): a server's work never reaches them."""
    return [s.name for s in sources if getattr(s, "scope", "machine") == "process"]


def clients(n: int) -> str:
    return f"{n} client{'s' if n != 1 else ''}"


def concurrency_levels(most: int) -> list[int]:
    """1, 2, 4, … and ``most`` itself: the points of the tokens/J-against-concurrency curve."""
    levels, c = [], 1
    while c < most:
        levels.append(c)
        c *= 2
    return [*levels, most]


def level_name(workload: str, concurrency: int) -> str:
    return f"{workload}@c{concurrency}"


def chunk_tolerance(chunks: int) -> int:
    """How far a server's count may fall below its content chunks: each chunk with text carries at least
    one token's, but a server may count the last one apart (1, or 5% of a long stream)."""
    return max(1, math.floor(0.05 * chunks))


class Counted(NamedTuple):
    tokens: int
    by: str  # "server usage" or "counted chunks"
    note: str | None  # why the server's count was not used, when it sent one


def counted_tokens(c: Completion, max_tokens: int) -> Counted:
    """A request's generated tokens: the server's ``usage`` when it is plausible, else its content chunks.

    Plausible: a non-negative integer, no more than ``max_tokens`` asked for, and no fewer than the
    content chunks less ``chunk_tolerance`` (a chunk may carry several tokens, never less than one).
    """
    chunks = len(c.chunk_times_ns)
    if c.usage_problem:
        return Counted(chunks, "counted chunks", c.usage_problem)
    told = c.usage.completion_tokens if c.usage else None
    if told is None:
        return Counted(chunks, "counted chunks", None)
    if told > max_tokens:
        return Counted(chunks, "counted chunks", f"usage said {told} tokens, more than the {max_tokens} asked for")
    if told < chunks - chunk_tolerance(chunks):
        return Counted(chunks, "counted chunks", f"usage said {told} tokens for {chunks} content chunks")
    return Counted(told, "server usage", None)


def prompt_tokens(c: Completion, prompt_bytes: int) -> int | None:
    """The server's prompt count when it can be true (no more than the prompt's bytes and a template)."""
    told = c.usage.prompt_tokens if c.usage and not c.usage_problem else None
    return told if told is not None and told <= prompt_bytes + TEMPLATE_TOKENS else None


class EndpointBench:
    def __init__(
        self,
        endpoint: Endpoint,
        model: str,
        workload: Workload,
        levels: Sequence[int],
        sampler: Sampler,
        options: RunOptions,
        *,
        repetitions: int = 1,
        recorder: Recorder | None = None,
        listener: Callable[[RunEvent], None] = lambda e: None,
        stop: threading.Event | None = None,
    ):
        """Each of ``c`` clients runs the workload's calls ``repetitions`` times, all at once. ``stop``
        should be the one ``endpoint`` was made with, so a Stop cuts the requests in flight."""
        blind = blind_to_servers(sampler.sources)
        if blind:  # its joules would be tpw's HTTP client's, reported as the server's
            raise TpwError(
                f"{', '.join(blind)} counts only tpw's own CPU time, not the server's: measure a server "
                "with --power estimate (the whole machine's CPU) or a power sensor"
            )
        self.endpoint, self.model, self.workload = endpoint, model, workload
        self.levels, self.sampler, self.options = list(levels), sampler, options
        self.repetitions, self.recorder, self.listener = repetitions, recorder, listener
        self.stop = stop or threading.Event()
        self.probe = Probe(sampler, listener, self.stop)
        self._failed = threading.Event()  # a client failed: the others send nothing more

    def meta(self) -> RunMeta:
        url = self.endpoint.url
        model = ModelRef(f"{url}#{self.model}", self.model, self.model, "endpoint", "?", server=url)
        target = ServerTarget(url, self.model, tuple(self.levels), self.repetitions)
        tests = [TestRef(level_name(self.workload.name, c), "server") for c in self.levels]
        text = {self.workload.name: [list(c.messages) for c in self.workload.calls]}
        return run_meta(model, SERVER_BUILD, self.options, tests, self.sampler.sources, server=target, workload=text)

    def run(self) -> RunReport:
        """Every level in turn; a server's failure ends the run as ``failed`` with the reason, never raised."""
        if not self.sampler.running:
            self.sampler.start()
        report = RunReport(self.meta())
        try:
            with recording(report, self.recorder, self.sampler, self.stop):
                report.idle, report.idle_reason = self.probe.idle(self.options.idle_s, self.options.settle_s)
                if self.recorder and report.session_id is not None:
                    self.recorder.idle(report.session_id, report.outcome())
                for c in self.levels:
                    if self.stop.is_set():
                        break
                    level = self._level(c, report)
                    if level is not None:
                        report.summaries.append(level)
        except ServerError:
            pass  # the report holds the failure and the levels that finished
        return report

    def _client(self, concurrency: int) -> list[Completion]:
        done: list[Completion] = []
        for _ in range(self.repetitions):
            for call in self.workload.calls:
                if self.stop.is_set() or self._failed.is_set():
                    return done
                try:
                    done.append(
                        self.endpoint.chat(
                            self.model,
                            list(call.messages),
                            call.max_tokens,
                            self.options.temperature,
                            on_chunk=self._chunk_listener(len(done), concurrency),
                        )
                    )
                except Stopped:
                    return done
                except BaseException:
                    self._failed.set()
                    raise
        return done

    def _chunk_listener(self, call: int, concurrency: int):
        """Each chunk as a token event (its text only from a single client: several would interleave)."""

        def heard(t_ns: int, text: str) -> None:
            self.listener(TokenEvent(t_ns, call, -1, text if concurrency == 1 else ""))

        return heard

    def _level(self, concurrency: int, report: RunReport) -> TestSummary | None:
        """One level's summary, or None when a Stop cut it short."""
        self.listener(Status(f"{clients(concurrency)}: sending {self.workload.name} to {self.endpoint.url}"))
        t0 = time.monotonic_ns()
        with ThreadPoolExecutor(concurrency, thread_name_prefix="tpw-client") as pool:
            futures = [pool.submit(self._client, concurrency) for _ in range(concurrency)]
        failure = next((f.exception() for f in futures if f.exception() is not None), None)
        if failure is not None:
            if isinstance(failure, ServerError):
                raise ServerError(f"at {clients(concurrency)}: {failure}", failure.partial)
            raise failure
        if self.stop.is_set():
            return None
        completions = [c for f in futures for c in f.result()]
        t1 = max(c.t_done_ns for c in completions)
        window = self.probe.energy([(t0, t1)])
        calls = [(c, msgs, max_tokens) for c, (msgs, max_tokens) in zip(completions, self._asked(concurrency))]
        counts = [counted_tokens(c, max_tokens) for c, _, max_tokens in calls]
        tokens = sum(n.tokens for n in counts)
        figures = phase_figures(
            tokens, window, idle=report.idle, idle_reason=report.idle_reason, price_per_kwh=self.options.price_per_kwh
        )
        prompts = [prompt_tokens(c, len(str(msgs).encode())) for c, msgs, _ in calls]
        per_chunk = any(
            n.by == "server usage" and n.tokens != len(c.chunk_times_ns) for n, c in zip(counts, completions)
        )
        notes = sorted({n.note for n in counts if n.note})
        level = ServerLevel(
            concurrency=concurrency,
            requests=len(completions),
            counted_by=", ".join(sorted({n.by for n in counts})),
            count_note="; ".join(notes) or None,
            prompt_tokens=None if None in prompts else sum(prompts),
            cut_short=sum(1 for c in completions if c.finish_reason is None),
            inter_token_basis="chunk" if per_chunk else "token",
        )
        name = level_name(self.workload.name, concurrency)
        summary = TestSummary(
            test=name,
            kind="server",
            phase="total",
            repetitions=1,
            tokens_per_repetition=tokens,
            tokens_per_s_mean=figures.tokens_per_s,
            tokens_per_s_sd=None,
            pooled=figures,
            latency=latency([(c.t_sent_ns, c.chunk_times_ns) for c in completions]),
            level=level,
        )
        row = ResultRow(name, "server", 0, "total", t0, t1, figures)
        report.results.append(PhaseResult(row, window))
        self.listener(PhaseEnded(name, 0, 0, "total", t0, t1, tokens, "server"))
        if self.recorder and report.session_id is not None:
            self._record(report.session_id, name, completions, counts, row)
        return summary

    def _asked(self, concurrency: int) -> list[tuple[list[dict], int]]:
        """(messages, max_tokens) of every request of a level, in the order the completions are listed."""
        calls = [(list(c.messages), c.max_tokens) for c in self.workload.calls] * self.repetitions
        return calls * concurrency

    def _record(
        self, session_id: int, name: str, completions: list[Completion], counts: list[Counted], row: ResultRow
    ) -> None:
        for i, c in enumerate(completions):
            for k, t in enumerate(c.chunk_times_ns):
                self.recorder.token(session_id, name, 0, i, TokenEvent(t, k, -1, ""), False)
        calls = [
            CallRow(
                test=name,
                repetition=0,
                call=i,
                t_start_ns=c.t_sent_ns,
                t_end_ns=c.t_done_ns,
                prompt_tokens=None,
                generated_tokens=n.tokens,
                stop_reason=FINISH_REASONS.get(c.finish_reason or ""),
                prompt_text=None,
                output_text=c.text if self.options.store_text else None,
            )
            for i, (c, n) in enumerate(zip(completions, counts))
        ]
        self.recorder.rows(session_id, calls, [row])
