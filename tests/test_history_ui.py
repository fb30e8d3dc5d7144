"""History, Compare, Sweep and Quantize in the window: real widgets over a real database of real runs."""

import html
import json
import shlex
from dataclasses import replace
from html.parser import HTMLParser

import numpy as np
import pytest
from answer_dialogs import answering, cancel, choose_file, press
from conftest import job_done

pytest.importorskip("PySide6")

from fake_nvml import FakeGpu, make_fake_nvml
from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtWidgets import QDialogButtonBox, QMessageBox, QPushButton
from replay import replay_sampler
from tpw_cli import run_tpw

from tpw_desktop.cli.measure_options import _KEYS, build_spec
from tpw_desktop.cli.sweep import sweep_cli
from tpw_desktop.engine.workloads import TestSpec
from tpw_desktop.power import PowerEnvironment, open_sources
from tpw_desktop.power.limits import PowerLimiter
from tpw_desktop.record.meta import EngineSettings, RunOptions
from tpw_desktop.run.sweep import SweepRunner, plan_sweep
from tpw_desktop.store import SessionWriter, Store
from tpw_desktop.ui.compare_view import CompareView
from tpw_desktop.ui.history import COLUMNS, HistoryView, _column
from tpw_desktop.ui.panels import CUSTOM_CHOICE
from tpw_desktop.ui.theme import THEMES


@pytest.fixture(scope="module")
def history_db(tmp_path_factory, two_quantizations):
    """Two sweeps (two quantizations x 2 rounds; two power limits on a fake GPU) and one estimated bench."""
    db = tmp_path_factory.mktemp("history") / "sessions.db"
    q8, q4 = two_quantizations
    options = RunOptions(idle_s=0.2, settle_s=0)
    models = plan_sweep(
        [q8, q4], EngineSettings(n_ctx=256), [TestSpec.pp(16), TestSpec.tg(8)], 2, options, settle_timeout_s=1
    )
    limits = plan_sweep(
        [q4], EngineSettings(n_ctx=256), [TestSpec.tg(8)], 1, options, power_limits_w=[250, 350], settle_timeout_s=1
    )
    limiter = PowerLimiter(0, module=make_fake_nvml([FakeGpu(power_limit_mw=450_000)]))
    with replay_sampler() as sampler, SessionWriter(db) as writer:
        model_sweep = SweepRunner(models, sampler, recorder=writer).run()
        limit_sweep = SweepRunner(limits, sampler, recorder=writer, limiter=limiter).run()
    done = run_tpw(
        "bench", str(q8), "-p", "0", "-n", "8", "-r", "1", "--idle-s", "0", "--power", "estimate", "-q", db=db
    )
    assert done.returncode == 0, done.stderr
    return db, model_sweep.sweep_id, limit_sweep.sweep_id


@pytest.fixture
def history(qtbot, history_db):
    view = HistoryView(history_db[0], THEMES["dark"])
    qtbot.addWidget(view)
    view.resize(1200, 800)
    view.show()
    view.refresh()
    return view


def shown(view, attr):
    return [view.proxy.index(r, _column(attr)).data() for r in range(view.proxy.rowCount())]


def select_rows(view, rows):
    selection = view.table.selectionModel()
    selection.clearSelection()
    for r in rows:
        selection.select(view.proxy.index(r, 0), QItemSelectionModel.Select | QItemSelectionModel.Rows)


def test_history_lists_every_session_and_filters_them(history):
    assert history.model.rowCount() == 7 and history.count_label.text() == "7 of 7 sessions"
    history.filter_edit.setText("q8_0")
    assert shown(history, "model") == ["tiny-Q8_0.gguf"] * 3
    history.filter_edit.setText("q8_0 round")  # every word, in any column: the bench isn't in a sweep
    assert len(shown(history, "model")) == 2
    history.filter_edit.setText("")
    history.method_box.setCurrentText("estimated")
    assert shown(history, "method") == ["estimated"] and history.count_label.text() == "1 of 7 sessions"
    history.method_box.setCurrentText("any")
    assert [history.status_box.itemText(i) for i in range(history.status_box.count())] == ["any", "completed"]
    history.status_box.setCurrentText("completed")
    assert shown(history, "status") == ["completed"] * 7


def test_history_sorts_figures_as_numbers(history):
    column = _column("tokens_per_s")
    history.table.sortByColumn(column, Qt.DescendingOrder)
    values = [float(v) for v in shown(history, "tokens_per_s")]
    assert values == sorted(values, reverse=True) and len(values) == 7
    assert COLUMNS[column][0] == "tok/s"


