"""Every menu action, triggered as a user does (the real QAction), and what it produces.

Dialogs that open are answered through their own widgets (``answer_dialogs``),
so an action whose handler breaks on what Qt hands it fails here.
"""

import pytest

pytest.importorskip("PySide6")

from answer_dialogs import answering, choose_file, press
from conftest import job_done
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QInputDialog, QMessageBox
from test_ui import custom_prompt

from tpw_desktop.ui.dialogs import QuantizeDialog, SweepDialog
from tpw_desktop.ui.endpoint_dialog import EndpointDialog


def menu_actions(window) -> dict[str, object]:
    """Every action in the menu bar, by its text without the mnemonic."""
    actions = {}
    for menu_action in window.menuBar().actions():
        for action in menu_action.menu().actions():
            if not action.isSeparator():
                actions[action.text().replace("&", "")] = action
    return actions


def answer_port(port: int):
    def answer(dialog):
        assert isinstance(dialog, QInputDialog)
        dialog.setIntValue(port)
        dialog.accept()

    return answer


def test_every_menu_action_does_what_it_says(qtbot, make_window, tiny_model, bundled_model, tmp_path):
    window = make_window()
    acts = menu_actions(window)
    c = window.controller
    tested = set()

    def trigger(text):
        tested.add(text)
        acts[text].trigger()

    # File
    loaded = qtbot.waitSignal(c.job_finished, timeout=30_000, check_params_cb=job_done("load"))
    with loaded, answering(choose_file(tiny_model)) as asked:
        trigger("Open model…")
    assert asked.titles == ["Open a GGUF model"] and c.model.facts.path == tiny_model
    with qtbot.waitSignal(c.job_finished, timeout=60_000, check_params_cb=job_done("load")):
        trigger("Use the bundled model")
    assert c.model.facts.path == bundled_model
    trigger("Save results as…")
    assert window.banner.text("error") == "No run to save yet."
    for text, kind in (("Quantize a model…", QuantizeDialog), ("Sweep…", SweepDialog)):
        trigger(text)
        assert isinstance(window.workflows.dialog, kind) and window.workflows.dialog.isVisible()
        window.workflows.dialog.close()
    trigger("Measure a server…")
    assert isinstance(window.workflows.dialog, EndpointDialog) and window.workflows.dialog.isVisible()
    window.workflows.dialog.close()

    # Run
    custom_prompt(window, max_tokens=8)
    with qtbot.waitSignal(window.run_ended, timeout=60_000) as ended:
        trigger("Start")
    assert ended.args == ["completed"] and c.last_report.summaries
    target = tmp_path / "results.json"
    with answering(choose_file(target)):
        trigger("Save results as…")
    assert target.stat().st_size > 100 and window.status_label.text() == f"saved {target}"
    custom_prompt(window, max_tokens=400, reps=50)
    window.start()
    qtbot.waitUntil(lambda: c.state == "running", timeout=30_000)
    with qtbot.waitSignal(window.run_ended, timeout=30_000) as ended:
        trigger("Stop")
    assert ended.args == ["cancelled"]
    with qtbot.waitSignal(c.job_finished, timeout=30_000, check_params_cb=job_done("run")):
        trigger("Measure idle now")
    assert window.power_panel.idle_label.text().startswith("idle baseline: 100.0 W")
    port = 19000 + (hash(str(tmp_path)) % 900)
    with answering(answer_port(port)) as asked:
        trigger("Prometheus metrics port…")
    assert asked.kinds == ["QInputDialog"] and window.settings.value("metrics/port") == port
    with qtbot.waitSignal(c.news, timeout=10_000, check_params_cb=lambda n: getattr(n, "url", None) is not None):
        trigger("Serve Prometheus metrics (127.0.0.1)")
    assert window.workflows.metrics_label.text() == f"metrics: http://127.0.0.1:{port}/metrics"
    trigger("Serve Prometheus metrics (127.0.0.1)")
    qtbot.waitUntil(lambda: not window.workflows.metrics_label.isVisible(), timeout=10_000)
    assert not acts["Restart the measuring process"].isEnabled()  # only once the process has died
    tested.add("Restart the measuring process")  # triggered in test_ui's killed-process test, by its banner

    # View
    for text, view in (
        ("History", window.history),
        ("Compare", window.compare_view),
        ("Fleet", window.fleet_view),
        ("Live", window.dashboard),
    ):
        trigger(text)
        assert window.views.currentWidget() is view
    trigger("Presentation mode")
    assert window.presentation and window.isFullScreen()
    trigger("Presentation mode")
    assert not window.presentation
    charts = window.dashboard.charts
    trigger("Show whole history")
    assert not charts.follow
    trigger("Follow live (last 2 min)")
    assert charts.follow
    for theme in ("Light", "Dark"):
        trigger(f"{theme} theme")
        assert window.theme.name == theme.lower()

    # Chart
    picture = tmp_path / "charts.png"
    with answering(choose_file(picture)):
        trigger("Export charts…")
    assert picture.read_bytes().startswith(b"\x89PNG") and window.status_label.text() == f"exported {picture}"

    # Help
    for text, title in (
        ("Keyboard shortcuts", "Keyboard shortcuts"),
        ("Reading the numbers", "Reading the numbers"),
        ("About tpw-desktop", "About tpw-desktop"),
    ):
        with answering(press(QMessageBox.Ok)) as asked:
            trigger(text)
        assert asked.titles == [title]

    trigger("Quit")
    assert not window.isVisible() and not c.client.alive
    assert tested == set(acts), f"not triggered: {set(acts) - tested}"


def test_the_compare_and_history_buttons_are_clicked_not_called(qtbot, make_window, tiny_model, tmp_path):
    """A run, then History's buttons and Compare's, by mouse: the report is a file on disk."""
    window = make_window()
    with qtbot.waitSignal(window.controller.job_finished, timeout=30_000, check_params_cb=job_done("load")):
        window.load_model(tiny_model)
    custom_prompt(window, max_tokens=8, reps=2)
    for _ in range(2):
        with qtbot.waitSignal(window.run_ended, timeout=60_000):
            qtbot.mouseClick(window.start_button, Qt.LeftButton)
    menu_actions(window)["History"].trigger()
    history = window.history
    qtbot.mouseClick(history.refresh_button, Qt.LeftButton)
    assert history.model.rowCount() == 2
    history.table.selectAll()
    qtbot.mouseClick(history.compare_button, Qt.LeftButton)
    compare = window.compare_view
    assert window.views.currentWidget() is compare and len(compare.comparison.sessions) == 2
    report = tmp_path / "two-runs.html"
    with answering(choose_file(report)):
        qtbot.mouseClick(compare.report_button, Qt.LeftButton)
    assert "<html" in report.read_text().lower() and window.status_label.text() == f"saved {report}"
    svg = tmp_path / "two-runs.svg"
    with answering(choose_file(svg)):
        qtbot.mouseClick(compare.charts_button, Qt.LeftButton)
    assert "<svg" in svg.read_text()
    menu_actions(window)["History"].trigger()
    history.table.selectRow(0)
    qtbot.mouseClick(history.open_button, Qt.LeftButton)
    assert history.opened_id == history.selected_ids()[0] and "session" in history.details.toPlainText().lower()
