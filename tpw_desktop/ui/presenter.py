"""What the window shows of the run controller's news: the glue between its signals and the parts.

The run controller says what happened (loaded, a batch arrived, the run
finished, the process died); the presenter updates the panels, the
dashboard, the banner and the status bar, and redraws only what changed,
and only while the window can be seen.
"""

from __future__ import annotations

import os
import time

from PySide6.QtCore import QObject, Qt, QTimer

from ..run.events import Caution, IdleMeasured, SaveProblem, Status
from ..run.results import RunReport
from ..view.dashboard import finished_dashboard
from ..worker.forwarder import streaming_batch_s
from ..worker.protocol import JobFinished, JobProgress, JobStarted, Loaded, PowerReady, SourcesFailing, Started

# Every redraw takes CPU from the model being measured (on a 2-core machine, from its own
# threads: 10 frames a second cost runs from the window ~10% of their speed). So a frame is
# drawn only after new data, which the measuring process sends as often as the model's threads
# leave room for (``streaming_batch_s``: 4 batches a second with a core to spare, else one
# every 2 s), and no more often than keeps painting under PAINT_BUDGET of one core (a frame
# that takes 12 ms is drawn every ~0.5 s); at rest, once a second. No timer ticks in between:
# a frame is drawn when data arrives, or once, later, if it came too soon.
IDLE_PAINT_S = 1.0
PAINT_BUDGET = 0.025


