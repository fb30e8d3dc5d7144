"""Failure paths as a user meets them: full disks, foreign or newer databases, signals, bad inputs.

Each test runs the real `tpw` in a subprocess (so signals, exit codes and
stderr are real) and checks three things: what the user is told (one line,
no traceback), what is kept, and that nothing that isn't tpw's is touched.
"""

import hashlib
import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import time

import pytest
from tpw_cli import TPW, run_tpw

from tpw_desktop.store import Store, open_recorder


def no_traceback(done):
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout


def one_line_error(done, *fragments):
    """Status 2, and the error as the one last line of stderr (after any progress or warning)."""
    no_traceback(done)
    assert done.returncode == 2, done.stderr
    last = done.stderr.splitlines()[-1]
    assert last.startswith("tpw: ")
    for fragment in fragments:
        assert fragment in last, last
    return last


# --- the database ------------------------------------------------------------------------------


def limited_to(n_bytes):
    """RLIMIT_FSIZE: no file may grow past n_bytes, as on a disk that is full (writes fail with EFBIG)."""
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (n_bytes, n_bytes))


@pytest.mark.slow
def test_a_disk_that_fills_mid_run_loses_no_measurement(tiny_model, tmp_path):
    db = tmp_path / "sessions.db"
    writer, _ = open_recorder(db)
    writer.close()
    room = db.stat().st_size + 48_000  # the WAL can take a few commits, then every write fails
    done = run_tpw(
        "bench",
        str(tiny_model),
        "-p",
        "32",
        "-n",
        "256",
        "-r",
        "12",
        "--idle-s",
        "0.3",
        "--settle-s",
        "0",
        "--power",
        "estimate",
        db=db,
        cwd=tmp_path,
        preexec_fn=limited_to(room),
    )
    no_traceback(done)
    assert done.returncode == 1, done.stderr
    assert "tg256" in done.stdout and "pp32" in done.stdout  # the measurement is shown
    assert "warning: the session database is not taking writes" in done.stderr
    assert "the session was measured but not saved:" in done.stderr and "disk" in done.stderr
    [saved] = tmp_path.glob("tpw-results-*.json")
    assert f"the results are in {saved}" in done.stderr
    [run] = json.loads(saved.read_text())["runs"]
    assert run["status"] == "completed" and len(run["results"]) == 24 and run["save_error"]


def test_a_full_disk_at_the_start_is_one_line_before_any_model_loads(tiny_model, tmp_path):
    done = run_tpw("bench", str(tiny_model), "-r", "1", db=tmp_path / "new.db", preexec_fn=limited_to(4096))
    line = one_line_error(done, "new.db: cannot open the session database")
    assert "disk" in line
    assert "loading the model" not in done.stderr


def test_the_json_goes_where_asked_when_the_database_fails(tiny_model, tmp_path):
    db = tmp_path / "sessions.db"
    writer, _ = open_recorder(db)
    writer.close()
    target = tmp_path / "kept.json"
    done = run_tpw(
        "bench",
        str(tiny_model),
        "-p",
        "0",
        "-n",
        "256",
        "-r",
        "12",
        "--idle-s",
        "0",
        "--power",
        "estimate",
        "--save-failed-to",
        str(target),
        "-q",
        db=db,
        preexec_fn=limited_to(db.stat().st_size + 40_000),
    )
    assert done.returncode == 1, done.stderr
    assert json.loads(target.read_text())["runs"][0]["summary"][0]["test"] == "tg256"


def test_a_database_from_a_newer_tpw_is_refused_before_anything_runs(tiny_model, tmp_path):
    db = tmp_path / "sessions.db"
    writer, _ = open_recorder(db)
    writer.close()
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES ('tpw', 'm042_future', '')")
    conn.execute("PRAGMA user_version = 42")
    conn.commit()
    conn.close()
    for args in (["sessions", "list"], ["bench", str(tiny_model), "-r", "1"]):
        done = run_tpw(*args, db=db)
        one_line_error(done, "this database was written by a newer tpw-desktop (schema 42", "upgrade", "--db")
        assert "loading the model" not in done.stderr


