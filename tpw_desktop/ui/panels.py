"""The settings panels: each owns its widgets, its signals, its defaults and its saved settings.

Defaults come from the core's dataclasses (``EngineSettings``,
``RunOptions``), never retyped here. Each panel saves values, not widget
indexes (friture's pattern), so a renamed or reordered choice still
restores.
"""

from __future__ import annotations

from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from ..engine.workloads import DEFAULT_MAX_TOKENS, TestSpec, Workload
from ..errors import TpwError
from ..peers.urls import redact
from ..record.meta import EngineSettings, RunOptions
from .form import guard_wheel, plain_label, set_combo_value, spin_box

BENCH_CHOICE = "bench"
CUSTOM_CHOICE = "custom"
ENGINE_DEFAULTS = EngineSettings()
RUN_DEFAULTS = RunOptions()


class EnginePanel(QGroupBox):
    """How the model is loaded: GPU layers, context, batch, threads, flash attention, seed, temperature."""

    reload_requested = Signal()

    def __init__(self, parent=None):
        super().__init__("Engine", parent)
        d = ENGINE_DEFAULTS
        self.gpu = False
        self._saved_ngl = -1
        self.ngl = spin_box(QSpinBox, -1, 999, 0, special="all")
        self.set_gpu_support(False, "the measuring process is starting")
        self.ctx = spin_box(QSpinBox, 256, 262_144, d.n_ctx, step=1024, suffix=" tokens")
        self.batch = spin_box(QSpinBox, 1, 65_536, d.n_batch, suffix=" tokens")
        self.threads = spin_box(QSpinBox, 0, 1024, 0, special="auto (physical cores)")
        self.fa = QComboBox()
        for label, value in (("auto (on where it works)", None), ("on", True), ("off", False)):
            self.fa.addItem(label, value)
        self.temperature = spin_box(
            QDoubleSpinBox,
            0.0,
            2.0,
            RUN_DEFAULTS.temperature,
            step=0.1,
            tip="0 = greedy: the same output every run, the fairest comparison",
        )
        self.seed = spin_box(QSpinBox, 0, 2**31 - 1, d.seed)
        self.reload_button = QPushButton("Reload model with these settings")
        self.reload_button.clicked.connect(self.reload_requested)
        form = QFormLayout(self)
        for label, widget in (
            ("GPU layers", self.ngl),
            ("context", self.ctx),
            ("batch", self.batch),
            ("threads", self.threads),
            ("flash attention", self.fa),
            ("temperature", self.temperature),
            ("seed", self.seed),
        ):
            form.addRow(label, widget)
        form.addRow(self.reload_button)
        guard_wheel(self.ngl, self.ctx, self.batch, self.threads, self.fa, self.temperature, self.seed)

    def set_gpu_support(self, supported: bool, why: str = "") -> None:
        """GPU layers only where the llama.cpp build can offload (known once the measuring process starts)."""
        self.gpu = supported
        self.ngl.setEnabled(supported)
        if supported:
            self.ngl.setValue(self._saved_ngl)
            self.ngl.setToolTip("Layers offloaded to the GPU (all = every layer, as llama-bench)")
        else:
            self.ngl.setValue(0)
            self.ngl.setToolTip(
                why
                or "This llama-cpp-python build has no GPU support: every layer runs on the "
                "CPU.\nReinstall it with CMAKE_ARGS=-DGGML_CUDA=on to use an NVIDIA GPU."
            )

    def settings(self) -> EngineSettings:
        ngl = self.ngl.value() if self.gpu else self._saved_ngl  # not known yet: the engine resolves "all"
        return EngineSettings(
            n_gpu_layers=None if ngl == -1 else ngl,
            n_ctx=self.ctx.value(),
            n_batch=self.batch.value(),
            n_threads=self.threads.value() or None,
            flash_attn=self.fa.currentData(),
            seed=self.seed.value(),
        )

    def differs_from(self, loaded: EngineSettings) -> bool:
        """Whether these settings would load differently from ``loaded`` (auto matches anything)."""
        w = self.settings()
        return (
            (w.n_ctx, w.n_batch, w.seed) != (loaded.n_ctx, loaded.n_batch, loaded.seed)
            or (w.n_threads not in (None, loaded.n_threads))
            or w.flash_attn not in (None, loaded.flash_attn)
        )

    def save(self, s: QSettings) -> None:
        if self.gpu:
            self._saved_ngl = self.ngl.value()
        for key, value in (
            ("ngl", self._saved_ngl),
            ("ctx", self.ctx.value()),
            ("batch", self.batch.value()),
            ("threads", self.threads.value()),
            ("flash_attn", {None: "auto", True: "on", False: "off"}[self.fa.currentData()]),
            ("temperature", self.temperature.value()),
            ("seed", self.seed.value()),
        ):
            s.setValue(f"engine/{key}", value)

    def restore(self, s: QSettings) -> None:
        self._saved_ngl = int(s.value("engine/ngl", -1))
        if self.gpu:
            self.ngl.setValue(self._saved_ngl)
        self.ctx.setValue(int(s.value("engine/ctx", ENGINE_DEFAULTS.n_ctx)))
        self.batch.setValue(int(s.value("engine/batch", ENGINE_DEFAULTS.n_batch)))
        self.threads.setValue(int(s.value("engine/threads", 0)))
        set_combo_value(
            self.fa, {"auto": None, "on": True, "off": False}.get(str(s.value("engine/flash_attn", "auto")))
        )
        self.temperature.setValue(float(s.value("engine/temperature", RUN_DEFAULTS.temperature)))
        self.seed.setValue(int(s.value("engine/seed", ENGINE_DEFAULTS.seed)))


