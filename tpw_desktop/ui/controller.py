"""The run controller: the window's connection to its measuring process, and the run's state.

A ``QObject`` with no widgets, so it is tested with qtbot alone. It polls
the measuring process's pipe on a timer, feeds the live series, and turns
what arrives into Qt signals. When the process dies it says so, marks the
run's session interrupted (its data stays), and can start a new process.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from ..engine.settings import EngineSettings
from ..engine.workloads import TestSpec
from ..errors import TpwError
from ..power import DEFAULT_RATE_HZ, DEFAULT_TDP_W
from ..run.events import IdleMeasured, SaveProblem, Status
from ..run.results import RunReport
from ..run.session import RunOptions
from ..run.sweep import SweepPlan, SweepProgress
from ..view.live import LiveSeries
from ..worker.client import MeasureClient, ProcessGone
from ..worker.protocol import (
    Batch,
    EndpointFinished,
    Loaded,
    LoadFailed,
    Loading,
    LoadModel,
    MetricsServing,
    PowerFailed,
    PowerReady,
    Quantize,
    QuantizeFailed,
    QuantizeFinished,
    QuantizeProgress,
    RunFailed,
    RunFinished,
    RunStarted,
    SelectPower,
    ServeMetrics,
    SourcesFailing,
    Started,
    StartEndpoint,
    StartRun,
    StartSweep,
    SweepFinished,
    SweepStarted,
)

# The pipe is read this often: the process sends 4 batches a second while a run streams, 2 otherwise
# (and a state change at once).
STREAMING_POLL_MS = 100
IDLE_POLL_MS = 250

# States: starting (the process is starting), ready (no model), loading, idle (a model, no run),
# running (a run or a sweep), stopping, quantizing, dead (the process died; restart() starts a new one).
STATES = ("starting", "ready", "loading", "idle", "running", "stopping", "quantizing", "dead")


class RunController(QObject):
    state_changed = Signal(str)
    started = Signal(object)  # Started: the process's pid and its llama.cpp build
    status = Signal(str)
    power_ready = Signal(object)  # PowerReady
    power_failed = Signal(str)
    loading = Signal(str, str)  # file name, stage
    loaded = Signal(object)  # Loaded
    load_failed = Signal(object)  # LoadFailed
    run_started = Signal(object)  # RunStarted
    run_finished = Signal(object)  # RunReport
    run_failed = Signal(str, object)  # message, the partial RunReport or None
    idle_measured = Signal(object)  # IdleMeasured
    sources_failing = Signal(object)  # SourcesFailing
    save_problem = Signal(str)
    text_arrived = Signal(str)
    data_arrived = Signal()  # new samples or events: the charts have something to draw
    process_died = Signal(str)
    sweep_progress = Signal(object)  # SweepProgress
    sweep_finished = Signal(object)  # SweepFinished
    quantize_progress = Signal(int, int)  # tensors done, of
    quantize_finished = Signal(object, str)  # the new file's Path, what was made
    quantize_failed = Signal(str)
    metrics_serving = Signal(object)  # MetricsServing
    endpoint_finished = Signal(object)  # EndpointFinished

    def __init__(self, db_path: Path | None, *, record: bool = True, client_factory=MeasureClient, parent=None):
        super().__init__(parent)
        self.db_path = db_path
        self.record = record
        self._client_factory = client_factory
        self.state = "starting"
        self.live: LiveSeries | None = None
        self.sources = ()
        self.power_spec: str | None = None
        self.model: Loaded | None = None
        self.build = None  # BuildFacts, once the process has started
        self.last_report: RunReport | None = None
        self.save_problem_text: str | None = None
        self.sampling_hz: float | None = None
        self.last_status = ""
        self._pending_path: Path | None = None
        self._last_load: LoadModel | None = None
        self._last_power: SelectPower | None = None
        self._run_record = True
        self._reload_after_sweep = False
        self._last_metrics: ServeMetrics | None = None
        # Measuring processes are started from this one thread, made now at the window's
        # starting priority: the window may lower its own later (``app.main``), and a process
        # inherits the nice value of the thread that starts it.
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tpw-spawner")
        self.client = self._spawn()
        self.timer = QTimer(self)
        self.timer.setInterval(STREAMING_POLL_MS)  # starting: answers are expected soon
        self.timer.timeout.connect(self.poll)
        self.timer.start()

    # --- commands ----------------------------------------------------------------------------

    def _send(self, command) -> bool:
        try:
            self.client.send(command)
        except ProcessGone as exc:
            self._died(exc)
            return False
        return True

    def select_power(self, spec: str, tdp_w: float = DEFAULT_TDP_W, rate_hz: float = DEFAULT_RATE_HZ) -> None:
        if self.state in ("running", "stopping"):
            return
        self._last_power = SelectPower(spec, tdp_w, rate_hz)
        self._send(self._last_power)

    def load(self, path: Path, settings: EngineSettings) -> bool:
        if self.state in ("running", "stopping", "loading", "dead"):
            return False
        self._pending_path = Path(path)
        self._last_load = LoadModel(Path(path), settings)
        if self._send(self._last_load):
            self._set_state("loading")
        return True

    def start(self, tests: list[TestSpec], options: RunOptions, workload_text: dict | None = None) -> bool:
        """A measured run of ``tests``; with no tests, an idle measurement on its own (not saved)."""
        if self.state != "idle" or self.live is None:
            return False
        self._run_record = bool(tests) and self.record
        if self._send(StartRun(tuple(tests), options, workload_text, record=self._run_record)):
            self._set_state("running")
        return True

    def start_sweep(self, plan: SweepPlan) -> bool:
        """Runs the plan in the measuring process; the loaded model comes back when it ends."""
        if self.state not in ("idle", "ready") or self.live is None:
            return False
        self._run_record = self.record
        self._reload_after_sweep = self.model is not None
        if self._send(StartSweep(plan)):
            self._set_state("running")
        return True

    def start_endpoint(self, job: StartEndpoint) -> bool:
        """Measure a server (the loaded model, if any, stays loaded and idle)."""
        if self.state not in ("idle", "ready") or self.live is None:
            return False
        self._run_record = self.record
        if self._send(job):
            self._set_state("running")
        return True

    def quantize(self, source: Path, qtype: str, output: Path | None, allow_requantize: bool) -> bool:
        if self.state not in ("idle", "ready"):
            return False
        if self._send(Quantize(Path(source), qtype, output, allow_requantize)):
            self._set_state("quantizing")
        return True

    def serve_metrics(self, port: int | None, bind: str = "127.0.0.1") -> None:
        """Prometheus metrics from the measuring process (its sampler and runs); None stops serving."""
        self._last_metrics = ServeMetrics(port, bind)
        self._send(self._last_metrics)

    def measure_idle(self, idle_s: float, settle_s: float) -> bool:
        return self.start([], RunOptions(repetitions=0, idle_s=idle_s, settle_s=settle_s, warmup=False))

    def stop(self) -> None:
        if self.state == "running" and self._send_stop():
            self._set_state("stopping")

    def _send_stop(self) -> bool:
        try:
            self.client.stop_run()
        except ProcessGone as exc:
            self._died(exc)
            return False
        return True

    def _spawn(self):
        return self._spawner.submit(self._client_factory, self.db_path, self.record).result()

    def restart(self) -> None:
        """A new measuring process after the old one died: same power sources, same model."""
        self.client.close(timeout_s=1)
        self.client = self._spawn()
        self._set_state("starting")
        for command in (self._last_power, self._last_metrics):
            if command is not None:
                self._send(command)
        if self._last_load is not None:
            self.load(self._last_load.path, self._last_load.settings)

    def close(self) -> None:
        self.timer.stop()
        self.client.close()
        self._spawner.shutdown(wait=False)

    # --- what arrives --------------------------------------------------------------------------

    def poll(self) -> None:
        if self.state == "dead":
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
        for item in batch.items:  # in order: run events up to each state change are fed before it
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
                self.live.add_samples(block.source, block.t_ns, block.power_w)

    def _feed(self, events: list) -> None:
        for event in events:
            if isinstance(event, Status):
                self.last_status = event.message
                self.status.emit(event.message)
            elif isinstance(event, IdleMeasured):
                if event.baseline is not None:
                    self.live.idle_w = event.baseline.power_w
                self.idle_measured.emit(event)
            elif isinstance(event, SaveProblem):
                self.save_problem_text = event.message
                self.save_problem.emit(event.message)
        text = "".join(self.live.feed(events)) if self.live is not None else ""
        if text:
            self.text_arrived.emit(text)

    def _on_started(self, item: Started) -> None:
        self.build = item.build
        self.started.emit(item)
        if item.save_problem:
            self.save_problem_text = item.save_problem
            self.save_problem.emit(f"sessions won't be saved: {item.save_problem}")
        if self.model is None and self.state == "starting":
            self._set_state("ready")

    def _on_power_ready(self, item: PowerReady) -> None:
        self.sources = item.sources
        if item.chosen:  # a restart brings back the user's choice, not a swap made for a server
            self.power_spec = item.spec
        self.live = LiveSeries([(s.name, s.method) for s in item.sources], item.t_ns)
        self.power_ready.emit(item)

    def _on_power_failed(self, item: PowerFailed) -> None:
        self.power_failed.emit(f"power source {item.spec!r}: {item.message}")

    def _on_loading(self, item: Loading) -> None:
        self.loading.emit(item.path.name, item.stage)

    def _on_loaded(self, item: Loaded) -> None:
        self.model = item
        self._set_state("idle")
        self.loaded.emit(item)

    def _on_load_failed(self, item: LoadFailed) -> None:
        if item.still_loaded is None:
            self.model = None
        self._set_state(self._at_rest())
        self.load_failed.emit(item)

    def _on_run_started(self, item: RunStarted) -> None:
        if item.tests and self.live is not None:
            self.live.run_started(item.t_ns)
        self.run_started.emit(item)

    def _on_run_finished(self, item: RunFinished) -> None:
        self._end_run()
        if item.report.meta["tests"]:
            self.last_report = item.report
        self.run_finished.emit(item.report)

    def _on_run_failed(self, item: RunFailed) -> None:
        self._end_run()
        self.run_failed.emit(item.message, item.report)

    def _on_sources_failing(self, item: SourcesFailing) -> None:
        self.sources_failing.emit(item)

    def _on_sweep_started(self, item: SweepStarted) -> None:
        self.model = None  # closed for the sweep; it is loaded again when the sweep ends
        if self.live is not None:
            self.live.run_started(item.t_ns)

    def _on_sweep_progress(self, item: SweepProgress) -> None:
        self.sweep_progress.emit(item)

    def _on_sweep_finished(self, item: SweepFinished) -> None:
        self._close_live_run()
        # the process loads the window's model again, if there was one
        self._set_state("loading" if self._reload_after_sweep else "ready")
        self.sweep_finished.emit(item)

    def _at_rest(self) -> str:
        """The state between jobs: idle with a model loaded, ready without (quantizing and servers keep it)."""
        return "idle" if self.model is not None else "ready"

    def _on_endpoint_finished(self, item: EndpointFinished) -> None:
        self._close_live_run()
        self._set_state(self._at_rest())
        self.endpoint_finished.emit(item)

    def _on_quantize_progress(self, item: QuantizeProgress) -> None:
        self.quantize_progress.emit(item.tensors_done, item.tensors_total)

    def _on_quantize_finished(self, item: QuantizeFinished) -> None:
        self._set_state(self._at_rest())
        self.quantize_finished.emit(item.path, item.description)

    def _on_quantize_failed(self, item: QuantizeFailed) -> None:
        self._set_state(self._at_rest())
        self.quantize_failed.emit(item.message)

    _HANDLERS = {
        Started: _on_started,
        PowerReady: _on_power_ready,
        PowerFailed: _on_power_failed,
        Loading: _on_loading,
        Loaded: _on_loaded,
        LoadFailed: _on_load_failed,
        RunStarted: _on_run_started,
        RunFinished: _on_run_finished,
        RunFailed: _on_run_failed,
        SourcesFailing: _on_sources_failing,
        SweepStarted: _on_sweep_started,
        SweepProgress: _on_sweep_progress,
        SweepFinished: _on_sweep_finished,
        QuantizeProgress: _on_quantize_progress,
        QuantizeFinished: _on_quantize_finished,
        QuantizeFailed: _on_quantize_failed,
        EndpointFinished: _on_endpoint_finished,
        MetricsServing: lambda self, item: self.metrics_serving.emit(item),
    }

    def _end_run(self) -> None:
        self._close_live_run()
        self._set_state("idle")

    def _close_live_run(self) -> None:
        if self.live is not None and self.live.run_start_ns is not None and self.live.run_end_ns is None:
            self.live.run_ended(time.monotonic_ns())

    def _died(self, exc: ProcessGone) -> None:
        was_running = self.state in ("running", "stopping")
        self._end_run()
        self._set_state("dead")
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

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.timer.setInterval(
                STREAMING_POLL_MS if state in ("running", "stopping", "loading", "starting") else IDLE_POLL_MS
            )
            self.state_changed.emit(state)

    @property
    def model_loaded(self) -> bool:
        return self.model is not None and self.state not in ("dead", "starting")
