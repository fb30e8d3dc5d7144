"""The desktop window, offscreen, with its parts handed in: real llama.cpp, a replayed
power trace, a real SQLite file, a temporary settings file."""
import time

import numpy as np
import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDropEvent  # noqa: E402

from tpw_desktop.power import PowerTrace, ReplaySource, Sampler  # noqa: E402
from tpw_desktop.store import SessionWriter, Store  # noqa: E402
from tpw_desktop.ui.main_window import BENCH_CHOICE, CUSTOM_CHOICE, MainWindow  # noqa: E402
from tpw_desktop.ui.worker import EngineHost  # noqa: E402

WATTS = 100.0


def constant_sampler(_spec: str) -> Sampler:
    trace = PowerTrace(np.array([0.0, 3600.0]), np.array([WATTS, WATTS]), None, "constant-100W.csv")
    return Sampler([ReplaySource(trace, time.monotonic_ns)], rate_hz=50)


@pytest.fixture
def make_window(qtbot, tmp_path, bundled_model):
    made = []

    def make(open_sampler=constant_sampler, db=True):
        settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
        db_path = tmp_path / "sessions.db"
        writer = SessionWriter(db_path) if db else None
        window = MainWindow(host=EngineHost(), open_sampler=open_sampler,
                            power_choices=[("replay", "constant 100 W — replayed")], settings=settings,
                            writer=writer, db_path=db_path if db else None, bundled_model=bundled_model)
        qtbot.addWidget(window)
        window.resize(1280, 800)
        window.show()
        window.activateWindow()  # keyboard shortcuts go to the active window, as on a desktop
        qtbot.waitUntil(window.isActiveWindow, timeout=5_000)
        made.append((window, writer))
        return window

    yield make
    for window, writer in made:
        window.shutdown()
        if writer:
            writer.close()


def load(qtbot, window, path):
    with qtbot.waitSignal(window.model_loaded, timeout=30_000):
        window.load_model(path)


def custom_prompt(window, text="the energy of a token", max_tokens=40, reps=1, idle=False):
    window.workload_combo.setCurrentIndex(window.workload_combo.findData(CUSTOM_CHOICE))
    window.prompt_edit.setPlainText(text)
    window.max_tokens_spin.setValue(max_tokens)
    window.reps_spin.setValue(reps)
    window.idle_check.setChecked(idle)
    window.idle_spin.setValue(0.5)


def sessions(tmp_path):
    with Store(tmp_path / "sessions.db") as store:
        return [store.session(s["id"]) for s in store.list_sessions()]


def test_a_run_fills_the_charts_and_tiles_and_is_saved(qtbot, make_window, tiny_model, tmp_path):
    window = make_window()
    load(qtbot, window, tiny_model)
    assert "tiny-llama-f32.gguf" in window.model_label.text() and "F32" in window.model_label.text()
    custom_prompt(window, reps=2, idle=True)
    with qtbot.waitSignal(window.run_ended, timeout=60_000) as ended:
        qtbot.mouseClick(window.start_button, Qt.LeftButton)
    assert ended.args == ["completed"]
    window.refresh()

    x, y = window.charts.rate_rolling.getData()
    assert len(x) > 0 and np.nanmax(y) > 0
    px, py = window.charts._power_curves[0].getData()
    assert len(px) > 10 and np.allclose(py, WATTS)
    ex, ey = window.charts.eff_run.getData()
    assert np.nanmax(ey) > 0
    assert window.charts.idle_line.isVisible() and window.charts.idle_line.value() == pytest.approx(WATTS)
    assert {p.kind for p in window.live.phases} == {"settle", "idle", "warmup", "pp", "tg"}
    assert [p.kind for p in window.live.phases[:3]] == ["settle", "idle", "warmup"]

    for key in ("power_w", "tok_j", "j_tok", "wh_1k", "cost_1m"):
        assert "replayed" in window.tiles[key].method.text(), key
    assert window.tiles["power_w"].value.text() == "100.0"
    assert window.tiles["tok_j"].value.text() != "–"
    assert "timed" in window.tiles["tok_s"].method.text()
    assert "replayed" in window.summary.toPlainText() and "chat" not in window.summary.toPlainText()
    assert window.output.toPlainText()

    [session] = sessions(tmp_path)
    assert session["status"] == "completed" and session["method"] == "replayed"
    assert session["idle_power_w"] == pytest.approx(WATTS, rel=1e-4)
    assert f"session {session['id']} saved in" in window.status_label.text()