def test_opening_a_session_redraws_its_run_from_stored_samples(history, history_db):
    history.filter_edit.setText("tiny-Q8_0 round 2")  # a pp16 + tg8 session of the sweep
    select_rows(history, [0])
    assert history.open_button.isEnabled() and not history.compare_button.isEnabled()
    history.open_selected()
    session_id = history.opened_id
    series = history.charts._series
    with Store.for_reading(history_db[0]) as store:
        session = store.session(session_id)
        stored_tokens = len(store.token_times_ns(session_id))
        samples = store.sample_count(session_id)
    # the same widget as live: power curves from the samples, tokens/s from the tokens, phases shaded
    x, y = history.charts._power_curves[0].getData()
    assert len(x) > 0 and np.nanmax(y) == pytest.approx(100.0 if session.meta.method == "replayed" else np.nanmax(y))
    assert samples > 0 and stored_tokens > 0
    assert {p.kind for p in series.phases} == {"pp", "tg"}  # a pp test stores no call: its phase still shows
    assert np.nansum(series.bin_series(0, series.now_s + 1)["tok_s"]) > 0
    assert series.idle_w == session.outcome.idle.power_w == pytest.approx(100.0)
    assert history.charts.idle_line.isVisible()
    text = history.details.toPlainText()
    assert f"Session {session_id}" in text and "machine" in text and "llama.cpp" in text and "settings" in text


def test_the_history_restores_its_filter(history, tmp_path):
    from PySide6.QtCore import QSettings

    settings = QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat)
    history.filter_edit.setText("Q4_0")
    history.save(settings)
    other = HistoryView(None, THEMES["dark"])
    other.restore(settings)
    assert other.filter_edit.text() == "Q4_0"
    other.refresh()
    assert other.count_label.text() == "0 of 0 sessions (sessions aren't saved)"


def test_compare_draws_one_bar_per_selected_session(qtbot, history, history_db):
    compare = CompareView(history_db[0], THEMES["light"])
    qtbot.addWidget(compare)
    history.compare_requested.connect(compare.show_sessions)
    history.filter_edit.setText("round 1")  # the first round of each sweep variant: four sessions
    select_rows(history, [0, 1, 2])
    assert history.compare_button.isEnabled()
    history.compare_button.click()
    assert len(compare.comparison.variants) == 3
    for figure in ("tokens_per_j", "tokens_per_s"):
        assert len(compare.bars[figure].opts["x"]) == 3
    assert compare.table.rowCount() == len(compare.comparison.rows)
    assert compare.table.item(0, 0).text() == compare.comparison.variants[0]


def test_compare_its_sweep_is_clicked_from_a_session_of_the_sweep(qtbot, history, history_db):
    history.filter_edit.setText("250 W")  # a session of the power-limit sweep
    select_rows(history, [0])
    assert history.sweep_button.isEnabled()
    with qtbot.waitSignal(history.sweep_requested, timeout=5_000) as asked:
        qtbot.mouseClick(history.sweep_button, Qt.LeftButton)
    assert asked.args == [history_db[2]]
    history.filter_edit.setText("estimated")  # the bench: in no sweep
    select_rows(history, [0])
    assert not history.sweep_button.isEnabled()


def test_compare_a_sweep_with_ratios_its_report_and_charts(qtbot, history_db, tmp_path):
    db, model_sweep, limit_sweep = history_db
    compare = CompareView(db, THEMES["dark"])
    qtbot.addWidget(compare)
    compare.refresh_sweeps()
    assert compare.sweep_box.count() == 3  # "choose…" and both sweeps
    assert compare.sweep_box.currentData() == limit_sweep  # the newest, to start with
    compare.sweep_box.activated.emit(compare.sweep_box.findData(model_sweep))  # as a user picks it
    compare.refresh_sweeps()  # the tab shown again: the choice stays
    assert compare.sweep_box.currentData() == model_sweep and compare.comparison.sweep.id == model_sweep
    assert compare.comparison.variants == ["tiny-Q8_0", "tiny-Q4_0"]
    assert len(compare.bars["tokens_per_j"].opts["x"]) == 2 and not compare.limit_plot.isVisible()
    ticks = compare.eff_plot.getAxis("bottom")._tickLevels[0]
    assert [text for _, text in ticks] == ["Q8_0", "Q4_0"]  # what tells them apart; the full names:
    assert "Q8_0: tiny-Q8_0" in compare.plots.toolTip() and "Q4_0: tiny-Q4_0" in compare.plots.toolTip()
    compare.baseline_box.setCurrentText("tiny-Q4_0")
    compare.baseline_box.activated.emit(1)
    assert compare.comparison.baseline == "tiny-Q4_0"
    ratios = {r.variant: r.ratio_tokens_per_s for r in compare.comparison.main_rows()}
    assert ratios["tiny-Q4_0"] == 1.0
    compare.resize(1000, 700)
    compare.show()
    saved, problems = [], []
    compare.saved.connect(saved.append)
    compare.problem.connect(problems.append)
    for name in ("r.html", "r.json"):  # clicked, the path typed into the real file dialog
        with answering(choose_file(tmp_path / name)) as asked:
            qtbot.mouseClick(compare.report_button, Qt.LeftButton)
        assert asked.titles == ["Export the comparison"]
    HTMLParser().feed((tmp_path / "r.html").read_text())
    report = (tmp_path / "r.html").read_text()
    assert "<li><b>Q8_0</b>: tiny-Q8_0</li>" in report and ">Q4_0</tspan>" in report
    assert json.loads((tmp_path / "r.json").read_text())["baseline"] == "tiny-Q4_0"
    for name in ("c.png", "c.svg"):
        with answering(choose_file(tmp_path / name)):
            qtbot.mouseClick(compare.charts_button, Qt.LeftButton)
        assert (tmp_path / name).stat().st_size > 1000
    assert saved == [str(tmp_path / n) for n in ("r.html", "r.json", "c.png", "c.svg")] and problems == []
    with answering(choose_file(tmp_path / "r.txt")):
        qtbot.mouseClick(compare.report_button, Qt.LeftButton)
    assert problems == [f"{tmp_path / 'r.txt'}: a report is .html, .csv or .json"]
    with answering(cancel):  # cancelled: nothing written, nothing said
        qtbot.mouseClick(compare.charts_button, Qt.LeftButton)
    assert len(saved) == 4 and len(problems) == 1


