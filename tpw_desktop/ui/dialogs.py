"""The Quantize and Sweep dialogs: the window's side of ``tpw quantize`` and ``tpw sweep``.

Both only gather choices and check them; the work runs in the measuring
process (quantizing and sweeping load llama.cpp, which the window never
does), and its progress comes back through the run controller.
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..engine.gguf_info import read_model_facts
from ..engine.quantize import TYPES, check_type, default_output, is_quantized
from ..errors import TpwError
from ..power import DEFAULT_TDP_W
from ..run.sweep import SETTINGS, plan_sweep, sweep_command
from ..worker.protocol import JobFinished, JobProgress, Quantized
from .form import plain_label, restore_choices, save_choices, spin_box

DEFAULT_TYPE = "Q4_K_M"


def side_button(text: str, slot) -> QPushButton:
    """A helper button in a dialog (Browse, Add): Enter in a field never presses it, only the dialog's action."""
    button = QPushButton(text)
    button.setAutoDefault(False)
    button.clicked.connect(slot)
    return button


def _file_row(edit: QLineEdit, browse) -> QWidget:
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(edit, 1)
    layout.addWidget(side_button("Browse…", browse))
    return row


def ask_requantize(parent, facts) -> bool:
    """The user's confirmation to quantize a file that is already quantized (quality is lost twice)."""
    answer = QMessageBox.warning(
        parent,
        "Already quantized",
        f"{facts.file_name} is already quantized ({facts.quantization}). Quantizing it again loses quality twice: "
        "the result is worse than quantizing the original F16/F32 file.\n\nQuantize it anyway?",
        QMessageBox.Yes | QMessageBox.No,
        QMessageBox.No,
    )
    return answer == QMessageBox.Yes