class PowerPanel(QGroupBox):
    """Which power sources, the electricity price, and the idle baseline (settle, then measure)."""

    source_chosen = Signal(str)
    measure_idle_requested = Signal()

    def __init__(self, choices: list[tuple[str, str]], parent=None):
        super().__init__("Power", parent)
        self.source = QComboBox()
        for spec, description in choices:
            self.source.addItem(description, spec)
        self.source.activated.connect(lambda _i: self.source_chosen.emit(self.source.currentData()))
        self.sources_label = plain_label()
        self.sources_label.setWordWrap(True)
        self.price = spin_box(QDoubleSpinBox, 0.0, 100.0, 0.30, suffix=" per kWh")
        self.price.setDecimals(3)
        self.currency = QLineEdit(RUN_DEFAULTS.currency)
        self.currency.setMaxLength(8)
        self.idle = QCheckBox("measure idle power before each run")
        self.idle.setChecked(True)
        self.idle_s = spin_box(QDoubleSpinBox, 0.5, 60.0, RUN_DEFAULTS.idle_s, suffix=" s")
        self.settle_s = spin_box(
            QDoubleSpinBox,
            0.0,
            120.0,
            RUN_DEFAULTS.settle_s,
            suffix=" s",
            tip="Left alone before the idle window: a GPU takes seconds to leave its high power state",
        )
        self.idle_button = QPushButton("Measure idle now")
        self.idle_button.setToolTip("Re-measure the idle baseline (Ctrl+I)")
        self.idle_button.clicked.connect(self.measure_idle_requested)
        self.idle_label = plain_label("idle baseline: not measured")
        self.idle_label.setWordWrap(True)
        form = QFormLayout(self)
        form.addRow("source", self.source)
        form.addRow(self.sources_label)
        price_row = QHBoxLayout()
        price_row.addWidget(self.price, 1)
        price_row.addWidget(self.currency)
        form.addRow(plain_label("electricity"), price_row)
        form.addRow(self.idle)
        form.addRow("settle first", self.settle_s)
        form.addRow("idle for", self.idle_s)
        form.addRow(self.idle_button)
        form.addRow(self.idle_label)
        guard_wheel(self.source, self.price, self.idle_s, self.settle_s)

    @property
    def spec(self) -> str:
        return self.source.currentData()

    def show_spec(self, spec: str) -> None:
        if self.source.findData(spec) < 0:
            self.source.addItem(redact(spec), spec)
        set_combo_value(self.source, spec)

    def show_sources(self, sources, for_server: bool = False) -> None:
        """``for_server``: the machine's estimate swapped in for a server (its CPU isn't the measuring process's)."""
        note = "for the server, until the next local run: " if for_server else ""
        self.sources_label.setText(note + "\n".join(f"{s.name} — {s.method}: {s.measures}" for s in sources))

    def show_idle(self, measured) -> None:
        b = measured.baseline
        if b is None:
            self.idle_label.setText(f"idle baseline: unknown ({measured.reason})")
        else:
            settle = f" after {b.settle_s:g} s settling" if b.settle_s else ""
            self.idle_label.setText(
                f"idle baseline: {b.power_w:.1f} W{settle} ({b.method}{'' if b.confident else ', low confidence'})"
            )

    def options(self) -> dict:
        """This panel's part of the run options."""
        return {
            "idle_s": self.idle_s.value() if self.idle.isChecked() else 0.0,
            "settle_s": self.settle_s.value(),
            "price_per_kwh": self.price.value(),
            "currency": self.currency.text().strip() or RUN_DEFAULTS.currency,
        }

    def save(self, s: QSettings) -> None:
        for key, value in (
            ("spec", redact(self.spec)),  # never a password in the settings file
            ("price", self.price.value()),
            ("currency", self.currency.text()),
            ("idle", self.idle.isChecked()),
            ("idle_s", self.idle_s.value()),
            ("settle_s", self.settle_s.value()),
        ):
            s.setValue(f"power/{key}", value)

    def restore(self, s: QSettings) -> None:
        set_combo_value(self.source, str(s.value("power/spec", self.spec)))  # a choice this machine offers
        self.price.setValue(float(s.value("power/price", 0.30)))
        self.currency.setText(str(s.value("power/currency", RUN_DEFAULTS.currency)))
        self.idle.setChecked(s.value("power/idle", "true") in (True, "true"))
        self.idle_s.setValue(float(s.value("power/idle_s", RUN_DEFAULTS.idle_s)))
        self.settle_s.setValue(float(s.value("power/settle_s", RUN_DEFAULTS.settle_s)))