def test_a_power_limit_sweep_draws_its_curve_and_marks_the_best_cap(qtbot, history_db):
    compare = CompareView(history_db[0], THEMES["dark"])
    qtbot.addWidget(compare)
    compare.show()
    compare.show_sweep(history_db[2])
    assert compare.comparison.variants == ["250 W", "350 W"]
    assert compare.limit_plot.isVisible()
    best = compare.comparison.best_power_limit()
    texts = [item.toPlainText() for item in compare.limit_plot.items if hasattr(item, "toPlainText")]
    assert any(t.startswith(f"best: {best.power_limit_w:g} W") for t in texts)


def test_quantize_and_sweep_from_the_window(qtbot, make_window, tiny_model, tmp_path):
    """A new user's path: quantize a model in the dialog, sweep the two files, land on their comparison."""
    window = make_window()
    source = tmp_path / "tiny-F32.gguf"
    source.write_bytes(tiny_model.read_bytes())
    dialog = window.workflows.open_quantize()
    source_browse, output_browse = [b for b in dialog.findChildren(QPushButton) if b.text() == "Browse…"]
    with answering(choose_file(source)) as asked:
        qtbot.mouseClick(source_browse, Qt.LeftButton)
    assert asked.titles == ["Model to quantize"] and dialog.source.text() == str(source)
    dialog.qtype.setCurrentText("Q8_0")
    assert dialog.output.text() == str(tmp_path / "tiny-Q8_0.gguf")
    with qtbot.waitSignal(window.controller.job_finished, timeout=60_000, check_params_cb=job_done("quantize")):
        qtbot.keyClick(dialog.output, Qt.Key_Return)  # Enter means Quantize, not Browse… nor Close
    assert dialog.made == tmp_path / "tiny-Q8_0.gguf" and dialog.made.exists()
    assert str(dialog.made) in window.model_panel.recent_paths
    dialog.source.setText(str(dialog.made))  # already quantized: asks, and the answer is no
    dialog.qtype.setCurrentText("Q4_0")
    with answering(choose_file(tmp_path / "again.gguf")):
        qtbot.mouseClick(output_browse, Qt.LeftButton)
    assert dialog.output.text() == str(tmp_path / "again.gguf")
    with answering(press(QMessageBox.No)) as asked:
        qtbot.mouseClick(dialog.go, Qt.LeftButton)
    assert asked.titles == ["Already quantized"] and "Not quantized" in dialog.message.text()
    assert not (tmp_path / "again.gguf").exists()
    qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.Close), Qt.LeftButton)
    assert not dialog.isVisible()

    window.workload_panel.select(CUSTOM_CHOICE, "the energy of a token")
    window.workload_panel.max_tokens.setValue(8)
    window.power_panel.idle.setChecked(True)
    window.power_panel.idle_s.setValue(0.3)
    window.power_panel.settle_s.setValue(0)
    sweep = window.workflows.open_sweep()
    [add] = [b for b in sweep.findChildren(QPushButton) if b.text() == "Add model…"]
    with answering(choose_file(source)):
        qtbot.mouseClick(add, Qt.LeftButton)
    assert sweep.models.item(sweep.models.count() - 1).data(Qt.UserRole) == str(source)
    for i in range(sweep.models.count()):
        item = sweep.models.item(i)
        item.setCheckState(Qt.Checked if item.data(Qt.UserRole) in (str(source), str(dialog.made)) else Qt.Unchecked)
    sweep.rounds.setValue(1)
    sweep.settle.setValue(1)
    plan = sweep.plan()
    assert plan is not None and [v.label for v in plan.variants] == ["tiny-Q8_0", "tiny-F32"]
    assert "tpw sweep" in sweep.plan_label.text()
    with qtbot.waitSignal(window.controller.job_finished, timeout=120_000, check_params_cb=job_done("sweep")) as done:
        qtbot.keyClick(sweep.values, Qt.Key_Return)  # Enter means Start sweep, not Add model… nor Cancel
    assert done.args[0].status == "completed" and done.args[0].result.runs == 2
    qtbot.waitUntil(lambda: window.views.currentWidget() is window.compare_view, timeout=5_000)
    assert len(window.compare_view.bars["tokens_per_j"].opts["x"]) == 2
    window.views.setCurrentWidget(window.history)
    assert window.history.model.rowCount() == 2 and all(shown(window.history, "sweep"))


