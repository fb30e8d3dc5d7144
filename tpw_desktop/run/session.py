"""One measured run: engine + power sampler (+ store), from idle baseline to summary.

Data flows one way: the engine and the sampler produce timestamped events,
this module cuts windows and computes figures, a recorder persists them, and
a listener (the CLI's progress line, the measuring process's pipe to the
window) hears typed events. The same code serves ``tpw bench`` and the window.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from .. import __version__
from ..engine.llama_engine import Engine
from ..engine.workloads import TestSpec
from ..errors import TpwError
from ..metrics import IdleBaseline, phase_figures, weakest_method
from ..power import Sampler, source_summary
from ..record.results import PhaseResult
from ..record.token import TokenEvent
from .events import (
    CallStarted,
    CooldownChecked,
    RepetitionDone,
    RunEvent,
    SaveProblem,
    Status,
)
from .machine import machine_facts
from .probe import Probe, near_idle
from .results import RunReport, summarise
from .runner import Repetition, run_once, warm_up

PHASE_ORDER = ("pp", "tg", "total")

Listener = Callable[[RunEvent], None]


def _ignore(_event: RunEvent) -> None:
    pass


@dataclass(frozen=True)
class RunOptions:
    repetitions: int = 5
    warmup: bool = True
    idle_s: float = 3.0  # 0 skips the idle baseline
    # Left alone before the idle window: GPUs stay in a high power state for
    # seconds after work (MLPerf Power and ML.ENERGY cool down first).
    settle_s: float = 3.0
    delay_s: float = 0.0  # cool-down between tests, as llama-bench's --delay
    price_per_kwh: float | None = None
    currency: str = "USD"
    temperature: float = 0.0
    store_text: bool = True

    def as_dict(self) -> dict:
        return asdict(self)


class Recorder(Protocol):
    """Where a run is persisted (``store.SessionWriter``); absent with ``--no-save``.

    ``begin`` and ``finish`` raise a TpwError when the database takes no write;
    ``problem`` says why writes are failing meanwhile (the run goes on).
    """

    def begin(self, meta: dict[str, Any], sampler: Sampler) -> int: ...

    def idle(self, session_id: int, summary: dict[str, Any]) -> None: ...

    def token(
        self, session_id: int, test: str, repetition: int, call: int, event: TokenEvent, store_text: bool
    ) -> None: ...

    def repetition(
        self, session_id: int, repetition: Repetition, results: list[PhaseResult], store_text: bool
    ) -> None: ...

    def finish(self, session_id: int, status: str, summary: dict[str, Any], error: str | None = None) -> None: ...

    def problem(self) -> str | None: ...


class MeasuredRun:
    """Runs tests on an engine while a sampler measures, on the engine's thread."""

    def __init__(
        self,
        engine: Engine,
        sampler: Sampler,
        options: RunOptions = RunOptions(),
        *,
        recorder: Recorder | None = None,
        listener: Listener = _ignore,
        stop: threading.Event | None = None,
        idle: tuple[IdleBaseline | None, str | None] | None = None,
        sweep: dict | None = None,
    ):
        """``idle``: (baseline, why it is unknown) measured already (a sweep measures one for all its
        runs); ``sweep``: which sweep, variant and round this run is, for the store."""
        self.engine = engine
        self.sampler = sampler
        self.options = options
        self.recorder = recorder
        self.listener = listener
        self.stop = stop or threading.Event()
        self.report: RunReport | None = None  # also there when run() was cut short by an exception
        self._save_problem: str | None = None
        self.known_idle = idle
        self.sweep = sweep
        self.probe = Probe(sampler, listener, self.stop)

    def meta(self, tests: list[TestSpec], workload_text: dict | None = None) -> dict[str, Any]:
        engine = self.engine
        sources = [source_summary(s) for s in self.sampler.sources]
        return {
            "tool_version": __version__,
            "machine": machine_facts(),
            "model": engine.facts.as_dict(),
            "build": engine.build.as_dict(),
            "settings": {**engine.settings.__dict__, "load_ms": engine.load_ms},
            "warnings": list(engine.warnings),
            "options": self.options.as_dict(),
            "tests": [t.name for t in tests],
            "workload": workload_text,
            "power_sources": sources,
            "method": weakest_method(s["method"] for s in sources),
            "sweep": self.sweep,
        }

    def measure_idle(self) -> tuple[IdleBaseline | None, str | None]:
        """Settle, then measure idle power: the baseline, or None and why."""
        return self.probe.idle(self.options.idle_s, self.options.settle_s)

    def _cooldown(self, test: TestSpec, idle: IdleBaseline | None) -> CooldownChecked | None:
        """llama-bench's --delay between tests, then whether power came back near idle."""
        seconds = self.options.delay_s
        self.listener(Status(f"cooling down for {seconds:g} s before {test.name}"))
        span = self.probe.wait(seconds, "cooldown")
        if span is None:
            return None
        power = self.probe.recent_power_w(span[1])
        checked = CooldownChecked(
            test.name,
            seconds,
            power,
            idle.power_w if idle else None,
            near_idle(power, idle.power_w) if power is not None and idle else None,
        )
        self.listener(checked)
        return checked

    def figures_for(self, rep: Repetition, idle: IdleBaseline | None, idle_reason: str | None) -> list[PhaseResult]:
        results = []
        for name in PHASE_ORDER:
            phase = rep.phases.get(name)
            if phase is None or phase.seconds <= 0:
                continue
            window = self.probe.energy([(s.t_start_ns, s.t_end_ns) for s in phase.spans])
            figures = phase_figures(
                phase.tokens, window, idle=idle, idle_reason=idle_reason, price_per_kwh=self.options.price_per_kwh
            )
            results.append(
                PhaseResult(
                    rep.test, rep.index, name, window, figures, phase.spans[0].t_start_ns, phase.spans[-1].t_end_ns
                )
            )
        return results

    def run(self, tests: list[TestSpec], workload_text: dict | None = None) -> RunReport:
        """Settle and idle baseline, then each test's warm-up and repetitions; never raises for a stop."""
        if not self.sampler.running:
            raise RuntimeError("start the sampler before the run")
        self.probe.now_with_samples()
        self.check_fits(tests)
        report = self.report = RunReport(self.meta(tests, workload_text), idle=None)
        session_id = self.recorder.begin(report.meta, self.sampler) if self.recorder else None
        report.session_id = session_id
        reps: list[Repetition] = []
        try:
            if self.known_idle is not None:
                report.idle, report.idle_reason = self.known_idle
            else:
                report.idle, report.idle_reason = self.measure_idle()
            if self.recorder:
                self.recorder.idle(session_id, report.summary_row())
            for number, test in enumerate(tests):
                if self.stop.is_set():
                    break
                if number and self.options.delay_s > 0:
                    checked = self._cooldown(test, report.idle)
                    if checked:
                        report.cooldowns.append(checked)
                self._run_test(test, session_id, report, reps)
            report.status = "cancelled" if self.stop.is_set() else "completed"
        except Exception as exc:
            report.status, report.error = "failed", f"{type(exc).__name__}: {exc}"
            raise
        except BaseException:  # a second Ctrl-C: the run was cut short, not broken
            report.status, report.error = "interrupted", "interrupted by the user"
            raise
        finally:
            report.summaries = summarise(
                report.results, reps, report.idle, report.idle_reason, self.options.price_per_kwh
            )
            report.sampler = self.sampler.stats().as_dict()
            if self.recorder:
                try:
                    self.recorder.finish(session_id, report.status, report.summary_row(), report.error)
                except TpwError as exc:  # the measurement stands; the caller shows it and saves it elsewhere
                    report.save_error = str(exc)
        return report

    def check_fits(self, tests: list[TestSpec]) -> None:
        """Every call of every test fits the context: said now, not after the idle baseline."""
        n_ctx = self.engine.n_ctx
        for test in tests:
            needed = self.engine.tokens_needed(test)
            if needed > n_ctx:
                raise TpwError(
                    f"{test.name} needs {needed} tokens of context, but the model was loaded with "
                    f"{n_ctx}: raise the context size (--ctx)"
                )

    def _run_test(self, test: TestSpec, session_id: int | None, report: RunReport, reps: list[Repetition]) -> None:
        if self.options.warmup:
            self.listener(Status(f"{test.name}: warm-up"))
            warm_up(self.engine, test, self.stop, emit=self.listener)
        for i in range(self.options.repetitions):
            if self.stop.is_set():
                return
            self.listener(Status(f"{test.name}: repetition {i + 1}/{self.options.repetitions}"))
            rep = self._repetition(test, i, session_id)
            if rep.stopped:
                return
            results = self.figures_for(rep, report.idle, report.idle_reason)
            reps.append(rep)
            report.results.extend(results)
            if self.recorder:
                self.recorder.repetition(session_id, rep, results, self.options.store_text)
                self._report_save_problem()
            self.listener(RepetitionDone(rep.test, rep.index, tuple(results)))

    def _report_save_problem(self) -> None:
        problem = self.recorder.problem()
        if problem and problem != self._save_problem:
            self.listener(
                SaveProblem(
                    f"the session database is not taking writes ({problem}): the run goes on, "
                    "and its results will be shown and kept"
                )
            )
        self._save_problem = problem

    def _repetition(self, test: TestSpec, index: int, session_id: int | None) -> Repetition:
        """One repetition, with its tokens streamed to the listener and the recorder."""
        call = 0

        def emit(event: RunEvent) -> None:
            nonlocal call
            if isinstance(event, TokenEvent):
                if self.recorder:
                    self.recorder.token(session_id, test.name, index, call, event, self.options.store_text)
            elif isinstance(event, CallStarted):
                call = event.call
            self.listener(event)

        return run_once(self.engine, test, index, temperature=self.options.temperature, stop=self.stop, emit=emit)
