"""The session database on real SQLite files: schema, durability, concurrency, export."""

import csv
import io
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sqlite_utils import Database
from store_meta import meta_for

from tpw_desktop.errors import TpwError
from tpw_desktop.power import PowerTrace, ReplaySource, Sampler
from tpw_desktop.record import fields
from tpw_desktop.record.meta import TestRef
from tpw_desktop.record.results import ResultRow
from tpw_desktop.record.stored import RunOutcome
from tpw_desktop.store import SessionWriter, Store, connect, schema_version
from tpw_desktop.store.schema import migrations

ALL_MIGRATIONS = [m.name for m in migrations._migrations]
CHILD = Path(__file__).with_name("writer_child.py")


def replay(watts: float = 100.0) -> ReplaySource:
    trace = PowerTrace(np.array([0.0, 3600.0]), np.array([watts, watts]), None, "constant.csv")
    return ReplaySource(trace, time.monotonic_ns)


def record(db_path, model, *, seconds=0.3, status="completed", store_text=True, rate_hz=100) -> int:
    source = replay()
    with Sampler([source], rate_hz=rate_hz) as sampler, SessionWriter(db_path) as writer:
        session_id = writer.begin(meta_for(model, [source], store_text=store_text), sampler)
        time.sleep(seconds)
        writer.finish(session_id, status, RunOutcome(None, "not measured", sampler=sampler.stats()))
    return session_id


# --- schema ---------------------------------------------------------------------------------


def test_a_new_file_gets_the_whole_schema(db_path):
    db = connect(db_path)
    assert schema_version(db) == ALL_MIGRATIONS
    assert {"sessions", "samples", "results", "summaries", "tokens", "calls", "models", "machines"} <= set(
        db.table_names()
    )
    assert db.journal_mode == "wal"
    assert ["session_id", "source", "t_ns"] in [i.columns for i in db["samples"].indexes]


@pytest.mark.parametrize("applied", range(len(ALL_MIGRATIONS)))
def test_every_earlier_version_migrates_and_keeps_its_data(db_path, tiny_model, applied):
    old = Database(db_path)
    if applied < len(ALL_MIGRATIONS):
        migrations.apply(old, stop_before=ALL_MIGRATIONS[applied])
    assert schema_version(old) == ALL_MIGRATIONS[:applied]
    if "sessions" in old.table_names():
        old["sessions"].insert({"id": 7, "started_at": "2026-01-01T00:00:00+00:00", "status": "completed"})
        old["samples"].insert({"session_id": 7, "source": "nvml:0", "t_ns": 1, "power_w": 5.0})
    old.close()

    db = connect(db_path)
    assert schema_version(db) == ALL_MIGRATIONS
    if applied:
        assert db["sessions"].get(7)["status"] == "completed"
        assert db["samples"].count == 1


def test_summaries_from_before_pooling_keep_their_means_under_the_new_names(db_path):
    """m004: old summaries averaged per-repetition ratios; they keep their values, marked as such."""
    old = Database(db_path)
    migrations.apply(old, stop_before="m004_unknown_figures_and_error_bounds")
    summary = [
        {
            "test": "tg128",
            "phase": "tg",
            "tokens_per_s_mean": 120.0,
            "tokens_per_j_mean": 2.0,
            "tokens_per_j_sd": 0.1,
            "j_per_token_mean": 0.5,
            "average_w_mean": 60.0,
            "tokens_per_j_above_idle_mean": None,
        }
    ]
    old["sessions"].insert(
        {"id": 3, "started_at": "2026-01-01T00:00:00+00:00", "status": "completed", "summary": json.dumps(summary)}
    )
    old.close()
    with Store(db_path) as store:
        [row] = store.session(3).outcome.summaries
    assert (row.test, row.kind, row.phase, row.tokens_per_s_mean) == ("tg128", "tg", "tg", 120.0)
    p = row.pooled
    assert (p.tokens_per_j, row.tokens_per_j_sd, p.j_per_token, p.average_w) == (2.0, 0.1, 0.5, 60.0)
    assert p.tokens_per_j_above_idle is None


def test_the_file_is_private_to_the_user(db_path):
    connect(db_path)
    assert stat.S_IMODE(os.stat(db_path).st_mode) == 0o600


def test_not_a_database(tmp_path):
    bad = tmp_path / "notes.db"
    bad.write_text("this is not sqlite " * 100)
    with pytest.raises(TpwError, match="cannot open the session database"):
        connect(bad)


