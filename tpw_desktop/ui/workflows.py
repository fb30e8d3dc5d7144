"""The history, compare, sweep, quantize and metrics workflows: what joins them to the run controller.

A sweep's progress goes to the status bar and the live view (its runs
stream like any run); when it ends, the history is read again and the
compare view opens on it. Sessions picked in History open in Compare.
Prometheus metrics are served by the measuring process (its sampler, its
runs), on loopback, while *Run ▸ Serve Prometheus metrics* is on.
"""

from __future__ import annotations

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QInputDialog

from ..analysis.tables import cut_short_note, levels_table
from ..prometheus.exporter import DEFAULT_PORT
from ..run.results import RunReport
from ..view.dashboard import finished_dashboard
from ..worker.protocol import JobFinished, JobProgress, MetricsServing, SweepDone
from .dialogs import QuantizeDialog, SweepDialog
from .endpoint_dialog import EndpointDialog
from .form import plain_label


class Workflows(QObject):
    def __init__(self, window):
        super().__init__(window)
        self.w = window
        c, history, compare = window.controller, window.history, window.compare_view
        history.compare_requested.connect(self.compare_sessions)
        history.sweep_requested.connect(self.compare_sweep)
        for view in (history, compare):
            view.problem.connect(lambda message: window.show_error(message, kind="history"))
        compare.saved.connect(lambda path: window.status_label.setText(f"saved {path}"))
        window.views.currentChanged.connect(self._tab_shown)
        c.job_progress.connect(self._job_progress)
        c.job_finished.connect(self._job_finished)
        c.news.connect(lambda news: self._metrics_serving(news) if isinstance(news, MetricsServing) else None)
        self.dialog = None
        self.metrics_label = plain_label()
        self.metrics_label.hide()
        window.statusBar().addPermanentWidget(self.metrics_label)

    def serve_metrics(self, on: bool) -> None:
        self.w.settings.setValue("metrics/on", on)
        self.w.controller.serve_metrics(self.metrics_port() if on else None)

    def metrics_port(self) -> int:
        return int(self.w.settings.value("metrics/port", DEFAULT_PORT))

    def choose_metrics_port(self) -> None:
        """The port Prometheus scrapes (loopback only); serving moves to it at once if it is on."""
        port, ok = QInputDialog.getInt(
            self.w, "Prometheus metrics port", "Serve metrics on 127.0.0.1, port:", self.metrics_port(), 1024, 65535
        )
        if not ok:
            return
        self.w.settings.setValue("metrics/port", port)
        if self.w.actions["metrics"].isChecked():
            self.serve_metrics(True)
        else:
            self.w.status_label.setText(f"Prometheus metrics will be served on port {port}")

    def _metrics_serving(self, serving) -> None:
        self.metrics_label.setVisible(serving.url is not None)
        self.metrics_label.setText(f"metrics: {serving.url}" if serving.url else "")
        if serving.problem:
            self.w.actions["metrics"].setChecked(False)
            self.w.settings.setValue("metrics/on", False)
            self.w.show_error(f"Prometheus metrics: {serving.problem}", kind="metrics")
        else:
            self.w.banner.clear("metrics")

    def _tab_shown(self, index: int) -> None:
        if self.w.views.widget(index) is self.w.history:
            self.w.history.refresh()
            self.w.history.table.setFocus()
        elif self.w.views.widget(index) is self.w.compare_view:
            self.w.compare_view.refresh_sweeps()

    def refresh_if_shown(self) -> None:
        self._tab_shown(self.w.views.currentIndex())

    def compare_sessions(self, session_ids: list[int]) -> None:
        self.w.views.setCurrentWidget(self.w.compare_view)
        self.w.compare_view.show_sessions(session_ids)

    def compare_sweep(self, sweep_id: int) -> None:
        self.w.views.setCurrentWidget(self.w.compare_view)
        self.w.compare_view.show_sweep(sweep_id)

    def open_quantize(self) -> QuantizeDialog:
        model = self.w.controller.model
        self.dialog = QuantizeDialog(self.w, model.facts.path if model else self.w.bundled_model)
        self.dialog.show()
        return self.dialog

    def open_sweep(self) -> SweepDialog:
        self.dialog = SweepDialog(self.w)
        self.dialog.show()
        return self.dialog

    def open_endpoint(self) -> EndpointDialog:
        self.dialog = EndpointDialog(self.w)
        self.dialog.show()
        return self.dialog

    def _job_progress(self, progress: JobProgress) -> None:
        if progress.job == "sweep":
            text = f"sweep: {progress.message}"
            self.w.status_label.setText(text)
            self.w.views.setCurrentWidget(self.w.dashboard)
            self.w.dashboard.set_header(text)

    def _job_finished(self, finished: JobFinished) -> None:
        if finished.job == "run":
            self.refresh_if_shown()
        elif finished.job == "endpoint":
            self._endpoint_finished(finished)
        elif finished.job == "sweep":
            self._sweep_finished(finished)

    def _endpoint_finished(self, finished: JobFinished) -> None:
        """The curve of tokens/J against clients in the output pane; a failure in the banner."""
        report = finished.result if isinstance(finished.result, RunReport) else None
        levels = report.summaries if report else []
        if levels:
            self.w.dashboard.append_text("\n\n" + levels_table(levels, brief=True, tablefmt="plain") + "\n")
        self.w.dashboard.show_output()  # the table is the result; "Last run" still holds the last local run
        figures = finished_dashboard(levels, currency=self.w.power_panel.options()["currency"])
        if figures is not None:
            self.w.dashboard.show_figures(figures)
        saved = f" · session {report.session_id} saved" if report and report.session_id else ""
        self.w.status_label.setText(f"server measured: {finished.status}{saved}")
        if finished.error:
            kept = " The levels that finished were kept." if levels else ""
            self.w.show_error(f"Measuring the server failed: {finished.error}.{kept}", kind="run")
        elif note := cut_short_note(levels):
            self.w.show_warning(f"Measured, but {note}.", kind="run")
        self.refresh_if_shown()
        self.w.run_ended.emit(finished.status)

    def _sweep_finished(self, finished: JobFinished) -> None:
        done = finished.result if isinstance(finished.result, SweepDone) else SweepDone(None, 0)
        if finished.error:
            kept = f" {done.runs} finished runs were kept." if done.runs else ""
            self.w.show_error(f"The sweep failed: {finished.error}.{kept}", kind="run")
        self.w.status_label.setText(f"sweep {done.sweep_id or ''} {finished.status}: {done.runs} runs")
        if done.sweep_id is not None and done.runs:
            self.w.compare_view.refresh_sweeps()
            self.compare_sweep(done.sweep_id)
        self.w.run_ended.emit(finished.status)