class WorkloadPanel(QGroupBox):
    """What to run: a shipped workload, llama-bench's pp512 + tg128, or a typed prompt; how many times."""

    def __init__(self, workloads: dict[str, Workload], parent=None):
        super().__init__("Workload", parent)
        self.workloads = workloads
        self.choice = QComboBox()
        for name, w in workloads.items():
            self.choice.addItem(w.title, name)
        self.choice.addItem("pp/tg benchmark (pp512 + tg128)", BENCH_CHOICE)
        self.choice.addItem("Custom prompt", CUSTOM_CHOICE)
        self.prompt = QPlainTextEdit()
        self.prompt.setPlaceholderText("Type a prompt…")
        self.prompt.setMaximumHeight(110)
        self.max_tokens = spin_box(
            QSpinBox,
            1,
            32_768,
            DEFAULT_MAX_TOKENS,
            suffix=" tokens",
            tip="Token budget for a custom prompt (shipped workloads bring their own)",
        )
        self.repetitions = spin_box(QSpinBox, 1, 100, RUN_DEFAULTS.repetitions, suffix=" ×")
        self.repetitions.setPrefix("repeat ")
        layout = QVBoxLayout(self)
        layout.addWidget(self.choice)
        layout.addWidget(self.prompt)
        budget = QFormLayout()
        budget.addRow("max tokens", self.max_tokens)
        layout.addLayout(budget)
        layout.addWidget(self.repetitions)
        guard_wheel(self.choice, self.max_tokens, self.repetitions)
        self._custom_text = ""
        self.choice.currentIndexChanged.connect(self._changed)
        self._changed()

    def _changed(self) -> None:
        choice = self.choice.currentData()
        custom = choice == CUSTOM_CHOICE
        self.prompt.setReadOnly(not custom)
        self.max_tokens.setEnabled(custom)
        if custom:
            self.prompt.setPlainText(self._custom_text)
        elif choice == BENCH_CHOICE:
            self.prompt.setPlainText(
                "llama-bench tests: 512 random prompt tokens (pp512), then 128 single-token "
                "decodes (tg128), each after a warm-up."
            )
        else:
            w = self.workloads[choice]
            last_user = [m["content"] for m in w.calls[0].messages if m["role"] == "user"][-1]
            preview = last_user if len(last_user) < 600 else last_user[:600] + " …"
            self.prompt.setPlainText(f"{w.description}\n\n{preview}")

    def select(self, choice: str, prompt: str | None = None) -> None:
        if prompt is not None:
            self._custom_text = prompt
        set_combo_value(self.choice, choice)
        self._changed()

    def tests(self) -> list[TestSpec]:
        choice = self.choice.currentData()
        if choice == BENCH_CHOICE:
            return [TestSpec.pp(512), TestSpec.tg(128)]
        if choice == CUSTOM_CHOICE:
            prompt = self.prompt.toPlainText().strip()
            if not prompt:
                raise TpwError("type a prompt first")
            self._custom_text = prompt
            w = Workload.single_prompt(prompt, self.max_tokens.value())
        else:
            w = self.workloads[choice]
        return [TestSpec.of(w)]

    def save(self, s: QSettings) -> None:
        if self.choice.currentData() == CUSTOM_CHOICE:
            self._custom_text = self.prompt.toPlainText()
        s.setValue("workload/choice", self.choice.currentData())
        s.setValue("workload/prompt", self._custom_text)
        s.setValue("workload/max_tokens", self.max_tokens.value())
        s.setValue("workload/repetitions", self.repetitions.value())

    def restore(self, s: QSettings) -> None:
        self.max_tokens.setValue(int(s.value("workload/max_tokens", DEFAULT_MAX_TOKENS)))
        self.repetitions.setValue(int(s.value("workload/repetitions", RUN_DEFAULTS.repetitions)))
        self.select(str(s.value("workload/choice", "chat")), str(s.value("workload/prompt", "")))
