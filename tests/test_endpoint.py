"""Measuring a server tpw didn't start: llama-cpp-python's own OpenAI server, and servers that misbehave."""

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from openai_servers import BadServer, LlamaServer
from prometheus_server import free_port
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPushButton
from tpw_cli import TPW, run_tpw

from tpw_desktop.analysis.tables import levels_table
from tpw_desktop.engine.workloads import TestSpec, get_workload
from tpw_desktop.errors import TpwError
from tpw_desktop.metrics import WindowEnergy, phase_figures
from tpw_desktop.peers.openai_server import Completion, Endpoint, Usage
from tpw_desktop.peers.prometheus_server import PrometheusApi
from tpw_desktop.record.meta import EngineSettings, RunOptions
from tpw_desktop.record.results import ServerLevel, TestSummary
from tpw_desktop.run.server import concurrency_levels, counted_tokens
from tpw_desktop.store import Store
from tpw_desktop.worker.protocol import PowerReady, StartEndpoint

pytest.importorskip("uvicorn", reason="needs llama-cpp-python's server extra (make test installs it)")

QUICK = ("--idle-s", "0", "--settle-s", "0", "-r", "1", "-q")


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
    why = "no counter update in the 40 ms window"
    figures = phase_figures(40, WindowEnergy(0.0, 2.0, "counter", None, 1, 0, 0, None, why))
    level = ServerLevel(2, 2, "server usage", None, None, 0, "token")
    summary = TestSummary("chat@c2", "server", "total", 1, 40, 20.0, None, figures, level=level)
    brief = levels_table([summary], brief=True, tablefmt="plain").splitlines()
    assert brief[0].split() == ["clients", "t/s", "W", "tok/J", "method"]
    assert brief[1].split("  ")[0].strip() == "2" and "20.00" in brief[1]
    assert brief[1].count(f"n/a ({why})") == 2 and "counter (low confidence)" in brief[1]
    full = levels_table([summary])
    assert full.count(f"n/a ({why})") == 3 and "| server usage" in full and "per token" in full


def completion(chunks: int, told, problem=None) -> Completion:
    return Completion(0, list(range(chunks)), 1, Usage(12, told) if told is not None else None, problem)


def test_a_server_s_count_is_used_only_when_it_can_be_true():
    assert counted_tokens(completion(10, 10), 64) == ((10, "server usage", None))
    assert counted_tokens(completion(5, 20), 64).by == "server usage"  # several tokens a chunk: fine
    assert counted_tokens(completion(10, 9), 64).by == "server usage"  # one short: the last chunk counted apart
    assert counted_tokens(completion(100, 95), 64 * 4).by == "server usage"  # 5% of a long stream
    assert counted_tokens(completion(10, 8), 64).by == "counted chunks"
    assert counted_tokens(completion(10, None), 64) == (10, "counted chunks", None)
    assert counted_tokens(completion(10, 10**12), 64) == (
        10,
        "counted chunks",
        "usage said 1000000000000 tokens, more than the 64 asked for",
    )
    assert counted_tokens(completion(10, 3), 64) == (10, "counted chunks", "usage said 3 tokens for 10 content chunks")
    bad = completion(10, None, "usage.completion_tokens is 2.5, not a non-negative integer")
    assert counted_tokens(bad, 64) == (
        10,
        "counted chunks",
        "usage.completion_tokens is 2.5, not a non-negative integer",
    )


