"""One measured run: engine + power sampler (+ store), from idle baseline to summary.

Data flows one way: the engine and the sampler produce timestamped events,
this module cuts windows and computes figures, a recorder persists them, and
a listener (the CLI's progress line, the measuring process's pipe to the
window) hears typed events. The same code serves ``tpw bench`` and the window.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ..engine.llama_engine import Engine
from ..engine.workloads import TestSpec, workload_text
from ..errors import TpwError
from ..metrics import IdleBaseline, phase_figures
from ..power import Sampler
from ..record.calls import TokenEvent
from ..record.meta import RunOptions, SweepTag
from ..record.results import CooldownChecked, ResultRow
from .events import CallStarted, Caution, RepetitionDone, RunEvent, Status
from .meta import run_meta
from .probe import Probe, near_idle
from .recording import Recorder, SaveWatch, recording
from .results import PhaseResult, RunReport, summarise
from .runner import Repetition, run_once, warm_up

PHASE_ORDER = ("pp", "tg", "total")
DEFAULT_OPTIONS = RunOptions()

Listener = Callable[[RunEvent], None]


def _ignore(_event: RunEvent) -> None:
    pass


class MeasuredRun:
    """Runs tests on an engine while a sampler measures, on the engine's thread."""

    def __init__(
        self,
        engine: Engine,
        sampler: Sampler,
        options: RunOptions = DEFAULT_OPTIONS,
        *,
        recorder: Recorder | None = None,
        listener: Listener = _ignore,
        stop: threading.Event | None = None,
        idle: tuple[IdleBaseline | None, str | None] | None = None,
        sweep: SweepTag | None = None,
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
        self.save_watch = SaveWatch(recorder, listener)
        self.known_idle = idle
        self.sweep = sweep
        self.probe = Probe(sampler, listener, self.stop)

    def meta(self, tests: list[TestSpec]):
        engine = self.engine
        return run_meta(
            engine.facts.ref(),
            engine.build,
            self.options,
            [t.ref() for t in tests],
            self.sampler.sources,
            settings=engine.settings,
            load_ms=engine.load_ms,
            warnings=tuple(engine.warnings),
            workload=workload_text(tests),
            sweep=self.sweep,
        )

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
            row = ResultRow(
                rep.test, rep.kind, rep.index, name, phase.spans[0].t_start_ns, phase.spans[-1].t_end_ns, figures
            )
            results.append(PhaseResult(row, window))
        return results

    def run(self, tests: list[TestSpec]) -> RunReport:
        """Settle and idle baseline, then each test's warm-up and repetitions; never raises for a stop."""
        if not self.sampler.running:
            raise RuntimeError("start the sampler before the run")
        self.probe.now_with_samples()
        self.check_fits(tests)
        report = self.report = RunReport(self.meta(tests))
        reps: list[Repetition] = []

        def summaries() -> None:
            report.summaries = summarise(
                report.results, reps, report.idle, report.idle_reason, self.options.price_per_kwh
            )

        with recording(report, self.recorder, self.sampler, self.stop, before_finish=summaries):
            if self.known_idle is not None:
                report.idle, report.idle_reason = self.known_idle
            else:
                report.idle, report.idle_reason = self.measure_idle()
            if self.recorder:
                self.recorder.idle(report.session_id, report.outcome())
            for number, test in enumerate(tests):
                if self.stop.is_set():
                    break
                if number and self.options.delay_s > 0:
                    checked = self._cooldown(test, report.idle)
                    if checked:
                        report.cooldowns.append(checked)
                self._run_test(test, report.session_id, report, reps)
        return report

    def check_fits(self, tests: list[TestSpec]) -> None:
        """Every call of every test fits the context, and is warned past the trained one: said now, not later."""
        n_ctx = self.engine.n_ctx
        trained = self.engine.facts.n_ctx_train
        for test in tests:
            needed = self.engine.tokens_needed(test)
            if needed > n_ctx:
                raise TpwError(
                    f"{test.name} needs {needed} tokens of context, but the model was loaded with "
                    f"{n_ctx}: raise the context size (--ctx)"
                )
            if trained and needed > trained:
                self.listener(
                    Caution(
                        f"{test.name} needs {needed} tokens, more than the {trained} {self.engine.facts.file_name} "
                        f"was trained on: its speed and energy are measured, but past {trained} tokens the "
                        "model runs outside its training and its text is not representative"
                    )
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
                self.recorder.rows(session_id, rep.call_rows(self.options.store_text), [r.row for r in results])
                self.save_watch.check()
            self.listener(RepetitionDone(rep.test, rep.index, tuple(r.row for r in results)))

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
