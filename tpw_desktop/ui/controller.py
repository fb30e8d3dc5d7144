"""The run controller: the window's connection to its measuring process, and its state machine.

A ``QObject`` with no widgets, so it is tested with qtbot alone. It reads
the measuring process's pipe when it has something, feeds the live series, and turns
what arrives into a handful of signals: a job started, progressed or
finished (``worker.protocol``), news from a run, text, new data, a death.
Its state changes only along ``TRANSITIONS``; a command the current state
doesn't allow is refused (the method returns False) rather than queued.
When the process dies it says so, marks the run's session interrupted (its
data stays), and can start a new process.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PySide6.QtCore import QObject, QSocketNotifier, Signal

from ..engine.workloads import TestSpec
from ..errors import TpwError
from ..power import DEFAULT_RATE_HZ, DEFAULT_TDP_W
from ..record.meta import EngineSettings, RunOptions
from ..run.events import Caution, IdleMeasured, SaveProblem, Status
from ..run.results import RunReport
from ..run.sweep import SweepPlan
from ..view.live import LiveSeries
from ..worker.client import MeasureClient, ProcessGone
from ..worker.protocol import (
    Batch,
    JobFinished,
    JobProgress,
    JobStarted,
    Loaded,
    LoadModel,
    MetricsServing,
    PowerReady,
    Quantize,
    SelectPower,
    ServeMetrics,
    SourcesFailing,
    Started,
    StartEndpoint,
    StartRun,
    StartSweep,
)
from .run_states import TRANSITIONS, Event, State


class RunController(QObject):
    state_changed = Signal(str)
    started = Signal(object)  # Started: the process's pid, its database and its llama.cpp build
    job_started = Signal(object)  # JobStarted
    job_progress = Signal(object)  # JobProgress
    job_finished = Signal(object)  # JobFinished, its result typed by its job
    news = Signal(object)  # a run's Status, IdleMeasured, SaveProblem, Caution; SourcesFailing; MetricsServing
    text_arrived = Signal(str)
    data_arrived = Signal()  # new samples or events: the charts have something to draw
    process_died = Signal(str)

    def __init__(self, db_path: Path | None, *, record: bool = True, client_factory=MeasureClient, parent=None):
        super().__init__(parent)
        self.db_path = db_path
        self.record = record
        self._client_factory = client_factory
        self.state: State = "starting"
        self.live: LiveSeries | None = None
        self.sources = ()
        self.power_spec: str | None = None
        self.model: Loaded | None = None
        self.build = None  # BuildFacts, once the process has started
        self.last_report: RunReport | None = None
        self.save_problem_text: str | None = None
        self.sampling_hz: float | None = None
        self.last_status = ""
        self._last_load: LoadModel | None = None
        self._last_power: SelectPower | None = None
        self._run_record = True
        self._reload_after_sweep = False
        self._last_metrics: ServeMetrics | None = None
        # Measuring processes are started from this one thread, made now at the window's
        # starting priority: the window may lower its own later (``app.main``), and a process
        # inherits the nice value of the thread that starts it.
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tpw-spawner")
        self.notifier: QSocketNotifier | None = None
        self.client = self._spawn()

    # --- the state machine -------------------------------------------------------------------------

    def allows(self, event: Event) -> bool:
        return (self.state, event) in TRANSITIONS

    def _go(self, event: Event) -> bool:
        """Take the transition ``event`` leads to from here; False (and no change) where none does."""
        target = TRANSITIONS.get((self.state, event))
        if target is None:
            return False
        self._set_state(("idle" if self.model is not None else "ready") if target == "at rest" else target)
        return True

    def _set_state(self, state: State) -> None:
        if state != self.state:
            self.state = state
            self.state_changed.emit(state)

    # --- commands ----------------------------------------------------------------------------

    def _send(self, command) -> bool:
        try:
            self.client.send(command)
        except ProcessGone as exc:
            self._died(exc)
            return False
        return True

    def _command(self, event: Event, command) -> bool:
        """Send a job if the state allows it, and move along ``event``; False if refused."""
        if not self.allows(event) or not self._send(command):
            return False
        return self._go(event)

    def select_power(self, spec: str, tdp_w: float = DEFAULT_TDP_W, rate_hz: float = DEFAULT_RATE_HZ) -> bool:
        if self.state in ("running", "stopping", "dead"):
            return False
        self._last_power = SelectPower(spec, tdp_w, rate_hz)
        return self._send(self._last_power)

    def load(self, path: Path, settings: EngineSettings) -> bool:
        command = LoadModel(Path(path), settings)
        if not self._command("load", command):
            return False
        self._last_load = command
        return True

    def start(self, tests: list[TestSpec], options: RunOptions) -> bool:
        """A measured run of ``tests``; with no tests, an idle measurement on its own (not saved)."""
        if self.state != "idle" or self.live is None:
            return False
        self._run_record = bool(tests) and self.record
        return self._command("run", StartRun(tuple(tests), options, record=self._run_record))

    def start_sweep(self, plan: SweepPlan) -> bool:
        """Runs the plan in the measuring process; the loaded model comes back when it ends."""
        if self.live is None:
            return False
        self._run_record = self.record
        self._reload_after_sweep = self.model is not None
        return self._command("run", StartSweep(plan))

    def start_endpoint(self, job: StartEndpoint) -> bool:
        """Measure a server (the loaded model, if any, stays loaded and idle)."""
        if self.live is None:
            return False
        self._run_record = self.record
        return self._command("run", job)

    def quantize(self, source: Path, qtype: str, output: Path | None, allow_requantize: bool) -> bool:
        return self._command("quantize", Quantize(Path(source), qtype, output, allow_requantize))

    def serve_metrics(self, port: int | None, bind: str = "127.0.0.1") -> None:
        """Prometheus metrics from the measuring process (its sampler and runs); None stops serving."""
        self._last_metrics = ServeMetrics(port, bind)
        self._send(self._last_metrics)

    def measure_idle(self, idle_s: float, settle_s: float) -> bool:
        return self.start([], RunOptions(repetitions=0, idle_s=idle_s, settle_s=settle_s, warmup=False))

    def stop(self) -> bool:
        if not self.allows("stop"):
            return False
        try:
            self.client.stop_run()
        except ProcessGone as exc:
            self._died(exc)
            return False
        return self._go("stop")

    def _spawn(self):
        """A measuring process, read when its pipe has something: no timer wakes the window in between.

        A timer polling the pipe woke this process 10 times a second through a run; on a machine
        whose cores the model keeps busy each wake-up stalls one of its threads (issue 19).
        The pipe is readable on a batch and at its end, so a process that dies is noticed as fast.
        """
        if self.notifier is not None:
            self.notifier.deleteLater()
        client = self._spawner.submit(self._client_factory, self.db_path, self.record).result()
        self.notifier = QSocketNotifier(client.fileno(), QSocketNotifier.Read, self)
        self.notifier.activated.connect(self.poll)
        return client

    def restart(self) -> None:
        """A new measuring process after the old one died: same power sources, same model."""
        if not self._go("restart"):
            return
        self._respawn()
        if self._last_load is not None:
            self.load(self._last_load.path, self._last_load.settings)

    def cancel_load(self) -> bool:
        """llama.cpp can't be interrupted while it loads a model: the measuring process is ended, and a
        new one takes its power sources, without a model. Nothing was being measured."""
        if not self._go("cancel_load"):
            return False
        self.client.kill()
        self._respawn()
        self._last_load, self.model = None, None
        return True

    def _respawn(self) -> None:
        self.notifier.setEnabled(False)
        self.client.close(timeout_s=1)
        self.client = self._spawn()
        for command in (self._last_power, self._last_metrics):
            if command is not None:
                self._send(command)

    def close(self) -> None:
        self.notifier.setEnabled(False)
        self.client.close()
        self._spawner.shutdown(wait=False)

    # --- what arrives --------------------------------------------------------------------------

    def poll(self) -> None:
        if self.state == "dead":
            self.notifier.setEnabled(False)  # the pipe's end stays readable: stop hearing it
            return
        try:
            batches = self.client.receive()
        except ProcessGone as exc:
            self._died(exc)
            return
        for batch in batches:
            self._take(batch)
        if batches:
            self.data_arrived.emit()

    def _take(self, batch: Batch) -> None:
        if batch.sampling_hz is not None:
            self.sampling_hz = batch.sampling_hz
        events = []
        for item in batch.items:  # in order: the run's events up to each job message are fed before it
            handler = self._HANDLERS.get(type(item))
            if handler is None:
                events.append(item)
                continue
            if events:
                self._feed(events)
                events = []
            handler(self, item)
        if events:
            self._feed(events)
        if self.live is not None:
            for block in batch.samples:
                self.live.add_samples(block.source, block.t_ns, block.power_w, block.energy_j)

    def _feed(self, events: list) -> None:
        for event in events:
            if isinstance(event, Status):
                self.last_status = event.message
                self.news.emit(event)
            elif isinstance(event, IdleMeasured):
                if event.baseline is not None and self.live is not None:
                    self.live.idle = event.baseline
                self.news.emit(event)
            elif isinstance(event, SaveProblem):
                self.save_problem_text = event.message
                self.news.emit(event)
            elif isinstance(event, Caution):
                self.news.emit(event)
        text = "".join(self.live.feed(events)) if self.live is not None else ""
        if text:
            self.text_arrived.emit(text)

    def _on_started(self, item: Started) -> None:
        self.build = item.build
        if item.save_problem:
            self.save_problem_text = item.save_problem
        self.started.emit(item)
        self._go("started")

    def _on_job_started(self, item: JobStarted) -> None:
        if item.job in ("run", "endpoint", "sweep") and self.live is not None and item.detail:
            self.live.run_started(item.t_ns)
        if item.job == "sweep":
            self.model = None  # closed for the sweep; it is loaded again when the sweep ends
        self.job_started.emit(item)

    def _on_job_progress(self, item: JobProgress) -> None:
        self.job_progress.emit(item)

    def _on_job_finished(self, item: JobFinished) -> None:
        handle = {"power": self._power_done, "load": self._load_done, "quantize": self._quantize_done}
        handle.get(item.job, self._run_done)(item)
        self.job_finished.emit(item)

    def _power_done(self, item: JobFinished) -> None:
        ready = item.result
        if isinstance(ready, PowerReady):
            self.sources = ready.sources
            if ready.chosen:  # a restart brings back the user's choice, not a swap made for a server
                self.power_spec = ready.spec
            self.live = LiveSeries(
                [(s.name, s.method) for s in ready.sources],
                ready.t_ns,
                resolutions_s=[s.resolution_s for s in ready.sources],
                still_means_zero=[s.still_counter_means_zero for s in ready.sources],
            )

    def _load_done(self, item: JobFinished) -> None:
        if isinstance(item.result, Loaded):
            self.model = item.result
            self._go("loaded")
            return
        if item.still_loaded is None:
            self.model = None
        self._go("unloaded")

    def _quantize_done(self, _item: JobFinished) -> None:
        self._go("quantized")

    def _run_done(self, item: JobFinished) -> None:
        self._close_live_run()
        if item.job == "run" and isinstance(item.result, RunReport) and item.result.meta.tests:
            self.last_report = item.result
        if item.job == "sweep":
            self._go("sweep_ran" if self._reload_after_sweep else "ran")
        else:
            self._go("ran")

    def _on_sources_failing(self, item: SourcesFailing) -> None:
        self.news.emit(item)

    def _on_metrics_serving(self, item: MetricsServing) -> None:
        self.news.emit(item)

    _HANDLERS = {
        Started: _on_started,
        JobStarted: _on_job_started,
        JobProgress: _on_job_progress,
        JobFinished: _on_job_finished,
        SourcesFailing: _on_sources_failing,
        MetricsServing: _on_metrics_serving,
    }

    def _close_live_run(self) -> None:
        if self.live is not None and self.live.run_start_ns is not None and self.live.run_end_ns is None:
            self.live.run_ended(time.monotonic_ns())

    def _died(self, exc: ProcessGone) -> None:
        was_running = self.state in ("running", "stopping")
        self._close_live_run()
        self._go("died")
        message = str(exc)
        if was_running and self._run_record and self.db_path is not None:
            message += "; " + self._recover()
        self.process_died.emit(message)

    def _recover(self) -> str:
        """Mark the dead process's session interrupted now (its samples and tokens stay)."""
        from ..store import Store

        try:
            with Store(self.db_path) as store:
                ids = store.recover_interrupted()
        except TpwError as exc:
            return f"its session could not be marked ({exc})"
        return (
            f"session {', '.join(map(str, ids))} was saved as interrupted, with what it measured"
            if ids
            else "no session was open"
        )
