"""Measuring a server tpw didn't start: llama-cpp-python's own OpenAI server, and servers that misbehave."""
import json

import pytest
from openai_servers import BadServer, LlamaServer
from prometheus_server import free_port
from tpw_cli import run_tpw

from tpw_desktop.endpoint.bench import concurrency_levels
from tpw_desktop.store import Store

pytest.importorskip("uvicorn", reason="needs llama-cpp-python's server extra (make test installs it)")


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory):
    server = LlamaServer(tiny_model, tmp_path_factory.mktemp("server") / "server.log")
    yield server
    server.close()


def test_levels_double_up_to_the_most():
    assert concurrency_levels(1) == [1]
    assert concurrency_levels(4) == [1, 2, 4]
    assert concurrency_levels(6) == [1, 2, 4, 6]


def test_a_real_server_at_one_and_four_clients(server, flat_trace, db_path):
    done = run_tpw("bench", "--endpoint", server.url, "--concurrency", "4", "-w", "chat", "-r", "1", "--idle-s", "0",
                   "--settle-s", "0", "--power", f"replay:{flat_trace}", "--json", "-q", db=db_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["model"] == "tiny" and report["status"] == "completed"
    levels = report["levels"]
    assert [(lv["concurrency"], lv["requests"]) for lv in levels] == [(1, 1), (2, 2), (4, 4)]
    for lv in levels:
        assert lv["total_tokens"] > 0 and lv["method"] == "replayed"
        # a constant 100 W replayed: the window's joules are 100 W x its seconds, tok/J tokens over them
        assert lv["joules"] == pytest.approx(100.0 * lv["seconds"], rel=1e-3)
        assert lv["tokens_per_j"] == pytest.approx(lv["total_tokens"] / lv["joules"], rel=1e-9)
        assert lv["counted_by"] in ("server usage", "counted chunks")
        assert lv["latency"]["time_to_first_token_s"] > 0
    with Store(db_path) as store:
        [session] = store.list_sessions()
        assert session["status"] == "completed" and session["model"] == "tiny"
        assert session["tests"] == ["chat@c1", "chat@c2", "chat@c4"]
        stored = store.session(session["id"])
        assert len(store.calls(session["id"])) == 7 and store.sample_count(session["id"]) > 0
        assert stored["settings"]["endpoint"] == server.url


@pytest.mark.parametrize("mode, said", [
    ("drop", "the stream ended before [DONE] (after 2 tokens)"),
    ("malformed", "a malformed stream chunk: b'{this is not json' (after 2 tokens)"),
    ("silent", "no answer in time (timeout)"),
    ("error", "HTTP 500 Internal Server Error: model crashed"),
])
def test_a_server_that_misbehaves_is_one_line_and_a_failed_session(mode, said, flat_trace, db_path):
    bad = BadServer(mode)
    try:
        done = run_tpw("bench", "--endpoint", bad.url, "--timeout", "1", "-r", "1", "--idle-s", "0", "--settle-s", "0",
                       "--power", f"replay:{flat_trace}", "-q", db=db_path)
    finally:
        bad.close()
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"tpw: at 1 client: {bad.url}: {said}" in done.stderr
    with Store(db_path) as store:
        [session] = store.list_sessions()
        assert session["status"] == "failed" and said in store.session(session["id"])["error"]


def test_a_server_that_is_not_there(flat_trace):
    url = f"http://127.0.0.1:{free_port()}"
    done = run_tpw("bench", "--endpoint", url, "--power", f"replay:{flat_trace}", "--no-save", "-q")
    assert done.returncode == 2
    assert done.stderr.strip() == f"tpw: {url}: connection refused (is the server running?)"


def test_the_window_measures_a_server_and_streams_its_tokens(qtbot, make_window, server):
    window = make_window()
    dialog = window.workflows.open_endpoint()
    dialog.url.setText(server.url)
    assert dialog.list_models() and dialog.model.currentText() == "tiny"
    dialog.workload.setCurrentIndex(dialog.workload.findData("chat"))
    dialog.concurrency.setValue(2)
    dialog.repetitions.setValue(1)
    window.power_panel.idle.setChecked(False)
    with qtbot.waitSignal(window.controller.endpoint_finished, timeout=120_000) as finished:
        dialog.start()
    result = finished.args[0]
    assert result.status == "completed" and [lv["concurrency"] for lv in result.levels] == [1, 2]
    assert all(lv["tokens_per_j"] > 0 and lv["method"] == "replayed" for lv in result.levels)
    live = window.controller.live
    assert live.bin_series(0, live.now_s + 1)["tok_s"].sum() > 0  # the server's tokens reached the live charts
    assert "clients" in window.dashboard.output.toPlainText()
    window.views.setCurrentWidget(window.history)
    assert "tiny" in [window.history.model.item(r, 1).text() for r in range(window.history.model.rowCount())]


def test_the_window_says_when_the_server_is_not_there(qtbot, make_window):
    window = make_window()
    dialog = window.workflows.open_endpoint()
    dialog.url.setText(f"http://127.0.0.1:{free_port()}")
    assert not dialog.list_models()
    assert dialog.message.text().endswith("connection refused (is the server running?)")
