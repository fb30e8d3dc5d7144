"""The run controller with its real measuring process: no window, just qtbot and signals."""

import re

import pytest

pytest.importorskip("PySide6")

from conftest import job_done, news_of

from tpw_desktop.engine.workloads import TestSpec
from tpw_desktop.record.meta import EngineSettings, RunOptions
from tpw_desktop.run.events import Caution, IdleMeasured
from tpw_desktop.store import Store
from tpw_desktop.ui.controller import RunController
from tpw_desktop.worker.client import MeasureClient

WATTS = 100.0


class CountingClient(MeasureClient):
    """The real client, counting what crosses the pipe."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.batches = 0

    def receive(self, limit=100):
        got = super().receive(limit)
        self.batches += len(got)
        return got


@pytest.fixture
def controller(qtbot, db_path, flat_trace):
    made = []

    def make(record=True):
        c = RunController(db_path, record=record, client_factory=CountingClient)
        made.append(c)
        with qtbot.waitSignal(c.job_finished, timeout=30_000, check_params_cb=job_done("power")):
            c.select_power(f"replay:{flat_trace}")
        return c

    yield make
    for c in made:
        c.close()


def stored_results(db) -> int:
    if not db.exists():
        return 0
    with Store.for_reading(db) as store:
        return sum(len(store.results(s.id)) for s in store.list_sessions())


def load(qtbot, c, model):
    with qtbot.waitSignal(c.job_finished, timeout=30_000, check_params_cb=job_done("load")):
        c.load(model, EngineSettings(n_ctx=512))
    assert c.state == "idle"


def run(qtbot, c, tests, **options):
    with qtbot.waitSignal(c.job_finished, timeout=60_000, check_params_cb=job_done("run")) as finished:
        assert c.start(tests, RunOptions(**{"repetitions": 1, "idle_s": 0, "warmup": False, **options}))
    return finished.args[0].result


def test_a_run_crosses_in_batches_not_one_message_per_token(qtbot, controller, tiny_model, db_path):
    c = controller()
    load(qtbot, c, tiny_model)
    texts = []
    c.text_arrived.connect(texts.append)
    before = c.client.batches
    report = run(qtbot, c, [TestSpec.pp(64), TestSpec.tg(400)], repetitions=2, idle_s=0.3, settle_s=0.1)
    assert report.status == "completed"
    assert [s.test for s in report.summaries] == ["pp64", "tg400"]
    tokens = 2 * 400
    assert c.client.batches - before < tokens / 5  # tokens travel many to a batch
    live = c.live
    assert {p.kind for p in live.phases} >= {"settle", "idle", "pp", "tg"}
    assert live.idle_w == pytest.approx(WATTS, rel=1e-4)
    t, p = live.power_series(0, 0, live.now_s, 10_000)
    assert len(t) > 10 and (p == WATTS).all()
    with Store(db_path) as store:
        [session] = store.list_sessions()
        assert session.id == report.session_id and session.status == "completed"


def test_a_killed_measuring_process_is_reported_its_session_kept_and_it_restarts(
    qtbot, controller, tiny_model, db_path
):
    c = controller()
    load(qtbot, c, tiny_model)
    c.start([TestSpec.tg(512)], RunOptions(repetitions=200, idle_s=0.3, settle_s=0, warmup=False))
    qtbot.waitUntil(lambda: stored_results(db_path) >= 2, timeout=30_000)
    with qtbot.waitSignal(c.process_died, timeout=10_000) as died:
        c.client.kill()
    assert c.state == "dead"
    assert "the measuring process was killed" in died.args[0]
    assert "was saved as interrupted, with what it measured" in died.args[0]
    with Store(db_path) as store:
        [session] = store.list_sessions()
        assert session.status == "interrupted"
        assert store.sample_count(session.id) > 10 and len(store.results(session.id)) >= 2
        assert session.outcome.idle.power_w == pytest.approx(WATTS, rel=1e-4)
    with qtbot.waitSignal(c.job_finished, timeout=30_000, check_params_cb=job_done("load")):
        c.restart()  # same power source, same model, new process
    assert c.state == "idle" and c.model.facts.file_name == tiny_model.name
    assert run(qtbot, c, [TestSpec.tg(8)]).status == "completed"


def test_cancelling_a_load_starts_a_new_process_with_the_power_and_no_model(qtbot, controller, bundled_model):
    c = controller()
    old_pid = c.client.pid
    assert c.load(bundled_model, EngineSettings()) and c.state == "loading"
    with qtbot.waitSignal(c.job_finished, timeout=30_000, check_params_cb=job_done("power")):
        assert c.cancel_load()
    assert c.state == "ready" and c.model is None and c.client.pid != old_pid
    assert not c.cancel_load()  # nothing loading now
    assert c.live is not None and [s.name for s in c.sources] == [s.name for s in c.sources if s.method == "replayed"]


def test_a_stop_right_after_start_is_not_lost(qtbot, controller, tiny_model):
    """The Stop reached the measuring process before its main thread took the run, which then cleared it:
    a run of minutes went on (found by the menu test, triggering Stop as soon as the state said running)."""
    c = controller()
    load(qtbot, c, tiny_model)
    with qtbot.waitSignal(c.job_finished, timeout=30_000, check_params_cb=job_done("run")) as done:
        assert c.start([TestSpec.tg(512)], RunOptions(repetitions=500, idle_s=0, warmup=False))
        assert c.stop()
    assert done.args[0].status == "cancelled"


def test_stop_ends_the_run_as_cancelled(qtbot, controller, tiny_model):
    c = controller()
    load(qtbot, c, tiny_model)
    c.start([TestSpec.tg(512)], RunOptions(repetitions=100, idle_s=0, warmup=False))
    # a batch may carry several repetitions: any past the first will do
    qtbot.waitUntil(lambda: int((re.search(r"repetition (\d+)/100", c.last_status) or [0, 0])[1]) >= 2, timeout=30_000)
    with qtbot.waitSignal(c.job_finished, timeout=30_000, check_params_cb=job_done("run")) as finished:
        assert c.stop()
        assert c.state == "stopping" and not c.stop()  # the state machine takes a stop once
    assert finished.args[0].status == "cancelled" and c.state == "idle"


def test_a_test_past_the_trained_context_is_cautioned_before_it_runs(qtbot, controller, tiny_model):
    c = controller(record=False)
    with qtbot.waitSignal(c.job_finished, timeout=30_000, check_params_cb=job_done("load")):
        c.load(tiny_model, EngineSettings(n_ctx=4096))
    with qtbot.waitSignal(c.news, timeout=30_000, check_params_cb=news_of(Caution)) as caution:
        report = run(qtbot, c, [TestSpec.tg(4), TestSpec.pp(2100)])
    assert "pp2100 needs 2100 tokens, more than the 2048" in caution.args[0].message
    assert report.status == "completed" and {r.row.test for r in report.results} == {"tg4", "pp2100"}


def test_idle_on_its_own_is_measured_and_not_saved(qtbot, controller, tiny_model, db_path):
    c = controller()
    load(qtbot, c, tiny_model)
    with qtbot.waitSignal(c.news, timeout=30_000, check_params_cb=news_of(IdleMeasured)) as idle:
        assert c.measure_idle(0.5, 0.1)
    assert idle.args[0].baseline.power_w == pytest.approx(WATTS, rel=1e-4)
    qtbot.waitUntil(lambda: c.state == "idle", timeout=10_000)
    with Store(db_path) as store:
        assert store.list_sessions() == []


def test_a_bad_file_keeps_the_loaded_model(qtbot, controller, tiny_model, tmp_path):
    c = controller(record=False)
    load(qtbot, c, tiny_model)
    bad = tmp_path / "noise.gguf"
    bad.write_bytes(bytes(range(256)) * 4)
    with qtbot.waitSignal(c.job_finished, timeout=30_000, check_params_cb=job_done("load")) as failed:
        c.load(bad, EngineSettings(n_ctx=512))
    assert failed.args[0].status == "failed" and failed.args[0].still_loaded == tiny_model.name
    assert "noise.gguf: not a GGUF file (it starts with bytes 00 01 02 03, not 'GGUF')" in failed.args[0].error
    assert c.state == "idle" and c.model.facts.file_name == tiny_model.name


def test_the_process_runs_apart_from_the_window(qtbot, controller):
    import os

    import psutil

    c = controller(record=False)
    child = psutil.Process(c.client.pid)
    assert c.client.pid != os.getpid() and child.is_running()
    assert "tpw_desktop.worker" in " ".join(child.cmdline())
    assert not any(m.path.endswith(("QtCore.abi3.so", "libQt6Core.so.6")) for m in child.memory_maps())


def test_the_window_and_tpw_bench_record_into_one_database_at_once(qtbot, controller, tiny_model, db_path):
    """The bench runs until stopped, so the window's whole run happens while it records."""
    import signal
    import subprocess
    import sys
    from pathlib import Path

    c = controller()
    load(qtbot, c, tiny_model)
    tpw = str(Path(sys.executable).with_name("tpw"))
    bench = subprocess.Popen(
        [tpw, "--db", str(db_path), "bench", str(tiny_model), "-p", "0", "-n", "128", "-r", "1000", "--idle-s", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    qtbot.waitUntil(lambda: stored_results(db_path) > 0, timeout=60_000)  # the bench is recording
    report = run(qtbot, c, [TestSpec.tg(128)], repetitions=10)
    bench.send_signal(signal.SIGINT)
    out, err = bench.communicate(timeout=60)
    assert bench.returncode == 130, err
    assert report.status == "completed"
    with Store(db_path) as store:
        window, cli = sorted(store.list_sessions(), key=lambda s: s.meta.options.repetitions)
        assert window.status == "completed" and len(store.results(window.id)) == 10
        assert cli.status == "cancelled" and len(store.results(cli.id)) > 1
        assert cli.ended_at > window.ended_at  # it recorded throughout the window's run


def test_the_state_machine_refuses_what_the_state_does_not_allow(qtbot, controller, tiny_model):
    from tpw_desktop.ui.controller import TRANSITIONS

    c = controller(record=False)
    assert c.state == "ready" and not c.start([TestSpec.tg(4)], RunOptions())  # no model: no run
    assert not c.stop()  # nothing to stop
    assert not c.allows("loaded") and c.allows("load")
    load(qtbot, c, tiny_model)
    assert c.start([TestSpec.tg(512)], RunOptions(repetitions=50, idle_s=0, warmup=False))
    assert c.state == "running"
    assert not c.load(tiny_model, EngineSettings(n_ctx=512))  # not while a run holds the engine
    assert not c.quantize(tiny_model, "Q8_0", None, False)
    with qtbot.waitSignal(c.job_finished, timeout=30_000, check_params_cb=job_done("run")):
        c.stop()
    assert c.state == "idle"
    # every state can die, and only a dead one restarts
    assert all((state, "died") in TRANSITIONS for state in ("starting", "ready", "loading", "idle", "running"))
    assert [k for k in TRANSITIONS if k[1] == "restart"] == [("dead", "restart")]


def test_a_run_that_takes_every_core_is_sent_to_the_window_less_often():
    from tpw_desktop.worker.forwarder import streaming_batch_s

    assert streaming_batch_s(model_threads=2, cores=2) == 2.0  # every frame stalls one of its threads
    assert streaming_batch_s(model_threads=8, cores=16) == 0.25  # a core to spare: 4 frames a second
    assert streaming_batch_s(model_threads=None, cores=16) == 2.0  # a sweep or a server: unknown, so careful
