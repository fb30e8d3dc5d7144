"""Measure a server tpw didn't start: a workload over HTTP at 1..N concurrent clients, against local power.

Each concurrency level is one window: from the first request sent to the
last stream finished, its energy is the sampler's (counter differenced, or
power integrated) and its tokens are every client's generated tokens. So
tokens/J at 4 clients is the batch's, which is where servers gain
efficiency; single-stream figures alone mislead. Every token is stamped on
the sampler's clock as its chunk arrives (time to first token, inter-token
latency). A failed request ends the run: the levels that finished and the
failure are kept, the session saved as failed with the reason.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from .. import __version__
from ..engine.workloads import Workload
from ..errors import TpwError
from ..metrics import IdleBaseline, latency, phase_figures, weakest_method
from ..peers.openai_server import Completion, Endpoint, EndpointError
from ..power import source_summary
from ..record.results import TestSummary
from ..record.token import TokenEvent
from .events import RunEvent, Status
from .machine import machine_facts
from .probe import Probe
from .session import RunOptions


def blind_to_servers(sources) -> list[str]:
    """Sources that count only tpw's own process (``estimate-process``): a server's work never reaches them."""
    return [s.name for s in sources if getattr(s, "scope", "machine") == "process"]


@dataclass(frozen=True)
class Level:
    """One concurrency level's window and figures."""

    concurrency: int
    completions: tuple[Completion, ...]
    summary: TestSummary
    counted_by: str  # "server usage", "counted chunks", or both, comma-separated
    prompt_tokens: int | None

    @property
    def cut_short(self) -> int:
        """Streams that ended ([DONE]) without a finish reason: the server stopped them, not the model."""
        return sum(1 for c in self.completions if c.finish_reason is None)

    def as_dict(self) -> dict:
        return {
            **self.summary.as_dict(),
            "concurrency": self.concurrency,
            "requests": len(self.completions),
            "counted_by": self.counted_by,
            "prompt_tokens": self.prompt_tokens,
            "cut_short": self.cut_short,
        }


def clients(n: int) -> str:
    return f"{n} client{'s' if n != 1 else ''}"


def levels_table(levels: Sequence[dict], *, brief: bool = False, tablefmt: str = "github") -> str:
    """The tokens/J-against-clients table from ``Level.as_dict()`` rows; a missing figure says why.

    ``brief``: clients, t/s, W, tok/J and method only, for the window's output pane.
    """
    from tabulate import tabulate

    rows = []
    for lv in levels:
        latency = lv.get("latency") or {}

        def fig(value, digits, key=None, lv=lv):
            return f"{value:.{digits}f}" if value is not None else f"n/a ({lv['unknown'].get(key, 'unknown')})"

        method = lv["method"] + ("" if lv["confident"] else " (low confidence)")
        speed, watts = fig(lv["tokens_per_s_mean"], 1), fig(lv["average_w"], 1, "average_w")
        tok_j = fig(lv["tokens_per_j"], 3, "tokens_per_j")
        rows.append(
            [lv["concurrency"], speed, watts, tok_j, method]
            if brief
            else [
                lv["concurrency"],
                lv["requests"],
                lv["total_tokens"],
                speed,
                watts,
                tok_j,
                fig(lv["j_per_token"], 4, "j_per_token"),
                fig(latency.get("time_to_first_token_s"), 3),
                fig(latency.get("inter_token_p50_ms"), 1),
                lv["counted_by"],
                method,
            ]
        )
    headers = (
        ["clients", "t/s", "W", "tok/J", "method"]
        if brief
        else [
            "clients",
            "requests",
            "tokens",
            "t/s",
            "W",
            "tok/J",
            "J/tok",
            "TTFT s",
            "ITL p50 ms",
            "tokens from",
            "method",
        ]
    )
    return tabulate(rows, headers, tablefmt=tablefmt, disable_numparse=True)


def cut_short_note(levels: Sequence[dict]) -> str | None:
    """What to tell a user whose server cut streams short (``Level.as_dict()`` rows); None if none was."""
    cut = [
        f"{lv['cut_short']} of {lv['requests']} at {clients(lv['concurrency'])}" for lv in levels if lv.get("cut_short")
    ]
    if not cut:
        return None
    return (
        f"streams ended without a finish reason ({', '.join(cut)}): the server cut them short, so those levels "
        "did less work than asked (llama_cpp.server does this when a new request arrives; start it with "
        "--interrupt_requests False to measure concurrency)"
    )


@dataclass
class EndpointReport:
    url: str
    model: str
    workload: str
    levels: list[Level] = field(default_factory=list)
    idle: IdleBaseline | None = None
    idle_reason: str | None = None
    session_id: int | None = None
    status: str = "running"
    error: str | None = None


def concurrency_levels(most: int) -> list[int]:
    """1, 2, 4, … and ``most`` itself: the points of the tokens/J-against-concurrency curve."""
    levels, c = [], 1
    while c < most:
        levels.append(c)
        c *= 2
    return [*levels, most]


def level_name(workload: str, concurrency: int) -> str:
    return f"{workload}@c{concurrency}"


