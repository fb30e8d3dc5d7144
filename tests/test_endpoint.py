"""Measuring a server tpw didn't start: llama-cpp-python's own OpenAI server, and servers that misbehave."""

import json
import re

import pytest
from openai_servers import BadServer, LlamaServer
from prometheus_server import free_port
from PySide6.QtCore import Qt
from tpw_cli import run_tpw

from tpw_desktop.engine.settings import EngineSettings
from tpw_desktop.engine.workloads import TestSpec, get_workload
from tpw_desktop.errors import TpwError
from tpw_desktop.peers.openai_server import Endpoint
from tpw_desktop.peers.prometheus_server import PrometheusApi
from tpw_desktop.run.server import concurrency_levels, levels_table
from tpw_desktop.run.session import RunOptions
from tpw_desktop.store import Store
from tpw_desktop.worker.protocol import StartEndpoint

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


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080e",
        "http://127.0.0.1:99999",
        "http://[::1",
        "http://a b:80",
        "127.0.0.1:8080",
        "ftp://host",
        "http://",
    ],
)
def test_a_mistyped_server_url_is_one_message(url):
    with pytest.raises(TpwError, match=r"not a server URL; expected one like http://127\.0\.0\.1:8080"):
        Endpoint(url)
    with pytest.raises(TpwError, match=r"not a server URL; expected one like http://127\.0\.0\.1:9090"):
        PrometheusApi(url)


def test_the_clients_table_says_why_a_figure_is_missing():
    level = {
        "concurrency": 2,
        "requests": 2,
        "total_tokens": 40,
        "tokens_per_s_mean": 20.0,
        "average_w": None,
        "tokens_per_j": None,
        "j_per_token": None,
        "method": "counter",
        "confident": False,
        "unknown": {
            "average_w": "no counter update in the 40 ms window",
            "tokens_per_j": "no counter update in the 40 ms window",
            "j_per_token": "no counter update in the 40 ms window",
        },
        "latency": {"time_to_first_token_s": 0.05, "inter_token_p50_ms": 20.0},
        "counted_by": "server usage",
    }
    brief = levels_table([level], brief=True, tablefmt="plain").splitlines()
    assert brief[0].split() == ["clients", "t/s", "W", "tok/J", "method"]
    assert brief[1].split("  ")[0].strip() == "2" and "20.0" in brief[1]
    assert brief[1].count("n/a (no counter update in the 40 ms window)") == 2 and "counter (low confidence)" in brief[1]
    full = levels_table([level])
    assert full.count("n/a (no counter update in the 40 ms window)") == 3 and "| server usage" in full
    assert "unknown" not in full.replace("n/a (", "")


def test_a_real_server_at_one_and_four_clients(server, flat_trace, db_path):
    done = run_tpw(
        "bench",
        "--endpoint",
        server.url,
        "--concurrency",
        "4",
        "-w",
        "chat",
        "-r",
        "1",
        "--idle-s",
        "0",
        "--settle-s",
        "0",
        "--power",
        f"replay:{flat_trace}",
        "--json",
        "-q",
        db=db_path,
    )
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
        assert lv["cut_short"] == 0  # every stream ended with a finish reason: the server did all that was asked
        assert lv["latency"]["time_to_first_token_s"] > 0
    with Store(db_path) as store:
        [session] = store.list_sessions()
        assert session["status"] == "completed" and session["model"] == "tiny"
        assert session["tests"] == ["chat@c1", "chat@c2", "chat@c4"]
        stored = store.session(session["id"])
        assert len(store.calls(session["id"])) == 7 and store.sample_count(session["id"]) > 0
        assert stored["settings"]["endpoint"] == server.url


@pytest.mark.parametrize(
    "mode, said",
    [
        ("drop", "the stream ended before [DONE] (after 2 tokens)"),
        ("malformed", "a malformed stream chunk: b'{this is not json' (after 2 tokens)"),
        ("silent", "no answer in time (timeout)"),
        ("error", "HTTP 500 Internal Server Error: model crashed"),
    ],
)
def test_a_server_that_misbehaves_is_one_line_and_a_failed_session(mode, said, flat_trace, db_path):
    bad = BadServer(mode)
    try:
        done = run_tpw(
            "bench",
            "--endpoint",
            bad.url,
            "--timeout",
            "1",
            "-r",
            "1",
            "--idle-s",
            "0",
            "--settle-s",
            "0",
            "--power",
            f"replay:{flat_trace}",
            "-q",
            db=db_path,
        )
    finally:
        bad.close()
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"tpw: at 1 client: {bad.url}: {said}" in done.stderr
    with Store(db_path) as store:
        [session] = store.list_sessions()
        assert session["status"] == "failed" and said in store.session(session["id"])["error"]


def test_streams_a_server_cut_short_are_counted_and_said(flat_trace):
    """llama_cpp.server's default: a new request ends the running stream with [DONE] and no finish reason."""
    cutter = BadServer("cut")
    try:
        done = run_tpw(
            "bench",
            "--endpoint",
            cutter.url,
            "--concurrency",
            "2",
            "-r",
            "1",
            "--idle-s",
            "0",
            "--settle-s",
            "0",
            "--power",
            f"replay:{flat_trace}",
            "--no-save",
            "--json",
            "-q",
        )
    finally:
        cutter.close()
    assert done.returncode == 0, done.stderr
    levels = json.loads(done.stdout)["levels"]
    calls = len(get_workload("chat").calls)
    assert [(lv["concurrency"], lv["requests"], lv["cut_short"]) for lv in levels] == [
        (1, calls, calls),
        (2, 2 * calls, 2 * calls),
    ]
    assert (
        f"warning: streams ended without a finish reason ({calls} of {calls} at 1 client, {2 * calls} of "
        f"{2 * calls} at 2 clients): the server cut them short"
    ) in done.stderr
    assert "--interrupt_requests False" in done.stderr


