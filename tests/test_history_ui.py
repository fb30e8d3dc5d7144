"""History, Compare, Sweep and Quantize in the window: real widgets over a real database of real runs."""

import json
from html.parser import HTMLParser

import numpy as np
import pytest
from conftest import job_done

pytest.importorskip("PySide6")

from fake_nvml import FakeGpu, make_fake_nvml
from PySide6.QtCore import QItemSelectionModel, Qt
from replay import replay_sampler
from tpw_cli import run_tpw

from tpw_desktop.engine.workloads import TestSpec
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


def test_compare_a_sweep_with_ratios_its_report_and_charts(qtbot, history_db, tmp_path):
    db, model_sweep, limit_sweep = history_db
    compare = CompareView(db, THEMES["dark"])
    qtbot.addWidget(compare)
    compare.refresh_sweeps()
    assert compare.sweep_box.count() == 3  # "choose…" and both sweeps
    compare.show_sweep(model_sweep)
    assert compare.comparison.variants == ["tiny-Q8_0", "tiny-Q4_0"]
    assert len(compare.bars["tokens_per_j"].opts["x"]) == 2 and not compare.limit_plot.isVisible()
    compare.baseline_box.setCurrentText("tiny-Q4_0")
    compare.baseline_box.activated.emit(1)
    assert compare.comparison.baseline == "tiny-Q4_0"
    ratios = {r.variant: r.ratio_tokens_per_s for r in compare.comparison.main_rows()}
    assert ratios["tiny-Q4_0"] == 1.0
    compare.export_report(str(tmp_path / "r.html"))
    compare.export_report(str(tmp_path / "r.json"))
    HTMLParser().feed((tmp_path / "r.html").read_text())
    assert "tiny-Q8_0" in (tmp_path / "r.html").read_text()
    assert json.loads((tmp_path / "r.json").read_text())["baseline"] == "tiny-Q4_0"
    compare.resize(1000, 700)
    compare.show()
    for name in ("c.png", "c.svg"):
        compare.export_charts(str(tmp_path / name))
        assert (tmp_path / name).stat().st_size > 1000
    problems = []
    compare.problem.connect(problems.append)
    compare.export_report(str(tmp_path / "r.txt"))
    assert problems == [f"{tmp_path / 'r.txt'}: a report is .html, .csv or .json"]


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
    asked = []
    dialog = window.workflows.open_quantize()
    dialog.confirm = lambda _parent, facts: asked.append(facts.quantization) or False
    dialog.source.setText(str(source))
    dialog.qtype.setCurrentText("Q8_0")
    assert dialog.output.text() == str(tmp_path / "tiny-Q8_0.gguf")
    with qtbot.waitSignal(window.controller.job_finished, timeout=60_000, check_params_cb=job_done("quantize")):
        qtbot.keyClick(dialog.output, Qt.Key_Return)  # Enter means Quantize, not Browse… nor Close
    assert dialog.made == tmp_path / "tiny-Q8_0.gguf" and dialog.made.exists()
    assert str(dialog.made) in window.model_panel.recent_paths
    dialog.source.setText(str(dialog.made))  # already quantized: asks, and the answer is no
    dialog.qtype.setCurrentText("Q4_0")
    dialog.start()
    assert asked == ["Q8_0"] and "Not quantized" in dialog.message.text()
    assert not (tmp_path / "tiny-Q4_0.gguf").exists()
    dialog.close()

    window.workload_panel.select(CUSTOM_CHOICE, "the energy of a token")
    window.workload_panel.max_tokens.setValue(8)
    window.power_panel.idle.setChecked(True)
    window.power_panel.idle_s.setValue(0.3)
    window.power_panel.settle_s.setValue(0)
    sweep = window.workflows.open_sweep()
    sweep._add_model(source, checked=True)
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