class EndpointBench:
    def __init__(
        self,
        endpoint: Endpoint,
        model: str,
        workload: Workload,
        levels: Sequence[int],
        sampler,
        options: RunOptions,
        *,
        repetitions: int = 1,
        recorder=None,
        listener: Callable[[RunEvent], None] = lambda e: None,
        stop: threading.Event | None = None,
    ):
        """Each of ``c`` clients runs the workload's calls ``repetitions`` times, all at once."""
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

    def meta(self) -> dict:
        sources = [source_summary(s) for s in self.sampler.sources]
        return {
            "tool_version": __version__,
            "machine": machine_facts(),
            "model": {
                "path": f"{self.endpoint.url}#{self.model}",
                "file_name": self.model,
                "name": self.model,
                "architecture": "endpoint",
                "quantization": "?",
                "endpoint": self.endpoint.url,
            },
            "build": {"llama_cpp_python_version": "endpoint", "gpu_offload_supported": False},
            "settings": {
                "endpoint": self.endpoint.url,
                "api_model": self.model,
                "concurrency": self.levels,
                "repetitions_per_client": self.repetitions,
            },
            "warnings": [],
            "options": self.options.as_dict(),
            "tests": [level_name(self.workload.name, c) for c in self.levels],
            "workload": {self.workload.name: [c.messages for c in self.workload.calls]},
            "power_sources": sources,
            "method": weakest_method(s["method"] for s in sources),
            "sweep": None,
        }

    def run(self) -> EndpointReport:
        report = EndpointReport(self.endpoint.url, self.model, self.workload.name)
        if not self.sampler.running:
            self.sampler.start()
        session_id = self.recorder.begin(self.meta(), self.sampler) if self.recorder else None
        report.session_id = session_id
        try:
            report.idle, report.idle_reason = self.probe.idle(self.options.idle_s, self.options.settle_s)
            if self.recorder and session_id is not None:
                self.recorder.idle(session_id, self._summary_row(report))
            for c in self.levels:
                if self.stop.is_set():
                    break
                report.levels.append(self._level(c, report, session_id))
            report.status = "cancelled" if self.stop.is_set() else "completed"
        except EndpointError as exc:
            report.status, report.error = "failed", str(exc)
        finally:
            if report.status == "running":
                report.status, report.error = "interrupted", "interrupted by the user"
            if self.recorder and session_id is not None:
                self.recorder.finish(session_id, report.status, self._summary_row(report), report.error)
        return report

    def _client(self, index: int, concurrency: int) -> list[Completion]:
        done = []
        for _ in range(self.repetitions):
            for call in self.workload.calls:
                if self.stop.is_set():
                    return done
                done.append(
                    self.endpoint.chat(
                        self.model,
                        call.messages,
                        call.max_tokens,
                        self.options.temperature,
                        on_chunk=self._chunk_listener(len(done), concurrency),
                    )
                )
        return done

    def _chunk_listener(self, call: int, concurrency: int):
        """Each chunk as a token event (its text only from a single client: several would interleave)."""

        def heard(t_ns: int, text: str) -> None:
            self.listener(TokenEvent(t_ns, call, -1, text if concurrency == 1 else ""))

        return heard

    def _level(self, concurrency: int, report: EndpointReport, session_id: int | None) -> Level:
        self.listener(Status(f"{clients(concurrency)}: sending {self.workload.name} to {self.endpoint.url}"))
        t0 = time.monotonic_ns()
        with ThreadPoolExecutor(concurrency, thread_name_prefix="tpw-client") as pool:
            futures = [pool.submit(self._client, i, concurrency) for i in range(concurrency)]
        failure = next((f.exception() for f in futures if f.exception() is not None), None)
        if failure is not None:
            if isinstance(failure, EndpointError):
                raise EndpointError(f"at {clients(concurrency)}: {failure}", failure.partial)
            raise failure
        completions = tuple(c for f in futures for c in f.result())
        if not completions:
            raise TpwError("no request finished")
        t1 = max(c.t_done_ns for c in completions)
        self.sampler.wait_until(t1)
        window = self.probe.energy([(t0, t1)])
        tokens = sum(c.tokens for c in completions)
        figures = phase_figures(
            tokens, window, idle=report.idle, idle_reason=report.idle_reason, price_per_kwh=self.options.price_per_kwh
        )
        name = level_name(self.workload.name, concurrency)
        summary = TestSummary(
            name,
            "total",
            1,
            tokens,
            (figures.tokens_per_s, None),
            figures,
            {},
            latency([(c.t_sent_ns, c.chunk_times_ns) for c in completions]).as_dict(),
        )
        counted = ", ".join(sorted({c.counted_by for c in completions}))
        prompts = [c.prompt_tokens for c in completions]
        level = Level(concurrency, completions, summary, counted, None if None in prompts else sum(prompts))
        if self.recorder and session_id is not None:
            self._record(session_id, level, t0, t1)
        return level

    def _record(self, session_id: int, level: Level, t0: int, t1: int) -> None:
        name = level.summary.test
        for i, c in enumerate(level.completions):
            for k, t in enumerate(c.chunk_times_ns):
                self.recorder.token(session_id, name, 0, i, TokenEvent(t, k, -1, ""), False)
        calls = [
            {
                "test": name,
                "repetition": 0,
                "call": i,
                "t_start_ns": c.t_sent_ns,
                "t_end_ns": c.t_done_ns,
                "prompt_tokens": c.prompt_tokens,
                "generated_tokens": c.tokens,
                "stop_reason": c.finish_reason,
                "prompt_text": None,
                "output_text": c.text if self.options.store_text else None,
                "perf": None,
            }
            for i, c in enumerate(level.completions)
        ]
        row = {
            "test": name,
            "repetition": 0,
            "phase": "total",
            "t_start_ns": t0,
            "t_end_ns": t1,
            **level.summary.pooled.as_dict(),
        }
        self.recorder.rows(session_id, calls, [row])

    def _summary_row(self, report: EndpointReport) -> dict:
        return {
            "idle": None if report.idle is None else asdict(report.idle),
            "idle_reason": report.idle_reason,
            "sampler": self.sampler.stats().as_dict(),
            "summary": [lv.as_dict() for lv in report.levels],
        }