# --- writing ------------------------------------------------------------------------------------


def test_a_recorded_session(db_path, tiny_model):
    session_id = record(db_path, tiny_model, seconds=0.5)
    with Store(db_path) as store:
        s = store.session(session_id)
        assert s.status == "completed" and s.ended_at >= s.started_at
        assert s.meta.model.file_name == tiny_model.name and s.meta.model.quantization == "F32"
        assert s.meta.method == "replayed"
        [source] = s.meta.power_sources
        assert (source.name, source.method) == ("replay:constant.csv", "replayed")
        assert source.details["trace"] == "constant.csv"
        assert s.meta.options.price_per_kwh == 0.3 and s.meta.options.currency == "EUR"
        assert s.meta.tests == (TestRef("tg128", "tg"),) and s.meta.settings.n_ctx == 512
        assert 40 <= store.sample_count(session_id) <= 60
        samples = store.samples(session_id)["replay:constant.csv"]
        assert (samples["power_w"] == 100.0).all()
        assert np.all(np.diff(samples["t_s"]) > 0)


def test_the_model_hash_is_recorded_in_the_background(db_path, tiny_model):
    import hashlib

    session_id = record(db_path, tiny_model)
    expected = hashlib.sha256(tiny_model.read_bytes()).hexdigest()
    deadline = time.monotonic() + 10
    with Store(db_path) as store:
        while store.session(session_id).model_sha256 is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store.session(session_id).model_sha256 == expected


def test_one_model_row_per_file_and_one_machine_row(db_path, tiny_model):
    record(db_path, tiny_model)
    record(db_path, tiny_model)
    db = connect(db_path)
    assert db["models"].count == 1 and db["machines"].count == 1 and db["sessions"].count == 2


def test_kill_9_mid_session_loses_at_most_a_second(db_path, tiny_model):
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(db_path), str(tiny_model), "60", "50"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=CHILD.parent,
    )
    try:
        session_id = int(child.stdout.readline().split()[1])
        time.sleep(2.5)
        killed_ns = time.monotonic_ns()
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        child.kill()
    with Store(db_path) as store:
        assert store.session(session_id).status == "running"
        assert store.recover_interrupted() == [session_id]
        s = store.session(session_id)
        assert s.status == "interrupted" and s.ended_at
        last_sample_ns = store.db.execute(
            "SELECT max(t_ns) FROM samples WHERE session_id = ?", [session_id]
        ).fetchone()[0]
        last_token_ns = store.db.execute("SELECT max(t_ns) FROM tokens WHERE session_id = ?", [session_id]).fetchone()[
            0
        ]
        assert killed_ns - last_sample_ns < 1_000_000_000
        assert killed_ns - last_token_ns < 1_000_000_000
        assert store.sample_count(session_id) > 100  # the data it had is kept
        assert store.recover_interrupted() == []


def test_a_live_session_of_another_process_is_not_marked_interrupted(db_path, tiny_model):
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(db_path), str(tiny_model), "3", "50"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=CHILD.parent,
    )
    try:
        session_id = int(child.stdout.readline().split()[1])
        with Store(db_path) as store:
            assert store.recover_interrupted() == []
            assert store.session(session_id).status == "running"
        assert child.wait(30) == 0
    finally:
        child.kill()
    with Store(db_path) as store:
        assert store.session(session_id).status == "completed"


def _open_at(path, start_at_s, failures):
    from tpw_desktop.store.db import connect

    while time.time() < start_at_s:  # spin: a barrier's wake-ups are too far apart to collide
        pass
    try:
        connect(path).close()
    except Exception as exc:  # noqa: BLE001 - the test reports whatever it was
        failures.put(str(exc))


def test_two_processes_opening_a_new_file_at_once_both_get_it(tmp_path):
    """Both switch it to WAL: SQLite answers one "locked" at once (a deadlock, no busy wait), so connect waits."""
    import multiprocessing

    fork = multiprocessing.get_context("fork")
    failures = fork.Queue()
    for round_ in range(10):
        args = (tmp_path / f"new-{round_}.db", time.time() + 0.2, failures)
        children = [fork.Process(target=_open_at, args=args) for _ in range(2)]
        for child in children:
            child.start()
        for child in children:
            child.join(30)
            assert child.exitcode == 0
    assert failures.empty(), failures.get()


