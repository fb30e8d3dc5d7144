"""The Model panel: the loaded model, Open GGUF…, the recent list, and load progress with Cancel."""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import QComboBox, QGroupBox, QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout

from ..engine.gguf_info import ModelFacts, format_params, format_size
from ..record.meta import EngineSettings
from .form import guard_wheel

MAX_RECENT = 8


class ModelPanel(QGroupBox):
    """The loaded model, Open GGUF…, the recent list and load progress."""

    open_requested = Signal()
    model_chosen = Signal(object)  # Path
    cancel_requested = Signal()

    def __init__(self, parent=None):
        super().__init__("Model", parent)
        layout = QVBoxLayout(self)
        self.label = QLabel("no model loaded")
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.open_button = QPushButton("Open GGUF…")
        self.open_button.setToolTip("Open a .gguf model file (Ctrl+O); you can also drop one on the window")
        self.open_button.clicked.connect(self.open_requested)
        self.recent = QComboBox()
        self.recent.setToolTip("Recently used models")
        self.recent.activated.connect(self._recent_chosen)
        guard_wheel(self.recent)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)  # llama.cpp reports no progress we can reach: show activity
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop loading this model (the measuring process starts again, without it)")
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.cancel_button.hide()
        row = QHBoxLayout()
        row.addWidget(self.open_button)
        row.addWidget(self.recent, 1)
        loading = QHBoxLayout()
        loading.addWidget(self.progress, 1)
        loading.addWidget(self.cancel_button)
        layout.addWidget(self.label)
        layout.addLayout(row)
        layout.addLayout(loading)
        self.recent_paths: list[str] = []
        self._fill_recent()

    def show_loading(self, name: str, stage: str) -> None:
        self.progress.setFormat(f"{name}: {stage}…")
        self.progress.show()
        self.cancel_button.show()

    def hide_loading(self) -> None:
        self.progress.hide()
        self.cancel_button.hide()

    def show_model(self, facts: ModelFacts, settings: EngineSettings) -> None:
        self.hide_loading()
        threads = f"{settings.n_threads} thread{'s' if settings.n_threads != 1 else ''}"
        self.label.setText(
            f"<b>{html.escape(facts.file_name)}</b><br>{html.escape(facts.architecture)} · "
            f"{format_params(facts.n_params)} params · {html.escape(facts.quantization)} · "
            f"{format_size(facts.size_bytes)}"
            f"<br><span style='color:gray'>{'GPU' if settings.n_gpu_layers else 'CPU'} · {threads} · "
            f"flash attention {'on' if settings.flash_attn else 'off'} · context {settings.n_ctx}</span>"
        )
        self.label.setToolTip(str(facts.path))
        self.remember(facts.path)

    def show_none(self) -> None:
        self.hide_loading()
        self.label.setText("no model loaded")

    def remember(self, path: Path) -> None:
        self.recent_paths = ([str(path)] + [p for p in self.recent_paths if p != str(path)])[:MAX_RECENT]
        self._fill_recent()

    def _fill_recent(self) -> None:
        self.recent.clear()
        self.recent.addItem("Recent models…", None)
        for path in self.recent_paths:
            self.recent.addItem(Path(path).name, path)
            self.recent.setItemData(self.recent.count() - 1, path, Qt.ToolTipRole)

    def _recent_chosen(self, index: int) -> None:
        path = self.recent.itemData(index)
        if path:
            self.model_chosen.emit(Path(path))

    def save(self, s: QSettings) -> None:
        s.setValue("models/recent", self.recent_paths)

    def restore(self, s: QSettings) -> None:
        value = s.value("models/recent", [])
        self.recent_paths = [value] if isinstance(value, str) else list(value or [])
        self._fill_recent()