def test_stop_mid_run_saves_a_cancelled_session(qtbot, make_window, bundled_model, tmp_path):
    window = make_window()
    load(qtbot, window, bundled_model)
    window.workload_combo.setCurrentIndex(window.workload_combo.findData(BENCH_CHOICE))
    window.reps_spin.setValue(20)
    window.idle_check.setChecked(False)
    window.start()
    qtbot.waitUntil(lambda: "repetition 2/20" in window.status_label.text(), timeout=60_000)
    with qtbot.waitSignal(window.run_ended, timeout=30_000) as ended:
        qtbot.keyClick(window, Qt.Key_Escape)
    assert ended.args == ["cancelled"]
    [session] = sessions(tmp_path)
    assert session["status"] == "cancelled"
    assert window.start_button.isEnabled() and not window.stop_button.isEnabled()


def test_a_prompt_too_long_for_the_context_is_refused_with_a_message(qtbot, make_window, tiny_model, tmp_path):
    window = make_window()
    window.ctx_spin.setValue(256)
    load(qtbot, window, tiny_model)
    custom_prompt(window, text="energy " * 300, max_tokens=50)  # more than the 256-token context
    with qtbot.waitSignal(window.run_ended, timeout=30_000) as ended:
        window.start()
    assert ended.args == ["failed"]
    assert "tokens of context, but the model was loaded with 256" in window.banner.text()
    assert sessions(tmp_path) == []  # refused before anything was measured
    assert window.start_button.isEnabled()  # the app carries on


def test_a_bad_model_file_is_a_message_and_the_loaded_model_stays(qtbot, make_window, tiny_model, tmp_path):
    window = make_window()
    load(qtbot, window, tiny_model)
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"definitely not weights")
    with qtbot.waitSignal(window.model_failed, timeout=10_000):
        window.load_model(bad)
    assert "broken.gguf: not a GGUF file" in window.banner.text()
    assert "tiny-llama-f32.gguf is still loaded" in window.banner.text()
    assert window.start_button.isEnabled()
    with qtbot.waitSignal(window.model_failed, timeout=10_000):
        window.load_model(tmp_path / "absent.gguf")
    assert "no such file" in window.banner.text()


def test_a_power_source_that_stops_answering_is_reported(qtbot, make_window, tiny_model):
    from sources import Switchable

    source = Switchable()
    window = make_window(open_sampler=lambda _spec: Sampler([source], rate_hz=100))
    source.alive = False
    qtbot.waitUntil(lambda: "stopped answering" in window.banner.text(), timeout=5_000)
    assert "switchable" in window.banner.text() and "device went away" in window.banner.text()


def test_presentation_mode_is_full_screen_charts_and_tiles(qtbot, make_window):
    window = make_window()
    normal_font = window.tiles["tok_j"].value.styleSheet()
    qtbot.keyClick(window, Qt.Key_F11)
    assert window.presentation
    assert not window.side.isVisible() and not window.tabs.isVisible() and not window.menuBar().isVisible()
    assert window.charts.isVisible() and window.tiles.isVisible()
    assert window.tiles["tok_j"].value.styleSheet() != normal_font
    qtbot.keyClick(window, Qt.Key_F11)
    assert not window.presentation and window.side.isVisible() and window.menuBar().isVisible()


def test_keyboard_starts_a_run(qtbot, make_window, tiny_model):
    window = make_window(db=False)
    load(qtbot, window, tiny_model)
    custom_prompt(window, max_tokens=8)
    with qtbot.waitSignal(window.run_ended, timeout=30_000):
        qtbot.keyClick(window, Qt.Key_Return, Qt.ControlModifier)
    assert window.last_report.status == "completed" and window.last_report.session_id is None