class Presenter(QObject):
    def __init__(self, window):
        super().__init__(window)
        self.w = window
        self._painted_at = 0.0
        self.frame_s = 0.0  # how long a frame took to draw, smoothed
        self._text: list[str] = []
        self.dirty = False
        self._run_label = ""
        self._loading = ""  # the model file being loaded
        self._connect()
        self.timer = QTimer(self)  # the frame put off because the last one was too recent
        self.timer.setSingleShot(True)
        self.timer.timeout.connect(self.paint)

    def _connect(self) -> None:
        w = self.w
        c, d = w.controller, w.dashboard
        w.start_button.clicked.connect(w.start)
        w.stop_button.clicked.connect(c.stop)
        w.model_panel.open_requested.connect(w.choose_model)
        w.model_panel.model_chosen.connect(w.load_model)
        w.model_panel.cancel_requested.connect(self._cancel_load)
        w.engine_panel.reload_requested.connect(w.reload_model)
        w.power_panel.source_chosen.connect(w.select_power)
        w.power_panel.measure_idle_requested.connect(w.measure_idle)
        d.charts.export_requested.connect(w.export_charts)
        w.banner.action_clicked.connect(self._banner_action)
        c.state_changed.connect(lambda _s: self.update_controls())
        c.started.connect(self._on_started)
        c.job_started.connect(self._on_job_started)
        c.job_progress.connect(self._on_job_progress)
        c.job_finished.connect(self._on_job_finished)
        c.news.connect(self._on_news)
        c.text_arrived.connect(self._text.append)  # shown with the next redraw, not once per batch
        c.data_arrived.connect(self._data_arrived)
        c.process_died.connect(self._on_process_died)

    # --- what the controller says: a job's messages, a run's news -----------------------------------

    def _on_started(self, started: Started) -> None:
        self.w.engine_panel.set_gpu_support(started.build.gpu_offload_supported)
        if started.save_problem:
            self.w.show_warning(f"sessions won't be saved: {started.save_problem}", kind="save")
        if self.w.controller.model is None:
            self.w.status_label.setText("ready: load a model (File ▸ Open model) or measure a server")

    def _on_job_started(self, started: JobStarted) -> None:
        if started.job == "run":
            self._run_label = started.detail or "idle baseline"
            self._header()
        elif started.job == "load":
            self._loading = started.detail  # the file's name

    def _on_job_progress(self, progress: JobProgress) -> None:
        if progress.job == "load":
            self._on_loading(self._loading, progress.message)

    def _on_job_finished(self, finished: JobFinished) -> None:
        if finished.job == "power":
            if isinstance(finished.result, PowerReady):
                self._on_power_ready(finished.result)
            else:
                self._on_power_failed(f"power source: {finished.error}")
        elif finished.job == "load":
            if isinstance(finished.result, Loaded):
                self._on_loaded(finished.result)
            else:
                self._on_load_failed(finished)
        elif finished.job == "run":
            if finished.status == "failed":
                self._on_run_failed(finished.error or "unknown", finished.result)
            elif isinstance(finished.result, RunReport):
                self._on_run_finished(finished.result)

    def _on_news(self, news) -> None:
        if isinstance(news, Status):
            self._status(news.message)
        elif isinstance(news, IdleMeasured):
            self._on_idle(news)
        elif isinstance(news, SaveProblem):
            self.w.show_warning(news.message, kind="save")
        elif isinstance(news, Caution):
            self.w.show_warning(news.message, kind="caution")
        elif isinstance(news, SourcesFailing):
            self._on_sources_failing(news)

    def _on_power_ready(self, ready) -> None:
        if ready.chosen:
            self.w.power_panel.show_spec(ready.spec)
        self.w.power_panel.show_sources(ready.sources, for_server=not ready.chosen)
        self.w.power_panel.idle_label.setText("idle baseline: not measured")
        self.w.dashboard.charts.set_series(self.w.controller.live)
        self.w.banner.clear("power")
        if any(s.method == "estimated" for s in ready.sources):
            self.w.show_warning(
                "No power sensor in use: watts and joules are estimated from CPU busy time × TDP and "
                "can be far off. They are labelled 'estimated' everywhere.",
                kind="power",
            )

    def _on_power_failed(self, message: str) -> None:
        self.w.show_error(message, kind="power")
        if self.w.controller.power_spec:
            self.w.power_panel.show_spec(self.w.controller.power_spec)

    def _on_loading(self, name: str, stage: str) -> None:
        self.w.model_panel.show_loading(name, stage)
        self.w.status_label.setText(f"loading {name}: {stage}")

    def _on_loaded(self, loaded) -> None:
        self.w.model_panel.show_model(loaded.facts, loaded.settings)
        self.w.settings.setValue("models/last", str(loaded.facts.path))
        self.w.status_label.setText(f"loaded {loaded.facts.file_name} in {loaded.seconds:.1f} s")
        if loaded.warnings:
            self.w.show_warning(" · ".join(loaded.warnings), kind="load")
        else:
            self.w.banner.clear("load")
        self.update_controls()

    def _on_load_failed(self, failed: JobFinished) -> None:
        if failed.still_loaded:
            self.w.model_panel.hide_loading()
            kept = f" {failed.still_loaded} is still loaded."
            self.w.status_label.setText(f"kept {failed.still_loaded}")
        else:
            self.w.model_panel.show_none()
            kept = " No model is loaded now."
            self.w.status_label.setText("no model loaded")
        self.w.show_error(f"Could not load the model: {failed.error}.{kept}", kind="load")

    def _cancel_load(self) -> None:
        if self.w.controller.cancel_load():
            self.w.model_panel.show_none()
            self.w.status_label.setText(f"loading {self._loading} cancelled: no model loaded")

    def _status(self, message: str) -> None:
        self.w.status_label.setText(message)
        self._run_label = message
        self._header()

    def _on_idle(self, measured) -> None:
        self.w.power_panel.show_idle(measured)
        self.w.dashboard.charts.set_idle(measured.baseline.power_w if measured.baseline else None)

    def _on_run_finished(self, report: RunReport) -> None:
        self.paint(force=True)  # the whole run, drawn before its figures replace the live ones
        if not report.meta.tests:
            self.w.status_label.setText("idle baseline measured" if report.idle else "idle measurement stopped")
        else:
            figures = finished_dashboard(report.summaries, currency=report.meta.options.currency)
            if figures is not None:
                self.w.dashboard.show_figures(figures)
            self.w.dashboard.show_report(report, self.w.controller.db_path)
            where = f" · session {report.session_id} saved in {self.w.controller.db_path}" if report.session_id else ""
            self.w.status_label.setText(f"run {report.status}{'' if report.save_error else where}")
            if report.save_error:
                self.w.show_error(
                    f"The run was measured but not saved: {report.save_error}.", kind="save", action="Save results as…"
                )
        self.w.run_ended.emit(report.status)

    def _on_run_failed(self, message: str, report: RunReport | None) -> None:
        saved = " · the session was saved as failed" if report is not None and report.session_id else ""
        self.w.show_error(f"The run failed: {message}{saved}", kind="run")
        self.w.status_label.setText("run failed")
        if report is not None and report.summaries:
            self.w.dashboard.show_report(report, self.w.controller.db_path)
        self.w.run_ended.emit("failed")

    def _on_process_died(self, message: str) -> None:
        self.w.show_error(f"The measuring process stopped: {message}.", kind="process", action="Restart it")
        self.w.status_label.setText("the measuring process stopped")
        self.w.run_ended.emit("interrupted")

    def _banner_action(self, kind: str) -> None:
        {"process": self.w.restart, "save": self.w.save_results_as}.get(kind, lambda: None)()

    def _on_sources_failing(self, failing) -> None:
        if failing.names:
            self.w.show_error(
                f"Power source {', '.join(failing.names)} stopped answering ({failing.detail}). Its "
                "samples are gaps, and energy over them is unknown: the run goes on.",
                kind="sources",
            )
        else:
            self.w.banner.clear("sources")

    def update_controls(self) -> None:
        state = self.w.controller.state
        idle = state == "idle"
        self._keep_focus_off_fields(idle)
        self.w.start_button.setEnabled(idle)
        self.w.stop_button.setEnabled(state == "running")
        self.w.power_panel.idle_button.setEnabled(idle)
        self.w.engine_panel.reload_button.setEnabled(idle)
        for widget in (
            self.w.model_panel.open_button,
            self.w.model_panel.recent,
            self.w.power_panel.source,
            self.w.workload_panel.choice,
        ):
            widget.setEnabled(state in ("idle", "ready"))
        self.w.actions["restart"].setEnabled(state == "dead")
        if state in ("idle", "ready"):
            self._run_label = ""
        self._header()

    def _keep_focus_off_fields(self, idle: bool) -> None:
        """Start, once pressed, is disabled: Qt would hand its focus to the next field in the chain (the
        electricity price, its text selected, where a key press changes it). The dashboard takes it."""
        focused = self.w.focusWidget()
        if focused is not None and not idle and focused in (self.w.start_button, self.w.power_panel.idle_button):
            self.w.dashboard.setFocus(Qt.OtherFocusReason)

    # --- painting ---------------------------------------------------------------------------------

    def _data_arrived(self) -> None:
        self.dirty = True
        self.w.rate_label.setText(
            f"sampling {self.w.controller.sampling_hz:.0f} Hz" if self.w.controller.sampling_hz else ""
        )
        self.paint()

    def paint(self, force: bool = False) -> None:
        """Redraw only what changed, and nothing while the window is minimized or hidden.

        ``force`` draws now whatever the interval (the last frame of a run).
        """
        if not (self.dirty or force) or not self.w.isVisible() or self.w.isMinimized():
            return
        now = time.monotonic()
        streaming = self.w.controller.state in ("running", "stopping")
        model = self.w.controller.model
        threads = model.settings.n_threads if model else None
        interval = (
            max(streaming_batch_s(threads, os.cpu_count()), self.frame_s / PAINT_BUDGET) if streaming else IDLE_PAINT_S
        )
        too_soon_s = interval - (now - self._painted_at)
        if too_soon_s > 0 and not force:
            if not self.timer.isActive():
                self.timer.start(int(too_soon_s * 1000) + 1)
            return
        self.dirty = False
        self._painted_at = now
        charts = self.w.dashboard.charts
        charts.refresh()
        charts.repaint()  # now, so the frame's cost can be timed
        if self._text:
            self.w.dashboard.append_text("".join(self._text))
            self._text.clear()
        if streaming:
            self._live_tiles()
        took = time.monotonic() - now
        self.frame_s = took if not self.frame_s else 0.8 * self.frame_s + 0.2 * took

    def _live_tiles(self) -> None:
        if self.w.controller.live is not None:
            options = self.w.power_panel.options()
            self.w.dashboard.show_live(self.w.controller.live, options["price_per_kwh"], options["currency"])

    def _header(self) -> None:
        model = self.w.controller.model
        name = model.facts.file_name if model else "no model"
        state = self.w.controller.state
        doing = {
            "running": self._run_label or "running",
            "stopping": "stopping",
            "loading": "loading",
            "dead": "measuring process stopped",
        }.get(state, "ready")
        self.w.dashboard.set_header(f"{name} · {doing}")