def test_two_processes_write_one_database_at_once(db_path, tiny_model):
    children = [
        subprocess.Popen(
            [sys.executable, str(CHILD), str(db_path), str(tiny_model), "2", "200"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=CHILD.parent,
        )
        for _ in range(2)
    ]
    outputs = [c.communicate(timeout=60) for c in children]
    for child, (out, err) in zip(children, outputs):
        assert child.returncode == 0, err
        assert "locked" not in err
        assert out.strip().endswith("done")
    with Store(db_path) as store:
        assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        sessions = store.list_sessions()
        assert len(sessions) == 2 and {s.status for s in sessions} == {"completed"}
        for s in sessions:
            assert store.sample_count(s.id) > 300
            assert len(store.tokens(s.id)) > 100


# --- queries --------------------------------------------------------------------------------------


def test_list_filters(db_path, tiny_model, tmp_path):
    from gguf_factory import write_tiny_llama

    other = write_tiny_llama(tmp_path / "other-model.gguf", name="other")
    a = record(db_path, tiny_model, seconds=0.05)
    b = record(db_path, other, seconds=0.05, status="cancelled")
    with Store(db_path) as store:
        assert [s.id for s in store.list_sessions()] == [b, a]
        assert [s.id for s in store.list_sessions(model="other")] == [b]
        assert [s.id for s in store.list_sessions(status="completed")] == [a]
        assert [s.id for s in store.list_sessions(quantization="f32")] == [b, a]
        assert store.list_sessions(quantization="Q4_K_M") == []
        assert store.list_sessions(since="2000-01-01", until="2000-01-02") == []
        assert len(store.list_sessions(since="2000-01-01")) == 2
        assert len(store.list_sessions(limit=1)) == 1


def test_downsampling_keeps_the_envelope(db_path, tiny_model):
    session_id = record(db_path, tiny_model, seconds=0.05)
    db = connect(db_path)
    t0 = db["sessions"].get(session_id)["t0_ns"]
    db.execute("DELETE FROM samples WHERE session_id = ?", [session_id])
    n = 10_000
    power = np.full(n, 50.0)
    power[1234] = 400.0  # one spike
    rows = [(session_id, "replay:constant.csv", t0 + i * 20_000_000, float(power[i]), i * 1.0) for i in range(n)]
    db.conn.executemany("INSERT INTO samples VALUES (?, ?, ?, ?, ?)", rows)
    db.conn.commit()
    with Store(db_path) as store:
        full = store.samples(session_id)["replay:constant.csv"]
        assert len(full["t_s"]) == n
        small = store.samples(session_id, max_points=100)["replay:constant.csv"]
        assert len(small["t_s"]) == 100
        assert small["power_max_w"].max() == 400.0  # the spike survives
        assert small["power_min_w"].min() == 50.0
        assert small["t_s"][0] == 0.0 and small["t_s"][-1] < 200.0
        assert small["energy_j"][-1] == n - 1


def test_delete(db_path, tiny_model):
    a = record(db_path, tiny_model, seconds=0.1)
    b = record(db_path, tiny_model, seconds=0.1)
    with Store(db_path) as store:
        store.delete(a)
        assert [s.id for s in store.list_sessions()] == [b]
        assert store.db.execute("SELECT count(*) FROM samples WHERE session_id = ?", [a]).fetchone()[0] == 0
        with pytest.raises(TpwError, match="no session"):
            store.delete(a)


# --- export ----------------------------------------------------------------------------------------


def _seed_results(db_path, session_id):
    db = connect(db_path)
    db["results"].insert_all(
        [
            {
                "session_id": session_id,
                "test": "tg128",
                "kind": "tg",
                "repetition": r,
                "phase": "tg",
                "t_start_ns": r,
                "t_end_ns": r + 1,
                "tokens": 128,
                "seconds": 1.0 + r,
                "joules": 100.0,
                "tokens_per_j": 1.28,
                "method": "replayed",
                "confident": 1,
            }
            for r in range(3)
        ]
    )


def test_export_json_round_trips(db_path, tiny_model):
    session_id = record(db_path, tiny_model, seconds=0.3)
    _seed_results(db_path, session_id)
    with Store(db_path) as store:
        doc = json.loads(export_text(store, session_id, "json"))
        assert doc["session"]["id"] == session_id
        assert doc["session"]["meta"]["power_sources"][0]["method"] == "replayed"
        assert len(doc["samples"]) == store.sample_count(session_id)
        db_samples = store.db.execute(
            "SELECT source, t_ns, power_w FROM samples WHERE session_id = ? ORDER BY t_ns", [session_id]
        ).fetchall()
        assert [(s["source"], s["t_ns"], s["power_w"]) for s in doc["samples"]] == db_samples
        assert {s["method"] for s in doc["samples"]} == {"replayed"}
        assert [fields.from_row(ResultRow, r) for r in doc["results"]] == store.results(session_id)


def test_export_csv_round_trips(db_path, tiny_model):
    session_id = record(db_path, tiny_model, seconds=0.3)
    _seed_results(db_path, session_id)
    with Store(db_path) as store:
        rows = list(csv.DictReader(io.StringIO(export_text(store, session_id, "csv"))))
        samples = [r for r in rows if r["record"] == "sample"]
        results = [r for r in rows if r["record"] == "result"]
        assert len(samples) == store.sample_count(session_id)
        db_samples = store.db.execute(
            "SELECT t_ns, power_w FROM samples WHERE session_id = ? ORDER BY t_ns", [session_id]
        ).fetchall()
        assert [(int(r["t_ns"]), float(r["power_w"])) for r in samples] == db_samples
        assert all(r["method"] == "replayed" for r in samples)
        assert [(int(r["repetition"]), float(r["seconds"]), r["method"]) for r in results] == [
            (0, 1.0, "replayed"),
            (1, 2.0, "replayed"),
            (2, 3.0, "replayed"),
        ]


def test_export_an_unknown_session(db_path):
    with Store(db_path) as store, pytest.raises(TpwError, match="no session 99"):
        export_text(store, 99, "json")


def export_text(store, session_id, fmt):
    out = io.StringIO()
    store.export(session_id, fmt, out)
    return out.getvalue()


def test_a_commit_that_fails_loses_no_tokens_or_samples(db_path, tiny_model):
    """Another process holds the write lock past the busy timeout: the rows wait, they don't vanish."""
    import sqlite3

    from tpw_desktop.record.calls import TokenEvent

    source = replay()
    with Sampler([source], rate_hz=100) as sampler, SessionWriter(db_path) as writer:
        session_id = writer.begin(meta_for(tiny_model, [source]), sampler)
        writer._call(lambda db: db.execute("PRAGMA busy_timeout = 20"))  # fail fast instead of waiting 15 s
        blocker = sqlite3.connect(db_path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        for i in range(50):
            writer.token(session_id, "tg50", 0, 0, TokenEvent(time.monotonic_ns(), i, 7, "x"), store_text=True)
            time.sleep(0.01)  # ~0.5 s of tokens and samples while every commit fails
        blocker.execute("ROLLBACK")
        blocker.close()
        time.sleep(0.3)
        writer.finish(session_id, "completed", RunOutcome(None, None))
    with Store(db_path) as store:
        assert len(store.tokens(session_id)) == 50
        t = store.samples(session_id)["replay:constant.csv"]["t_s"]
        assert np.diff(t).max() < 0.05  # no hole where the lock was held


def test_a_transaction_that_fails_midway_loses_no_tokens_or_samples(db_path, tiny_model):
    """A failure after rows were taken (disk full, I/O error): they are written by the next commit."""
    import sqlite3

    from tpw_desktop.record.calls import TokenEvent

    setup = sqlite3.connect(db_path)
    connect(db_path).close()
    setup.executescript("""
        CREATE TABLE fail_now (x);
        CREATE TRIGGER simulated_disk_full BEFORE INSERT ON tokens WHEN EXISTS (SELECT 1 FROM fail_now)
        BEGIN SELECT RAISE(ABORT, 'disk full (simulated)'); END;
    """)
    source = replay()
    with Sampler([source], rate_hz=100) as sampler, SessionWriter(db_path) as writer:
        session_id = writer.begin(meta_for(tiny_model, [source]), sampler)
        setup.execute("INSERT INTO fail_now VALUES (1)")
        setup.commit()
        for i in range(50):
            writer.token(session_id, "tg50", 0, 0, TokenEvent(time.monotonic_ns(), i, 7, "x"), store_text=True)
            time.sleep(0.01)  # ~0.5 s of commits failing after they took the rows
        setup.execute("DELETE FROM fail_now")
        setup.commit()
        time.sleep(0.3)
        writer.finish(session_id, "completed", RunOutcome(None, None))
    setup.close()
    with Store(db_path) as store:
        assert store.session(session_id).status == "completed"
        assert len(store.tokens(session_id)) == 50
        t = store.samples(session_id)["replay:constant.csv"]["t_s"]
        assert np.diff(t).max() < 0.05