def test_measuring_idle_on_demand(qtbot, make_window, tiny_model):
    window = make_window()
    load(qtbot, window, tiny_model)
    window.idle_spin.setValue(0.5)
    with qtbot.waitSignal(window.idle_updated, timeout=10_000) as idle:
        qtbot.keyClick(window, Qt.Key_I, Qt.ControlModifier)
    assert idle.args[0] == pytest.approx(WATTS, rel=1e-4)
    assert "100.0 W (replayed" in window.idle_label.text()
    qtbot.waitUntil(lambda: window.start_button.isEnabled(), timeout=5_000)


def test_settings_and_recent_models_persist(qtbot, make_window, tiny_model):
    window = make_window(db=False)
    load(qtbot, window, tiny_model)
    window.price_spin.setValue(0.42)
    window.currency_edit.setText("EUR")
    window.reps_spin.setValue(7)
    window.close()
    again = make_window(db=False)
    assert again.price_spin.value() == 0.42 and again.currency_edit.text() == "EUR" and again.reps_spin.value() == 7
    assert again.recent_models() == [str(tiny_model.resolve())]
    assert again.initial_model() == tiny_model.resolve()


def test_dropping_a_gguf_loads_it(qtbot, make_window, tiny_model):
    window = make_window(db=False)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(tiny_model))])
    event = QDropEvent(QPointF(10, 10), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    with qtbot.waitSignal(window.model_loaded, timeout=10_000):
        window.dropEvent(event)
    assert window.model_facts.file_name == "tiny-llama-f32.gguf"


def test_gpu_layers_explain_themselves_on_a_cpu_build(make_window):
    window = make_window(db=False)
    if window.build.gpu_offload_supported:
        pytest.skip("this build can offload to a GPU")
    assert not window.ngl_spin.isEnabled()
    assert "no GPU support" in window.ngl_spin.toolTip()


def test_charts_export_to_png_svg_and_csv(qtbot, make_window, tiny_model, tmp_path):
    window = make_window(db=False)
    load(qtbot, window, tiny_model)
    custom_prompt(window, max_tokens=16)
    with qtbot.waitSignal(window.run_ended, timeout=30_000):
        window.start()
    window.refresh()
    for suffix in ("png", "svg", "csv"):
        path = tmp_path / f"charts.{suffix}"
        window.charts.export(str(path))
        assert path.stat().st_size > 100
    header = (tmp_path / "charts.csv").read_text().splitlines()[0]
    assert "power_w:replay:constant-100W.csv (replayed):value" in header
    assert "tokens_per_j:this run:value" in header
    assert (tmp_path / "charts.png").read_bytes().startswith(b"\x89PNG")


def test_the_export_dialog_offers_a_working_svg_exporter(qtbot, make_window, tmp_path):
    from pyqtgraph.exporters import Exporter, SVGExporter

    from tpw_desktop.ui.svg_export import QtSvgExporter

    window = make_window(db=False)
    assert QtSvgExporter in Exporter.Exporters and SVGExporter not in Exporter.Exporters
    path = tmp_path / "one-chart.svg"
    QtSvgExporter(window.charts.power_plot).export(str(path))  # what right-click > Export does for one chart
    svg = path.read_text()
    assert "<svg" in svg and "</svg>" in svg and "power" in svg


def test_nice_y_ceilings():
    from tpw_desktop.ui.charts import nice_ceiling

    assert [nice_ceiling(v) for v in (0.0, 0.9, 1.0, 1.9, 2.3, 4.0, 7.0, 130.0)] == [1.0, 1.0, 2.0, 2.0, 2.5, 5.0, 10.0, 200.0]


def test_start_is_visible_without_scrolling_in_a_small_window(qtbot, make_window):
    window = make_window(db=False)
    window.resize(1024, 640)
    qtbot.waitUntil(lambda: window.height() <= 640)
    window.refresh()
    button = window.start_button
    top_left = button.mapTo(window, button.rect().topLeft())
    assert button.isVisible()
    assert 0 <= top_left.y() and top_left.y() + button.height() <= window.height()