def test_someone_elses_sqlite_file_is_never_modified(tmp_path):
    other = tmp_path / "contacts.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE contacts (name TEXT, phone TEXT)")
    conn.execute("INSERT INTO contacts VALUES ('Ada', '555')")
    conn.commit()
    conn.close()
    before = hashlib.sha256(other.read_bytes()).hexdigest()
    for args in (["sessions", "list"], ["bench", "-r", "1"], ["sessions", "export", "1"]):
        done = run_tpw(*args, db=other)
        one_line_error(done, "contacts.db is not a tpw-desktop database", "contacts", "untouched")
    assert hashlib.sha256(other.read_bytes()).hexdigest() == before
    assert sqlite3.connect(other).execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # not switched to WAL
    assert sorted(p.name for p in tmp_path.iterdir()) == ["contacts.db"]


def test_a_file_holding_only_another_programs_migrations_is_not_adopted(tmp_path):
    """sqlite-utils' migrations table is shared by every program using it: another set is not ours."""
    other = tmp_path / "notes.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE _sqlite_migrations (migration_set TEXT, name TEXT, applied_at TEXT)")
    conn.execute("INSERT INTO _sqlite_migrations VALUES ('notes\x1b[31m', 'm001_notes', '2026-01-01')")
    conn.commit()
    conn.close()
    before = hashlib.sha256(other.read_bytes()).hexdigest()
    for args in (["sessions", "list"], ["sessions", "show", "1"]):
        done = run_tpw(*args, db=other)
        one_line_error(done, "notes.db is not a tpw-desktop database", "another program's migrations: notes)", "--db")
        assert "\x1b" not in done.stderr
    assert hashlib.sha256(other.read_bytes()).hexdigest() == before


def without_root_powers(command):
    """Root reads and writes anything: drop the capabilities that bypass file permissions (setpriv)."""
    if os.geteuid() != 0:
        return command
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: a read-only file can't be made")
    drop = "-dac_override,-dac_read_search,-fowner"
    return ["setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}", *command]