def test_a_server_that_is_not_there(flat_trace):
    url = f"http://127.0.0.1:{free_port()}"
    done = run_tpw("bench", "--endpoint", url, "--power", f"replay:{flat_trace}", "--no-save", "-q")
    assert done.returncode == 2
    assert done.stderr.strip() == f"tpw: {url}: connection refused (is the server running?)"


def test_an_estimate_of_tpw_alone_is_refused_for_a_server(server):
    done = run_tpw("bench", "--endpoint", server.url, "--power", "estimate-process", "--no-save", "-q")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "estimate-process counts only tpw's own CPU time, not the server's" in done.stderr


def test_the_window_measures_a_server_on_the_machine_estimate_and_a_local_run_goes_back(
    qtbot, server, tiny_model, db_path
):
    """Without a sensor the window estimates its measuring process only: blind to a server, so it swaps."""
    from tpw_desktop.ui.controller import RunController

    c = RunController(db_path)
    try:
        with qtbot.waitSignal(c.power_ready, timeout=30_000):
            c.select_power("estimate-process")
        with qtbot.waitSignal(c.loaded, timeout=30_000):
            c.load(tiny_model, EngineSettings(n_ctx=512))
        ready = []
        c.power_ready.connect(ready.append)
        options = RunOptions(repetitions=1, idle_s=0, settle_s=0, warmup=False)
        with qtbot.waitSignal(c.endpoint_finished, timeout=120_000) as finished:
            assert c.start_endpoint(StartEndpoint(server.url, "tiny", "chat", (1,), 1, options))
        assert finished.args[0].status == "completed" and finished.args[0].levels[0]["method"] == "estimated"
        assert [(r.chosen, r.spec, r.sources[0].name) for r in ready] == [(False, "estimate", "estimate")]
        assert c.power_spec == "estimate-process"  # what a restart brings back
        with qtbot.waitSignal(c.run_finished, timeout=60_000):
            assert c.start([TestSpec.tg(8)], options)
        assert [(r.chosen, r.sources[0].name) for r in ready][1:] == [(True, "estimate-process")]
    finally:
        c.close()


def test_the_window_measures_a_server_and_streams_its_tokens(qtbot, make_window, server):
    window = make_window()
    dialog = window.workflows.open_endpoint()
    dialog.url.setText(server.url)
    assert dialog.list_models() and dialog.model.currentText() == "tiny"
    dialog.workload.setCurrentIndex(dialog.workload.findData("chat"))
    dialog.concurrency.setValue(2)
    dialog.repetitions.setValue(1)
    window.power_panel.idle.setChecked(False)
    dialog.url.setFocus()
    with qtbot.waitSignal(window.controller.endpoint_finished, timeout=120_000) as finished:
        qtbot.keyClick(dialog.url, Qt.Key_Return)  # Enter means Start, not "List models"
    result = finished.args[0]
    assert result.status == "completed" and [lv["concurrency"] for lv in result.levels] == [1, 2]
    assert all(lv["tokens_per_j"] > 0 and lv["method"] == "replayed" for lv in result.levels)
    live = window.controller.live
    assert live.bin_series(0, live.now_s + 1)["tok_s"].sum() > 0  # the server's tokens reached the live charts
    assert "clients" in window.dashboard.output.toPlainText()
    assert window.dashboard.tabs.currentWidget() is window.dashboard.output
    # the tiles hold the figures of the level with the most clients, not a blank left by a run without phases
    tile = window.dashboard.tiles["tok_j"]
    assert tile.value.text() != "–" and re.fullmatch(
        r"replayed( \(low confidence\))? · 2 clients, whole window", tile.method.text()
    )
    window.views.setCurrentWidget(window.history)
    assert "tiny" in [window.history.model.item(r, 1).text() for r in range(window.history.model.rowCount())]


def test_the_window_says_when_the_server_is_not_there(qtbot, make_window):
    window = make_window()
    dialog = window.workflows.open_endpoint()
    dialog.url.setText(f"http://127.0.0.1:{free_port()}")
    assert not dialog.list_models()
    assert dialog.message.text().endswith("connection refused (is the server running?)")
    dialog.url.setText("http://127.0.0.1:8080e")  # a key held too long: a message in the dialog, not a traceback
    assert not dialog.list_models()
    assert "not a server URL" in dialog.message.text()
    dialog.model.setEditText("some-model")  # past the model list: the URL is checked before the idle baseline
    dialog.start()
    assert "not a server URL" in dialog.message.text()
    assert dialog.isVisible() and window.controller.state != "running"


def test_the_window_warns_when_the_server_cut_streams_short(qtbot, make_window):
    window = make_window()
    window.power_panel.idle.setChecked(False)
    cutter = BadServer("cut")
    try:
        dialog = window.workflows.open_endpoint()
        dialog.url.setText(cutter.url)
        dialog.model.setEditText("bad-model")
        dialog.concurrency.setValue(1)
        dialog.repetitions.setValue(1)
        with qtbot.waitSignal(window.controller.endpoint_finished, timeout=60_000) as finished:
            dialog.start()
    finally:
        cutter.close()
    assert finished.args[0].status == "completed" and finished.args[0].levels[0]["cut_short"] > 0
    assert "Measured, but streams ended without a finish reason" in window.banner.text()
    assert "--interrupt_requests False" in window.banner.text()
