"""The engine's thread: loads models and runs measured sessions off the GUI thread.

The Engine (and its llama.cpp context) is created, used and closed on this
worker's QThread only. Lifecycle events cross to the GUI as queued
signals; run events go into a deque the GUI timer drains, so a fast model
can't flood the event loop with one signal per token.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QThread, Signal, Slot

from ..engine.llama_engine import Engine, EngineSettings
from ..engine.workloads import TestSpec
from ..errors import TpwError
from ..events import IdleMeasured, RepetitionDone, Status
from ..power import Sampler
from ..session import MeasuredRun, Recorder, RunOptions

EngineFactory = Callable[[Path, EngineSettings], Engine]


@dataclass
class RunRequest:
    tests: list[TestSpec]
    options: RunOptions
    sampler: Sampler
    recorder: Recorder | None
    workload_text: dict | None = None


class _Listener:
    """Run events into the deque the GUI timer drains; the few that change state also as signals."""

    def __init__(self, worker: EngineWorker):
        self.worker = worker

    def __call__(self, event) -> None:
        if isinstance(event, Status):
            self.worker.status.emit(event.message)
        elif isinstance(event, IdleMeasured):
            self.worker.idle_measured.emit(event)
        else:
            self.worker.events.append(event)
            if isinstance(event, RepetitionDone):
                self.worker.repetition_done.emit(event.test, event.repetition, list(event.results))


class EngineWorker(QObject):
    loading = Signal(str)  # stage
    loaded = Signal(object)  # the Engine's facts, build, settings, warnings (a dict)
    load_failed = Signal(str)
    status = Signal(str)
    idle_measured = Signal(object)
    repetition_done = Signal(str, int, object)
    run_finished = Signal(object)  # RunReport
    run_failed = Signal(str)

    def __init__(self, engine_factory: EngineFactory = Engine):
        super().__init__()
        self._factory = engine_factory
        self.engine: Engine | None = None
        self.stop = threading.Event()
        self.events: deque = deque()

    @Slot(object, object)
    def load(self, path: Path, settings: EngineSettings) -> None:
        """Load a model; a file that isn't a usable GGUF is refused before the current one is closed."""
        from ..engine.gguf_info import read_model_facts

        started = time.monotonic()
        self.loading.emit("reading the GGUF header")
        try:
            read_model_facts(path)
        except TpwError as exc:
            self.load_failed.emit(str(exc))
            return
        self.loading.emit("loading weights into llama.cpp")
        if self.engine is not None:
            self.engine.close()
            self.engine = None
        try:
            self.engine = self._factory(path, settings)
        except TpwError as exc:
            self.load_failed.emit(str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - llama.cpp can fail in many ways; the window must survive
            self.load_failed.emit(f"{path}: could not load ({type(exc).__name__}: {exc})")
            return
        e = self.engine
        self.loaded.emit({
            "facts": e.facts,
            "build": e.build,
            "settings": e.settings,
            "warnings": list(e.warnings),
            "seconds": time.monotonic() - started,
        })

    @Slot(object)
    def run(self, request: RunRequest) -> None:
        if self.engine is None:
            self.run_failed.emit("no model is loaded")
            return
        self.stop.clear()
        run = MeasuredRun(self.engine, request.sampler, request.options, recorder=request.recorder,
                          listener=_Listener(self), stop=self.stop)
        try:
            report = run.run(request.tests, request.workload_text)
        except TpwError as exc:
            self.run_failed.emit(str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - reported in the window, saved as failed by MeasuredRun
            self.run_failed.emit(f"{type(exc).__name__}: {exc}")
            return
        self.run_finished.emit(report)

    @Slot()
    def shutdown(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None


class EngineHost(QObject):
    """A worker on its own QThread, and the signals that reach its slots."""

    request_load = Signal(object, object)
    request_run = Signal(object)
    request_shutdown = Signal()

    def __init__(self, engine_factory: EngineFactory = Engine, parent=None):
        super().__init__(parent)
        self.thread = QThread()
        self.thread.setObjectName("tpw-engine")
        self.worker = EngineWorker(engine_factory)
        self.worker.moveToThread(self.thread)
        self.request_load.connect(self.worker.load)
        self.request_run.connect(self.worker.run)
        self.request_shutdown.connect(self.worker.shutdown)
        self.thread.start()

    def stop_run(self) -> None:
        self.worker.stop.set()

    def close(self, timeout_ms: int = 10_000) -> None:
        """Stop any run, free the model on its own thread, end the thread."""
        self.worker.stop.set()
        self.request_shutdown.emit()
        self.thread.quit()
        self.thread.wait(timeout_ms)