def test_a_read_only_database_can_be_read_and_refuses_writes_up_front(tiny_model, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    db = folder / "sessions.db"
    assert (
        run_tpw("bench", str(tiny_model), "-p", "0", "-n", "4", "-r", "1", "--idle-s", "0", "-q", db=db).returncode == 0
    )
    db.chmod(0o444)
    folder.chmod(0o555)
    try:
        listed = subprocess.run(
            without_root_powers([TPW, "--db", str(db), "sessions", "list", "--json"]),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert listed.returncode == 0, listed.stderr
        assert [s["status"] for s in json.loads(listed.stdout)] == ["completed"]
        bench = subprocess.run(
            without_root_powers([TPW, "--db", str(db), "bench", str(tiny_model), "-r", "1"]),
            capture_output=True,
            text=True,
            timeout=60,
        )
        one_line_error(bench, "sessions.db: the session database can't be written", "read-only")
        assert "loading the model" not in bench.stderr
    finally:
        folder.chmod(0o755)


# --- exports and inputs --------------------------------------------------------------------------


def test_an_export_of_an_unknown_session_leaves_the_file_alone(tmp_path, tiny_model):
    db = tmp_path / "sessions.db"
    assert (
        run_tpw("bench", str(tiny_model), "-p", "0", "-n", "4", "-r", "1", "--idle-s", "0", "-q", db=db).returncode == 0
    )
    keep = tmp_path / "mine.csv"
    keep.write_text("precious\n")
    one_line_error(run_tpw("sessions", "export", "99", "-o", str(keep), db=db), "no session 99")
    assert keep.read_text() == "precious\n"
    one_line_error(
        run_tpw("sessions", "export", "1", "-o", str(tmp_path / "nope" / "x.csv"), db=db),
        "the folder",
        "does not exist",
    )
    ok = run_tpw("sessions", "export", "1", "--format", "csv", "-o", str(keep), db=db)
    assert ok.returncode == 0 and keep.read_text().startswith("record,session_id,")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp file left


@pytest.mark.parametrize(
    ("content", "where", "problem"),
    [
        ("t_s,power_w\n0,50\n1,nan\n2,50\n", "line 3", "power_w is nan"),
        ("t_s,power_w\n0,50\n1,inf\n", "line 3", "power_w is inf"),
        ("# a comment\nt_s,power_w\n0,50\n1,-4\n", "line 4", "power_w is negative (-4)"),
        ("t_s,power_w\n0,50\n0,50\n", "line 3", "t_s must be strictly increasing"),
        ("t_s,power_w\n0,50\n1,fifty\n", "line 3", "power_w is not a number ('fifty')"),
        (b"t_s,power_w\n0,50\n1,\xff\xfe\n", "line 3", "not UTF-8 text"),
    ],
)
def test_a_bad_replay_trace_is_refused_at_load_with_its_line(tmp_path, content, where, problem):
    trace = tmp_path / "trace.csv"
    trace.write_bytes(content.encode() if isinstance(content, str) else content)
    done = run_tpw("bench", "--power", f"replay:{trace}", "-r", "1", "--no-save")
    one_line_error(done, f"trace.csv, {where}: {problem}")
    assert "loading the model" not in done.stderr


def test_a_context_too_large_for_memory_is_refused_with_the_numbers(tiny_model):
    done = run_tpw("bench", "--ctx", "40000000", "-p", "0", "-n", "4", "-r", "1", "--no-save")
    one_line_error(
        done, "a context of 40,000,000 tokens needs a", "KV cache;", "of RAM is free, of which tpw uses at most 90%",
        "lower the context size (--ctx)",
    )  # fmt: skip


def test_a_test_longer_than_the_context_is_refused_before_loading(tiny_model):
    done = run_tpw("bench", str(tiny_model), "--ctx", "256", "-p", "512", "-r", "1", "--no-save")
    assert done.returncode == 2 and "pp512 needs 512 tokens of context, but --ctx is 256" in done.stderr
    grown = run_tpw("bench", str(tiny_model), "-p", "0", "-n", "4", "-r", "1", "--idle-s", "0", "--no-save")
    assert grown.returncode == 0


def test_unknown_architectures_and_vocab_only_files_say_why(tmp_path, tiny_model):
    import gguf

    vocab = tmp_path / "vocab-only.gguf"
    w = gguf.GGUFWriter(str(vocab), "llama")
    w.add_token_list(["<s>", "</s>", "a"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    alien = tmp_path / "alien.gguf"
    data = tiny_model.read_bytes().replace(b"llama", b"zzzzz")  # the architecture and its keys
    alien.write_bytes(data)
    listed = json.loads(run_tpw("models", str(tmp_path), "--json").stdout)
    problems = {os.path.basename(r["path"]): r["problem"] for r in listed}
    assert "vocabulary-only" in problems["vocab-only.gguf"]
    assert "unknown model architecture 'zzzzz'" in problems["alien.gguf"]
    one_line_error(run_tpw("bench", str(alien), "-r", "1", "--no-save"), "unknown model architecture 'zzzzz'")


def test_a_date_filter_that_is_not_a_date_is_refused(tmp_path):
    done = run_tpw("sessions", "list", "--since", "yesterday", db=tmp_path / "s.db")
    assert done.returncode == 2 and "expected a date like 2026-11-27" in done.stderr
    no_traceback(done)


# --- signals and kills ----------------------------------------------------------------------------


def start_bench(tiny_model, db, *extra):
    return subprocess.Popen(
        [
            TPW,
            "--db",
            str(db),
            "bench",
            str(tiny_model),
            "-p",
            "0",
            "-n",
            "512",
            "-r",
            "30",
            "--idle-s",
            "0.5",
            "--settle-s",
            "0",
            "--power",
            "estimate",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_line(process, text, timeout=60):
    """Read stderr until a line holds ``text``; returns what was read."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        seen.append(line)
        if text in line:
            return seen
        if not line and process.poll() is not None:
            break
    pytest.fail(f"never saw {text!r}: {''.join(seen)}")


@pytest.mark.parametrize("how", ["sigterm", "twice"])
def test_a_stopped_run_prints_and_keeps_what_finished(tiny_model, tmp_path, how):
    db = tmp_path / "sessions.db"
    process = start_bench(tiny_model, db)
    wait_for_line(process, "repetition 3/30")
    if how == "sigterm":
        process.send_signal(signal.SIGTERM)
    else:
        # Two stop signals at once, as from an impatient user while a GPU finishes a batch: the
        # process is paused so both are pending together, and the second is handled mid-run.
        process.send_signal(signal.SIGSTOP)
        process.send_signal(signal.SIGINT)
        process.send_signal(signal.SIGTERM)
        process.send_signal(signal.SIGCONT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert "tg512" in out and "the table holds the repetitions that finished" in out
    status = "cancelled" if how == "sigterm" else "interrupted"
    assert f"run {status}" in out
    with Store(db) as store:
        [session] = store.list_sessions()
        assert session.status == status
        assert len(store.results(session.id)) >= 2


def test_kill_9_keeps_the_idle_baseline(tiny_model, tmp_path):
    db = tmp_path / "sessions.db"
    process = start_bench(tiny_model, db)
    wait_for_line(process, "repetition 2/30")
    process.kill()
    process.wait(timeout=30)
    with Store(db) as store:
        store.recover_interrupted()
        [session] = store.list_sessions()
    assert session.status == "interrupted"
    assert session.outcome.idle is not None and session.outcome.idle.seconds > 0.4


def test_a_cancel_before_the_first_repetition_says_so(tiny_model, tmp_path):
    process = start_bench(tiny_model, tmp_path / "s.db", "--idle-s", "5")
    wait_for_line(process, "measuring idle power")
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in err
    assert "no repetition finished: nothing to report" in out
    assert "| model" not in out


def test_llama_cpp_log_lines_stay_off_the_terminal(tiny_model, tmp_path):
    done = run_tpw(
        "bench", str(tiny_model), "--ctx", "4096", "-p", "16", "-n", "4", "-r", "1", "--idle-s", "0", "--no-save"
    )
    assert done.returncode == 0
    assert [line for line in done.stderr.splitlines() if not line.startswith("tpw: ")] == []
    verbose = run_tpw("-v", "bench", str(tiny_model), "-p", "16", "-n", "4", "-r", "1", "--idle-s", "0", "--no-save")
    assert "tpw.llama: " in verbose.stderr  # still there when asked for


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_quantize_leaves_no_file_under_the_output_s_name(sig, tmp_path):
    """Issue 17: quantizing writes a partial file and renames it when whole; a stop honours itself with 130."""
    from gguf_factory import write_tiny_llama

    source = write_tiny_llama(tmp_path / "big-F32.gguf", n_embd=768, n_layers=8, n_head=8, n_ff=2048)
    out = tmp_path / "big-Q4_K_M.gguf"
    partial = tmp_path / ".big-Q4_K_M.gguf.part"
    process = subprocess.Popen(
        [TPW, "quantize", str(source), "--type", "Q4_K_M", "-o", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not partial.exists():
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
        time.sleep(0.01)
    process.send_signal(sig)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130 and "Traceback" not in err
    assert "stopped quantizing big-F32.gguf; big-Q4_K_M.gguf was not written" in err
    assert not out.exists() and not partial.exists()


def test_quantizing_into_a_read_only_folder_is_one_line(tiny_model, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        done = subprocess.run(
            without_root_powers([TPW, "quantize", str(tiny_model), "--type", "Q8_0", "-o", str(folder / "q8.gguf")]),
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        folder.chmod(0o755)
    assert done.returncode == 2 and done.stderr.strip() == (
        f"tpw: {folder / 'q8.gguf'}: the folder {folder} is read-only; choose another place (-o)"
    )
