"""Run ▸ Measure a server…: an OpenAI-compatible server tpw didn't start, measured against this machine's power.

The dialog gathers the server, its model, the workload and how many
clients; the measuring process sends the requests (``tpw bench
--endpoint``'s core), and the live view streams the server's tokens
against the sampled power as for a local model.
"""

from __future__ import annotations

import os

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..errors import TpwError
from ..peers.openai_server import Endpoint
from ..peers.text import plain
from ..peers.urls import server_url
from ..run.server import concurrency_levels
from ..worker.protocol import StartEndpoint
from .dialogs import side_button
from .form import plain_label, restore_choices, save_choices, spin_box

LIST_TIMEOUT_S = 3.0  # listing models happens on the window's thread: keep a dead server from freezing it long


class EndpointDialog(QDialog):
    def __init__(self, window):
        super().__init__(window)
        self.setWindowTitle("Measure a server")
        self.window_ = window
        s = window.settings
        self.url = QLineEdit("http://127.0.0.1:8080")
        self.url.setToolTip("llama-server, llama_cpp.server, vLLM, Ollama, LM Studio: any OpenAI-compatible server")
        self.model = QComboBox()
        self.model.setEditable(True)
        self.model.setToolTip("The model name the server expects")
        list_button = side_button("List models", self.list_models)
        self.workload = QComboBox()
        for name, workload in window.workload_panel.workloads.items():
            self.workload.addItem(workload.title, name)
        self.concurrency = spin_box(
            QSpinBox,
            1,
            256,
            4,
            tip="Measures 1, 2, 4 … up to this many clients at once",
        )
        self.repetitions = spin_box(QSpinBox, 1, 100, 2, tip="Times each client sends the workload at each level")
        self.timeout = spin_box(QDoubleSpinBox, 1, 3600, 60, suffix=" s")
        self.api_key = QLineEdit(os.environ.get("OPENAI_API_KEY", ""))
        self.api_key.setEchoMode(QLineEdit.Password)
        self.api_key.setPlaceholderText("none (or $OPENAI_API_KEY)")
        self.api_key.setToolTip("Sent as a bearer token to a server that needs one; never saved or shown")
        self.message = plain_label(
            "Only this machine's power is measured: run the server here, or watch a remote one "
            "in the Fleet view. Without a power sensor the whole machine's CPU is estimated, the "
            "server's included."
        )
        self.message.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Cancel)
        self.go = self.buttons.addButton("Start", QDialogButtonBox.AcceptRole)
        self.go.clicked.connect(self.start)
        self.buttons.rejected.connect(self.reject)
        model_row = QWidget()
        row = QHBoxLayout(model_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.model, 1)
        row.addWidget(list_button)
        form = QFormLayout()
        form.addRow("server", self.url)
        form.addRow("model", model_row)
        form.addRow("workload", self.workload)
        form.addRow("clients, up to", self.concurrency)
        form.addRow("repetitions", self.repetitions)
        form.addRow("timeout", self.timeout)
        form.addRow("API key", self.api_key)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.message)
        layout.addWidget(self.buttons)
        self.go.setDefault(True)  # Enter starts (set once the button is in the dialog, else Qt picks Cancel)
        restore_choices(s, "endpoint", self._remembered())
        self.resize(560, self.sizeHint().height())

    def _remembered(self) -> dict:
        """What the dialog opens with next time: never the API key (nor a URL's password: see ``start``)."""
        return {
            "url": self.url,
            "model": self.model,
            "workload": self.workload,
            "concurrency": self.concurrency,
            "repetitions": self.repetitions,
            "timeout": self.timeout,
        }

    def _say(self, text: str, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setStyleSheet("color: #d9534f" if error else "")

    def list_models(self) -> bool:
        try:
            endpoint = Endpoint(self.url.text().strip(), LIST_TIMEOUT_S, api_key=self._key())
            try:
                names = endpoint.models()
            finally:
                endpoint.close()
        except TpwError as exc:
            self._say(str(exc), error=True)
            return False
        self.model.clear()
        for name in names:  # a peer's text: shown plain, sent back as it was
            self.model.addItem(plain(name, 80), name)
        self._say(f"{len(names)} model{'s' if len(names) != 1 else ''} on the server.")
        return True

    def _key(self) -> str | None:
        return self.api_key.text().strip() or None

    def _model_id(self) -> str:
        """The listed model's id as the server spelled it, or what the user typed."""
        index = self.model.currentIndex()
        listed = self.model.itemData(index) if index >= 0 else None
        typed = self.model.currentText().strip()
        return listed if listed is not None and self.model.itemText(index) == typed else typed

    def start(self) -> None:
        if not self.model.currentText().strip() and not self.list_models():
            return
        levels = tuple(concurrency_levels(self.concurrency.value()))
        options = self.window_.run_options(repetitions=self.repetitions.value())
        try:
            address = server_url(self.url.text().strip(), "server", "http://127.0.0.1:8080")
        except TpwError as exc:  # a malformed URL is said here, not after the idle baseline
            self._say(str(exc), error=True)
            return
        job = StartEndpoint(
            address.full,
            self._model_id(),
            self.workload.currentData(),
            levels,
            self.repetitions.value(),
            options,
            self.timeout.value(),
            self._key(),
        )
        if not self.window_.controller.start_endpoint(job):
            self._say("Busy: wait for the run or the model being loaded (and a power source), then start.", True)
            return
        save_choices(self.window_.settings, "endpoint", self._remembered())
        self.window_.settings.setValue("endpoint/url", address.shown)  # never a password in the settings file
        self.accept()
