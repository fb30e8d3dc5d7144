"""The history, compare, sweep, quantize and metrics workflows: what joins them to the run controller.

A sweep's progress goes to the status bar and the live view (its runs
stream like any run); when it ends, the history is read again and the
compare view opens on it. Sessions picked in History open in Compare.
Prometheus metrics are served by the measuring process (its sampler, its
runs), on loopback, while *Run ▸ Serve Prometheus metrics* is on.
"""

from __future__ import annotations

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QLabel

from ..prometheus.exporter import DEFAULT_PORT
from ..run.server import cut_short_note, levels_table
from ..view.dashboard import endpoint_dashboard
from .dialogs import QuantizeDialog, SweepDialog
from .endpoint_dialog import EndpointDialog


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
        c.sweep_progress.connect(self._sweep_progress)
        c.sweep_finished.connect(self._sweep_finished)
        c.run_finished.connect(lambda _report: self.refresh_if_shown())
        c.metrics_serving.connect(self._metrics_serving)
        c.endpoint_finished.connect(self._endpoint_finished)
        self.dialog = None
        self.metrics_label = QLabel()
        self.metrics_label.hide()
        window.statusBar().addPermanentWidget(self.metrics_label)

    def serve_metrics(self, on: bool) -> None:
        port = int(self.w.settings.value("metrics/port", DEFAULT_PORT))
        self.w.settings.setValue("metrics/on", on)
        self.w.controller.serve_metrics(port if on else None)

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

    def _endpoint_finished(self, finished) -> None:
        """The curve of tokens/J against clients in the output pane; a failure in the banner."""
        if finished.levels:
            self.w.dashboard.append_text("\n\n" + levels_table(finished.levels, brief=True, tablefmt="plain") + "\n")
        self.w.dashboard.show_output()  # the table is the result; "Last run" still holds the last local run
        figures = endpoint_dashboard(list(finished.levels), currency=self.w.power_panel.options()["currency"])
        if figures is not None:
            self.w.dashboard.show_figures(figures)
        saved = f" · session {finished.session_id} saved" if finished.session_id else ""
        self.w.status_label.setText(f"server measured: {finished.status}{saved}")
        if finished.error:
            kept = " The levels that finished were kept." if finished.levels else ""
            self.w.show_error(f"Measuring the server failed: {finished.error}.{kept}", kind="run")
        elif note := cut_short_note(finished.levels):
            self.w.show_warning(f"Measured, but {note}.", kind="run")
        self.refresh_if_shown()
        self.w.run_ended.emit(finished.status)

    def _sweep_progress(self, progress) -> None:
        left = f", about {progress.seconds_left / 60:.0f} min left" if progress.seconds_left else ""
        text = f"sweep: run {progress.done + 1}/{progress.total}, {progress.variant}, round {progress.round + 1}{left}"
        self.w.status_label.setText(text)
        self.w.views.setCurrentWidget(self.w.dashboard)
        self.w.dashboard.set_header(text)

    def _sweep_finished(self, finished) -> None:
        if finished.error:
            kept = f" {finished.runs} finished runs were kept." if finished.runs else ""
            self.w.show_error(f"The sweep failed: {finished.error}.{kept}", kind="run")
        self.w.status_label.setText(f"sweep {finished.sweep_id or ''} {finished.status}: {finished.runs} runs")
        if finished.sweep_id is not None and finished.runs:
            self.w.compare_view.refresh_sweeps()
            self.compare_sweep(finished.sweep_id)
        self.w.run_ended.emit(finished.status)