class QuantizeDialog(QDialog):
    """Source, type and output; progress while the measuring process quantizes."""

    def __init__(self, window, source: Path | None, confirm=ask_requantize):
        super().__init__(window)
        self.setWindowTitle("Quantize a model")
        self.window_ = window
        self.confirm = confirm
        self.source = QLineEdit(str(source) if source else "")
        self.qtype = QComboBox()
        self.qtype.addItems(TYPES)
        self.qtype.setCurrentText(DEFAULT_TYPE)
        self.output = QLineEdit()
        self._output_edited = False
        self.output.textEdited.connect(lambda _: setattr(self, "_output_edited", True))
        self.source.textChanged.connect(self._suggest_output)
        self.qtype.currentTextChanged.connect(self._suggest_output)
        self.progress = QProgressBar()
        self.progress.hide()
        self.message = plain_label("Makes a new file with llama.cpp's quantizer; the source stays as it is.")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.buttons = QDialogButtonBox()
        self.go = self.buttons.addButton("Quantize", QDialogButtonBox.AcceptRole)
        self.buttons.addButton(QDialogButtonBox.Close)
        self.go.clicked.connect(self.start)
        self.buttons.rejected.connect(self.reject)
        form = QFormLayout()
        form.addRow("source", _file_row(self.source, self._browse_source))
        form.addRow("type", self.qtype)
        form.addRow("output", _file_row(self.output, self._browse_output))
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.message)
        layout.addWidget(self.buttons)
        self.go.setDefault(True)  # Enter runs it (set once the button is in the dialog, else Qt picks the first)
        c = window.controller
        c.job_progress.connect(self._progress)
        c.job_finished.connect(self._finished)
        self.made: Path | None = None
        self._suggest_output()
        self.resize(620, self.sizeHint().height())

    def _suggest_output(self) -> None:
        if not self._output_edited and self.source.text().strip():
            self.output.setText(str(default_output(Path(self.source.text().strip()), self.qtype.currentText())))

    def _browse_source(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Model to quantize", self.source.text(), "GGUF models (*.gguf)")
        if path:
            self.source.setText(path)

    def _browse_output(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "New file", self.output.text(), "GGUF models (*.gguf)")
        if path:
            self._output_edited = True
            self.output.setText(path)

    def _say(self, text: str, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setStyleSheet("color: #d9534f" if error else "")

    def start(self) -> None:
        """Checked here first (file, type, output), so a mistake is said before any work starts."""
        try:
            facts = read_model_facts(self.source.text().strip())
            qtype = check_type(self.qtype.currentText())
        except TpwError as exc:
            self._say(str(exc), error=True)
            return
        output = Path(self.output.text().strip()) if self.output.text().strip() else None
        if output is not None and output.exists():
            self._say(f"{output}: already exists (tpw doesn't overwrite a model; choose another name)", error=True)
            return
        requantize = is_quantized(facts)
        if requantize and not self.confirm(self, facts):
            self._say(f"Not quantized: {facts.file_name} is already {facts.quantization}.")
            return
        if not self.window_.controller.quantize(facts.path, qtype, output, requantize):
            self._say("Busy: wait for the run or the model being loaded, then quantize.", error=True)
            return
        self.go.setEnabled(False)
        self.progress.setRange(0, 0)
        self.progress.show()
        self._say(f"quantizing {facts.file_name} to {qtype}…")

    def _progress(self, progress: JobProgress) -> None:
        if progress.job != "quantize" or progress.total is None:
            return
        self.progress.setRange(0, progress.total)
        self.progress.setValue(progress.done or 0)
        self.progress.setFormat(f"tensor {progress.done}/{progress.total}")

    def _finished(self, finished: JobFinished) -> None:
        if finished.job != "quantize":
            return
        self.progress.hide()
        self.go.setEnabled(True)
        if not isinstance(finished.result, Quantized):
            self._say(finished.error or "quantizing failed", error=True)
            return
        self.made = finished.result.path
        self.window_.model_panel.remember(self.made)  # in the model list, ready to load or sweep
        self._say(f"Made {finished.result.description}. It is in the Recent models list, ready to sweep.")


class SweepDialog(QDialog):
    """Models, one setting's values and/or power limits, rounds: the plan, checked as it is typed."""

    def __init__(self, window):
        super().__init__(window)
        self.setWindowTitle("Sweep")
        self.window_ = window
        self.models = QListWidget()
        self.models.setToolTip("Tick the models to sweep (tick one to vary only a setting or the power limit)")
        loaded = window.controller.model.facts.path if window.controller.model else None
        for path in dict.fromkeys([*([str(loaded)] if loaded else []), *window.model_panel.recent_paths]):
            self._add_model(Path(path), checked=str(path) == str(loaded))
        add = side_button("Add model…", self._browse)
        self.setting = QComboBox()
        self.setting.addItems(["none", *SETTINGS])
        self.values = QLineEdit()
        self.values.setPlaceholderText("values, e.g. 1,2,4 (on,off for flash-attn)")
        self.limits = QLineEdit()
        self.limits.setPlaceholderText("watts, e.g. 150,200,250 (NVIDIA GPU; needs root)")
        self.rounds = spin_box(QSpinBox, 1, 100, 3, tip="Every round runs each variant once; rounds are interleaved")
        self.settle = spin_box(
            QDoubleSpinBox, 0, 600, 60, suffix=" s", tip="Longest wait, between runs, for power to come back near idle"
        )
        self.plan_label = QLabel()
        self.plan_label.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Cancel)
        self.go = self.buttons.addButton("Start sweep", QDialogButtonBox.AcceptRole)
        self.go.clicked.connect(self.start)
        self.buttons.rejected.connect(self.reject)
        for signal in (
            self.models.itemChanged,
            self.setting.currentTextChanged,
            self.values.textChanged,
            self.limits.textChanged,
            self.rounds.valueChanged,
        ):
            signal.connect(lambda *_: self.plan())
        form = QFormLayout()
        form.addRow("models", self.models)
        form.addRow("", add)
        setting_row = QWidget()
        row = QHBoxLayout(setting_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.setting)
        row.addWidget(self.values, 1)
        form.addRow("vary a setting", setting_row)
        form.addRow("GPU power limits", self.limits)
        form.addRow("rounds", self.rounds)
        form.addRow("settle timeout", self.settle)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.plan_label)
        layout.addWidget(self.buttons)
        self.go.setDefault(True)  # Enter runs it (set once the button is in the dialog, else Qt picks the first)
        self.resize(620, 480)
        restore_choices(window.settings, "sweep", self._remembered())
        self.plan()

    def _remembered(self) -> dict:
        return {
            "setting": self.setting,
            "values": self.values,
            "limits": self.limits,
            "rounds": self.rounds,
            "settle_timeout_s": self.settle,
        }

    def done(self, result: int) -> None:
        """Started or cancelled, the dialog opens next time as it is left."""
        save_choices(self.window_.settings, "sweep", self._remembered())
        super().done(result)

    def _add_model(self, path: Path, checked: bool) -> None:
        item = QListWidgetItem(path.name)
        item.setData(Qt.UserRole, str(path))
        item.setToolTip(str(path))
        item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
        item.setCheckState(Qt.Checked if checked else Qt.Unchecked)
        self.models.addItem(item)

    def _browse(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Models to sweep", "", "GGUF models (*.gguf)")
        for path in paths:
            self._add_model(Path(path), checked=True)

    def chosen_models(self) -> list[Path]:
        return [
            Path(self.models.item(i).data(Qt.UserRole))
            for i in range(self.models.count())
            if self.models.item(i).checkState() == Qt.Checked
        ]

    def plan(self):
        """The plan for what is chosen now (shown below), or None with the reason shown instead."""
        w = self.window_
        try:
            models = self.chosen_models()
            if not models:
                raise TpwError("tick at least one model")
            for model in models:
                read_model_facts(model)
            setting = (
                None if self.setting.currentText() == "none" else f"{self.setting.currentText()}={self.values.text()}"
            )
            limits = [float(v) for v in self.limits.text().split(",") if v.strip()]
            tests = w.workload_panel.tests()
            command = sweep_command(
                models,
                tests,
                self.rounds.value(),
                settings=w.engine_panel.settings(),
                options=w.run_options(),
                setting=setting,
                power_limits_w=limits,
                settle_timeout_s=self.settle.value(),
                power_spec=w.cli_power_spec(),
                tdp_w=w.tdp_w or DEFAULT_TDP_W,
            )
            plan = plan_sweep(
                models,
                w.engine_panel.settings(),
                tests,
                self.rounds.value(),
                w.run_options(),
                setting=setting,
                power_limits_w=limits,
                settle_timeout_s=self.settle.value(),
                command=command,
            )
        except ValueError:
            return self._refuse("power limits are watts, comma-separated: 150,200,250")
        except TpwError as exc:
            return self._refuse(str(exc))
        runs = len(plan.variants) * plan.rounds
        self.plan_label.setText(
            f"{len(plan.variants)} variants × {plan.rounds} rounds = {runs} runs of "
            f"{html.escape(', '.join(t.name for t in plan.tests))}:<br>"
            + html.escape(", ".join(v.label for v in plan.variants))
            + f"<br><small>same as: <code>{html.escape(plan.command)}</code></small>"
        )
        self.plan_label.setStyleSheet("")
        self.go.setEnabled(True)
        return plan

    def _refuse(self, reason: str) -> None:
        self.plan_label.setText(reason)
        self.plan_label.setStyleSheet("color: #d9534f")
        self.go.setEnabled(False)
        return None

    def start(self) -> None:
        plan = self.plan()
        if plan is None:
            return
        if not self.window_.controller.start_sweep(plan):
            self._refuse("Busy: wait for the run or the model being loaded (and a power source), then start.")
            return
        self.accept()