def test_a_real_server_at_one_and_four_clients(server, flat_trace, db_path):
    done = run_tpw(
        "bench",
        "--endpoint",
        server.url,
        "--concurrency",
        "4",
        "-w",
        "chat",
        *QUICK,
        "--power",
        f"replay:{flat_trace}",
        "--json",
        db=db_path,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["meta"]["server"]["api_model"] == "tiny" and report["status"] == "completed"
    levels = report["summary"]
    assert [(lv["concurrency"], lv["requests"]) for lv in levels] == [(1, 1), (2, 2), (4, 4)]
    for lv in levels:
        assert lv["tokens"] > 0 and lv["method"] == "replayed" and lv["kind"] == "server"
        # a constant 100 W replayed: the window's joules are 100 W x its seconds, tok/J tokens over them
        assert lv["joules"] == pytest.approx(100.0 * lv["seconds"], rel=1e-3)
        assert lv["tokens_per_j"] == pytest.approx(lv["tokens"] / lv["joules"], rel=1e-9)
        assert lv["counted_by"] in ("server usage", "counted chunks") and lv["count_note"] is None  # nothing refused
        assert lv["cut_short"] == 0  # every stream ended with a finish reason: the server did all that was asked
        assert lv["time_to_first_token_s"] > 0 and lv["inter_token_basis"] == "token"
    with Store(db_path) as store:
        [session] = store.list_sessions()
        assert session.status == "completed" and session.meta.model.file_name == "tiny"
        assert [(t.name, t.kind) for t in session.meta.tests] == [(f"chat@c{c}", "server") for c in (1, 2, 4)]
        assert len(store.calls(session.id)) == 7 and store.sample_count(session.id) > 0
        assert session.meta.server.url == server.url and session.meta.settings is None
        assert [s.level.concurrency for s in session.outcome.summaries] == [1, 2, 4]


FAILS = [
    ("drop", "the stream ended before [DONE] (after 2 tokens)"),
    ("malformed", "a stream chunk is not JSON"),
    ("silent", "no complete answer within the 1 s timeout"),
    ("drip", "no complete answer within the 1 s timeout"),
    ("error", "HTTP 500 Internal Server Error: model crashed second line"),
    ("choices_string", "a stream chunk's choices is a str, not a list"),
    ("choices_null_list", "a stream chunk's choice is a NoneType, not an object"),
    ("delta_list", "a stream chunk's delta is a list, not an object"),
    ("content_number", "a stream chunk's content is a int, not text"),
    ("finish_object", "a stream chunk's finish_reason is a dict, not text"),
    ("chunk_list", "a stream chunk is a JSON list, not an object"),
    ("nan", "a stream chunk is not JSON (a non-finite number (NaN))"),
    ("usage_nan", "a stream chunk is not JSON (a non-finite number (NaN))"),
    ("error_event", "the server sent an error event: out of memory"),
    ("flood", "the server sent more than"),
    ("longline", "a stream line is longer than 1048576 bytes"),
]


@pytest.mark.parametrize("mode, said", FAILS, ids=[m for m, _ in FAILS])
def test_any_answer_a_server_gives_ends_in_one_line_and_a_failed_session(mode, said, flat_trace, db_path):
    bad = BadServer(mode)
    started = time.monotonic()
    try:
        done = run_tpw(
            "bench",
            "--endpoint",
            bad.url,
            "--timeout",
            "1",
            "-n",
            "8",
            *QUICK,
            "--power",
            f"replay:{flat_trace}",
            db=db_path,
        )
    finally:
        bad.close()
    assert time.monotonic() - started < 30  # bounded: a dripping or silent server is cut at the deadline
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "\x1b" not in done.stderr
    [line, *rest] = [x for x in done.stderr.splitlines() if not x.startswith("tpw: saved session")]
    assert line.startswith(f"tpw: at 1 client: {bad.url}: ") and said in line and rest == []
    with Store(db_path) as store:
        [session] = store.list_sessions()
        assert session.status == "failed" and said in session.error
        assert "interrupted by the user" not in session.error


USAGES = [
    ("usage_huge", "usage said 1000000000000 tokens, more than the"),
    ("usage_float", "usage.completion_tokens is 2.5, not a non-negative integer"),
    ("usage_negative", "usage.completion_tokens is -3, not a non-negative integer"),
    ("usage_string", 'usage.completion_tokens is "two", not a non-negative integer'),
    ("usage_too_few", "usage said 0 tokens for 2 content chunks"),
]


@pytest.mark.parametrize("mode, why", USAGES, ids=[m for m, _ in USAGES])
def test_a_count_a_server_makes_up_is_not_used_and_the_level_says_why(mode, why, flat_trace, db_path):
    bad = BadServer(mode)
    try:
        done = run_tpw("bench", "--endpoint", bad.url, *QUICK, "--power", f"replay:{flat_trace}", "--json", db=db_path)
    finally:
        bad.close()
    assert done.returncode == 0, done.stderr
    calls = len(get_workload("chat").calls)
    [level] = json.loads(done.stdout)["summary"]
    assert level["counted_by"] == "counted chunks" and why in level["count_note"]
    assert level["tokens"] == 2 * calls  # "Hello", " there": what was counted, never 10^12
    with Store(db_path) as store:
        [stored] = store.list_sessions()[0].outcome.summaries
        assert stored.pooled.tokens == 2 * calls and why in stored.level.count_note


def test_server_sent_events_in_their_other_spellings_are_read(flat_trace):
    """CRLF line ends, a comment line, an event name, and one event's data over two lines."""
    crlf = BadServer("crlf")
    try:
        done = run_tpw(
            "bench", "--endpoint", crlf.url, *QUICK, "--power", f"replay:{flat_trace}", "--no-save", "--json"
        )
    finally:
        crlf.close()
    assert done.returncode == 0, done.stderr
    [level] = json.loads(done.stdout)["summary"]
    assert level["tokens"] == 3 * len(get_workload("chat").calls) and level["cut_short"] == 0


@pytest.mark.parametrize("mode", ["slow_headers", "slow_first"])
def test_time_to_first_token_counts_from_sending_the_request(mode, flat_trace):
    """Not from the response headers: a server may send them before its prefill, or after it."""
    bad = BadServer(mode)
    try:
        done = run_tpw("bench", "--endpoint", bad.url, *QUICK, "--power", f"replay:{flat_trace}", "--no-save", "--json")
    finally:
        bad.close()
    assert done.returncode == 0, done.stderr
    [level] = json.loads(done.stdout)["summary"]
    assert level["time_to_first_token_s"] >= 0.5  # a lower bound: load only adds to it


@pytest.mark.parametrize(
    "mode, said",
    [
        ("models_ids", "/v1/models listed a model whose id is not text"),
        ("models_list", "/v1/models did not answer an OpenAI model list (no data list)"),
        ("models_data_string", "/v1/models did not answer an OpenAI model list (no data list)"),
        ("models_empty", "lists no model; name one with --api-model"),
    ],
)
def test_a_model_list_that_is_not_one_is_one_line(mode, said, flat_trace):
    bad = BadServer(mode)
    try:
        done = run_tpw("bench", "--endpoint", bad.url, *QUICK, "--power", f"replay:{flat_trace}", "--no-save")
    finally:
        bad.close()
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == f"tpw: {bad.url}: {said}"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_cuts_a_silent_stream_at_once_and_exits_130(sig, flat_trace, db_path):
    bad = BadServer("silent")
    try:
        child = subprocess.Popen(
            [
                TPW,
                "--db",
                str(db_path),
                "bench",
                "--endpoint",
                bad.url,
                *QUICK,
                "--timeout",
                "600",
                "--power",
                f"replay:{flat_trace}",
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while not [r for r in bad.requests if r["path"].endswith("/chat/completions")]:
            assert time.monotonic() < deadline and child.poll() is None
            time.sleep(0.05)
        time.sleep(0.3)  # the request is in flight, its stream silent
        sent = time.monotonic()
        child.send_signal(sig)
        child.wait(10)
        stopped_in = time.monotonic() - sent
    finally:
        child.kill()
        bad.close()
    assert child.returncode == 130 and stopped_in < 2.0, child.stderr.read()
    with Store(db_path) as store:
        [session] = store.list_sessions()
        assert session.status == "cancelled"


def test_credentials_and_a_key_never_leave_the_process(flat_trace, db_path, tmp_path):
    """A password in the URL and an API key: used for the requests, absent from every output and file."""
    bad = BadServer("auth")
    url = bad.url.replace("http://", "http://alice:pw-s3cret@")
    try:
        done = run_tpw(
            "bench",
            "--endpoint",
            url,
            "--api-key",
            "sk-test",
            *QUICK,
            "--power",
            f"replay:{flat_trace}",
            "--json",
            db=db_path,
        )
        refused = run_tpw(
            "bench",
            "--endpoint",
            url,
            *QUICK,
            "--power",
            f"replay:{flat_trace}",
            "--no-save",
            env={**__import__("os").environ, "OPENAI_API_KEY": "sk-wrong"},
        )
    finally:
        bad.close()
    assert done.returncode == 0, done.stderr
    assert all(r["auth"] in ("Bearer sk-test", "Bearer sk-wrong") for r in bad.requests)
    assert refused.returncode == 2 and "HTTP 401" in refused.stderr and "bad key: Bearer ***" in refused.stderr
    with Store(db_path) as store:
        [session] = store.list_sessions()
        export = tmp_path / "export.json"
        with export.open("w") as f:
            store.export(session.id, "json", f)
    report = tmp_path / "report.html"
    assert run_tpw("sessions", "compare", str(session.id), "--report", str(report), db=db_path).returncode == 0
    shown = run_tpw("sessions", "show", str(session.id), db=db_path).stdout
    assert "http://***@127.0.0.1" in shown
    for text in (
        done.stdout,
        done.stderr,
        refused.stdout,
        refused.stderr,
        shown,
        export.read_text(),
        report.read_text(),
        db_path.read_bytes().decode("latin-1"),
    ):
        assert "pw-s3cret" not in text and "sk-test" not in text and "sk-wrong" not in text


def test_a_server_that_is_not_there(flat_trace):
    url = f"http://127.0.0.1:{free_port()}"
    done = run_tpw("bench", "--endpoint", url, "--power", f"replay:{flat_trace}", "--no-save", "-q")
    assert done.returncode == 2
    assert re.fullmatch(rf"tpw: {re.escape(url)}: cannot connect \(is the server running\?\): .*", done.stderr.strip())


def test_an_estimate_of_tpw_alone_is_refused_for_a_server(server):
    done = run_tpw("bench", "--endpoint", server.url, "--power", "estimate-process", "--no-save", "-q")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "estimate-process counts only tpw's own CPU time, not the server's" in done.stderr


def test_metrics_are_served_while_measuring_a_server(flat_trace):
    """A server that takes 2 s a call, so the scrapes meet the run on a loaded machine too."""
    import urllib.request

    port = free_port()
    slow = BadServer("slow")
    child = subprocess.Popen(
        [
            TPW,
            "bench",
            "--endpoint",
            slow.url,
            "--concurrency",
            "2",
            *QUICK,
            "--power",
            f"replay:{flat_trace}",
            "--no-save",
            "--metrics-port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = ""
    deadline = time.monotonic() + 60
    try:
        while child.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as r:
                    seen += r.read().decode()  # every scrape: the run may end between two of them
            except OSError:
                pass
            time.sleep(0.2)
        out, err = child.communicate(timeout=60)
    finally:
        slow.close()
    assert child.returncode == 0, err
    assert 'tpw_energy_joules_total{method="replayed"' in seen and "tpw_model_info" in seen


def test_the_window_measures_a_server_on_the_machine_estimate_and_a_local_run_goes_back(
    qtbot, server, tiny_model, db_path
):
    """Without a sensor the window estimates its measuring process only: blind to a server, so it swaps."""
    from tpw_desktop.ui.controller import RunController

    def finished(job):
        return lambda f: f.job == job

    c = RunController(db_path)
    try:
        with qtbot.waitSignal(c.job_finished, timeout=30_000, check_params_cb=finished("power")):
            c.select_power("estimate-process")
        with qtbot.waitSignal(c.job_finished, timeout=30_000, check_params_cb=finished("load")):
            c.load(tiny_model, EngineSettings(n_ctx=512))
        ready = []
        c.job_finished.connect(lambda f: ready.append(f.result) if isinstance(f.result, PowerReady) else None)
        options = RunOptions(repetitions=1, idle_s=0, settle_s=0, warmup=False)
        with qtbot.waitSignal(c.job_finished, timeout=120_000, check_params_cb=finished("endpoint")) as done:
            assert c.start_endpoint(StartEndpoint(server.url, "tiny", "chat", (1,), 1, options))
        report = done.args[0].result
        assert done.args[0].status == "completed" and report.summaries[0].method == "estimated"
        assert [(r.chosen, r.spec, r.sources[0].name) for r in ready] == [(False, "estimate", "estimate")]
        assert c.power_spec == "estimate-process"  # what a restart brings back
        with qtbot.waitSignal(c.job_finished, timeout=60_000, check_params_cb=finished("run")):
            assert c.start([TestSpec.tg(8)], options)
        assert [(r.chosen, r.sources[0].name) for r in ready][1:] == [(True, "estimate-process")]
    finally:
        c.close()


def endpoint_done(finished) -> bool:
    return finished.job == "endpoint"


def endpoint_dialog(window, url: str):
    """The window's *Measure a server…* dialog on ``url``: one client, one repetition, no idle baseline."""
    window.power_panel.idle.setChecked(False)
    dialog = window.workflows.open_endpoint()
    dialog.url.setText(url)
    dialog.model.setEditText("bad-model")
    dialog.concurrency.setValue(1)
    dialog.repetitions.setValue(1)
    return dialog


def measure_in_window(qtbot, window, mode: str, *, credentials: str = "", api_key: str = ""):
    """Measure a ``BadServer(mode)`` from the window's dialog; the finished job."""
    bad = BadServer(mode)
    try:
        dialog = endpoint_dialog(window, bad.url.replace("http://", f"http://{credentials}"))
        dialog.api_key.setText(api_key)
        with qtbot.waitSignal(window.controller.job_finished, timeout=60_000, check_params_cb=endpoint_done) as done:
            dialog.start()
    finally:
        bad.close()
    return done.args[0], bad


def test_the_window_measures_a_server_and_streams_its_tokens(qtbot, make_window, server):
    window = make_window()
    dialog = window.workflows.open_endpoint()
    dialog.url.setText(server.url)
    [list_button] = [b for b in dialog.findChildren(QPushButton) if b.text() == "List models"]
    qtbot.mouseClick(list_button, Qt.LeftButton)
    assert dialog.model.currentText() == "tiny" and dialog.message.text() == "1 model on the server."
    dialog.workload.setCurrentIndex(dialog.workload.findData("chat"))
    dialog.concurrency.setValue(2)
    dialog.repetitions.setValue(1)
    window.power_panel.idle.setChecked(False)
    dialog.url.setFocus()
    with qtbot.waitSignal(window.controller.job_finished, timeout=120_000, check_params_cb=endpoint_done) as done:
        qtbot.keyClick(dialog.url, Qt.Key_Return)  # Enter means Start, not "List models"
    report = done.args[0].result
    assert done.args[0].status == "completed" and [s.level.concurrency for s in report.summaries] == [1, 2]
    assert all(s.pooled.tokens_per_j > 0 and s.method == "replayed" for s in report.summaries)
    live = window.controller.live
    assert live.bin_series(0, live.now_s + 1)["tok_s"].sum() > 0  # the server's tokens reached the live charts
    assert "clients" in window.dashboard.output.toPlainText()
    assert window.dashboard.tabs.currentWidget() is window.dashboard.output
    # the tiles hold the figures of the level with the most clients, not a blank left by a run without phases
    tile = window.dashboard.tiles["tok_j"]
    assert tile.value.text() != "–" and re.fullmatch(
        r"replayed( \(low confidence\))? · chat@c2: 2 clients, whole window", tile.method.text()
    )
    window.views.setCurrentWidget(window.history)
    assert "tiny" in [window.history.model.item(r, 1).text() for r in range(window.history.model.rowCount())]
    again = window.workflows.open_endpoint()  # opens as it was started
    assert (again.url.text(), again.model.currentText(), again.workload.currentData()) == (server.url, "tiny", "chat")
    assert (again.concurrency.value(), again.repetitions.value()) == (2, 1)


def test_the_window_says_when_the_server_is_not_there(qtbot, make_window):
    window = make_window()
    dialog = window.workflows.open_endpoint()
    dialog.url.setText(f"http://127.0.0.1:{free_port()}")
    assert not dialog.list_models()
    assert "cannot connect (is the server running?)" in dialog.message.text()
    dialog.url.setText("http://127.0.0.1:8080e")  # a key held too long: a message in the dialog, not a traceback
    assert not dialog.list_models()
    assert "not a server URL" in dialog.message.text()
    dialog.model.setEditText("some-model")  # past the model list: the URL is checked before the idle baseline
    dialog.start()
    assert "not a server URL" in dialog.message.text()
    assert dialog.isVisible() and window.controller.state != "running"


def test_the_window_keeps_a_server_s_password_out_of_its_settings(qtbot, make_window, tmp_path):
    window = make_window()
    finished, bad = measure_in_window(qtbot, window, "usage_ok", credentials="bob:hunter2@", api_key="sk-window")
    assert finished.status == "completed"
    assert {r["auth"] for r in bad.requests if "chat" in r["path"]} == {"Bearer sk-window"}
    window.save_settings()
    settings = window.settings.fileName()
    text = Path(settings).read_text()
    assert "hunter2" not in text and "sk-window" not in text and "http://***@127.0.0.1" in text
    assert "hunter2" not in window.status_label.text() + window.banner.text()


def test_the_window_warns_when_the_server_cut_streams_short(qtbot, make_window):
    window = make_window()
    finished, _ = measure_in_window(qtbot, window, "cut")
    assert finished.status == "completed" and finished.result.summaries[0].level.cut_short > 0
    assert "Measured, but streams ended without a finish reason" in window.banner.text()
    assert "--interrupt_requests False" in window.banner.text()


def test_a_server_s_failure_is_a_banner_and_a_failed_session_in_the_window(qtbot, make_window):
    window = make_window()
    finished, _ = measure_in_window(qtbot, window, "content_number")
    assert finished.status == "failed"
    assert "a stream chunk's content is a int, not text" in window.banner.text()
    window.views.setCurrentWidget(window.history)
    statuses = [window.history.model.item(r, 10).text() for r in range(window.history.model.rowCount())]
    assert "failed" in statuses


def test_the_window_s_stop_cuts_a_silent_server_at_once(qtbot, make_window):
    window = make_window()
    silent = BadServer("silent")
    try:
        dialog = endpoint_dialog(window, silent.url)
        dialog.timeout.setValue(600)
        dialog.start()
        qtbot.waitUntil(lambda: any("chat" in r["path"] for r in silent.requests), timeout=30_000)
        qtbot.wait(300)
        stopped = time.monotonic()
        with qtbot.waitSignal(window.controller.job_finished, timeout=10_000, check_params_cb=endpoint_done) as done:
            qtbot.mouseClick(window.stop_button, Qt.LeftButton)
        took = time.monotonic() - stopped
    finally:
        silent.close()
    assert done.args[0].status == "cancelled" and took < 2.0
    assert window.controller.state in ("idle", "ready")