def test_the_sweep_dialog_says_what_is_wrong_before_starting(qtbot, make_window):
    window = make_window()
    sweep = window.workflows.open_sweep()
    for i in range(sweep.models.count()):
        sweep.models.item(i).setCheckState(Qt.Unchecked)
    assert sweep.plan() is None and sweep.plan_label.text() == "tick at least one model" and not sweep.go.isEnabled()
    sweep._add_model(window.bundled_model, checked=True)
    assert sweep.plan() is None and "a sweep needs at least two variants" in sweep.plan_label.text()
    sweep.setting.setCurrentText("threads")
    sweep.values.setText("1,2")
    assert sweep.plan() is not None and sweep.go.isEnabled()
    sweep.limits.setText("lots")
    assert sweep.plan() is None and "power limits are watts" in sweep.plan_label.text()


def test_the_sweeps_command_line_measures_what_the_window_would(qtbot, make_window, tiny_model, tmp_path):
    """'Same as' means the same: the printed command, read back by `tpw sweep`, gives the window's plan."""
    window = make_window()
    window.workload_panel.select(CUSTOM_CHOICE, "Name three 'quoted' rivers; then stop.")
    window.workload_panel.max_tokens.setValue(24)
    window.engine_panel.temperature.setValue(0.7)
    window.engine_panel.ctx.setValue(1024)
    window.power_panel.idle_s.setValue(1.5)
    sweep = window.workflows.open_sweep()
    sweep._add_model(tiny_model, checked=True)
    sweep._add_model(tmp_path / "other.gguf", checked=False)
    for i in range(sweep.models.count()):
        item = sweep.models.item(i)
        item.setCheckState(Qt.Checked if item.data(Qt.UserRole) == str(tiny_model) else Qt.Unchecked)
    sweep.setting.setCurrentText("threads")
    sweep.values.setText("1,2")
    plan = sweep.plan()
    assert plan is not None and html.escape(plan.command) in sweep.plan_label.text()
    args = shlex.split(plan.command)
    assert args[:2] == ["tpw", "sweep"] and "-w" not in args and "auto" not in args
    params = sweep_cli.make_context("sweep", args[2:]).params
    spec = build_spec({key: params[key] for key in _KEYS}, repetitions=1)
    assert spec.tests == list(plan.tests)
    assert spec.options == replace(plan.options, repetitions=spec.options.repetitions)
    assert [replace(v.settings, n_threads=None) for v in plan.variants] == [spec.settings, spec.settings]
    assert params["setting"] == "threads=1,2" and spec.power_spec == window.power_panel.spec
    sweep.close()


def test_the_windows_auto_power_is_spelled_as_the_sources_it_opened(make_window):
    window = make_window(choices=[("auto", "auto (best available)")])
    spec = window.cli_power_spec()
    opened = [s.name for s in open_sources(spec, PowerEnvironment())]
    assert opened == [s.name for s in window.controller.sources]


def test_the_sweep_dialog_opens_as_it_was_left(qtbot, make_window):
    window = make_window()
    sweep = window.workflows.open_sweep()
    sweep.setting.setCurrentText("batch")
    sweep.values.setText("256,512")
    sweep.limits.setText("150,200")
    sweep.rounds.setValue(5)
    qtbot.mouseClick(sweep.buttons.button(QDialogButtonBox.Cancel), Qt.LeftButton)
    assert not sweep.isVisible()
    again = window.workflows.open_sweep()
    assert (again.setting.currentText(), again.values.text(), again.limits.text()) == ("batch", "256,512", "150,200")
    assert again.rounds.value() == 5
    again.close()
