"""Persist running sessions from a writer thread with its own connection.

Power samples (tens per second per source) and token events (hundreds per
second) arrive from other threads. The writer pulls new samples straight
from the sampler's ring buffers, drains queued rows, and commits everything
in one transaction every 250 ms, so a crash or ``kill -9`` loses at most the
last commit interval. It also touches the session's heartbeat, which lets
another process tell a live session from one whose process died.
"""

from __future__ import annotations

import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from sqlite_utils import Database

from ..errors import TpwError
from ..files import file_sha256
from ..paths import default_db_path
from ..record import fields
from ..record.calls import CallRow, TokenEvent
from ..record.meta import RunMeta
from ..record.results import ResultRow
from ..record.stored import RunOutcome, Settle
from ..record.vocab import Status
from .db import connect, describe_sqlite_error, utc_now
from .rows import as_json, insert_session, outcome_columns, summary_rows

COMMIT_INTERVAL_S = 0.25


class SaveFailed(TpwError):
    """The database refused a write the run was waiting on (disk full, I/O error, read-only)."""


HEARTBEAT_INTERVAL_S = 1.0


class SampleFeed(Protocol):
    """Where a running session's power samples come from (the sampler): per source, everything appended so far."""

    def source_names(self) -> list[str]: ...

    def samples_written(self, index: int) -> int: ...

    def samples_since(self, index: int, written_before: int) -> tuple[int, dict[str, np.ndarray]]: ...


@dataclass
class _Attached:
    """A running session's sample feed and how far into each source's samples we've written."""

    sampler: SampleFeed
    names: list[str]
    cursors: list[int]
    finished: bool = False  # detached once the commit holding its last samples succeeds


@dataclass
class _Op:
    fn: Callable[[Database], Any]
    urgent: bool = False  # someone is waiting on it: commit without waiting out the interval
    future: Future = field(default_factory=Future)


_TOKEN_INSERT = (
    "INSERT INTO tokens (session_id, test, repetition, call, idx, t_ns, token_id, text) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_SAMPLE_INSERT = "INSERT INTO samples (session_id, source, t_ns, power_w, energy_j) VALUES (?, ?, ?, ?, ?)"


class SessionWriter:
    """The ``Recorder`` that writes sessions to SQLite; use one per process."""

    def __init__(self, path=None, *, commit_interval_s: float = COMMIT_INTERVAL_S):
        self.path = Path(path) if path is not None else default_db_path()
        self.commit_interval_s = commit_interval_s
        self._queue: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._token_rows: queue.SimpleQueue[tuple] = queue.SimpleQueue()
        self._attached: dict[int, _Attached] = {}
        self._last_heartbeat = 0.0
        self.last_write_error: str | None = None
        self.failed_commits = 0
        self._closed = threading.Event()
        ready: Future = Future()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="tpw-store-writer", daemon=True)
        self._thread.start()
        ready.result()  # surfaces a connect() error (bad path, not a database) in the caller

    # --- Recorder protocol -------------------------------------------------------

    def begin(self, meta: RunMeta, sampler: SampleFeed) -> int:
        """Create the session row; from now on its samples are written as they come."""
        names = sampler.source_names()
        cursors = [sampler.samples_written(i) for i in range(len(names))]
        t0_ns = time.monotonic_ns()

        def create(db: Database) -> tuple[int, str | None]:
            session_id, sha256 = insert_session(db, meta, t0_ns)
            self._attached[session_id] = _Attached(sampler, names, cursors)
            return session_id, sha256

        session_id, sha256 = self._call(create)
        if sha256 is None and not meta.model.server:
            self._hash_model_later(meta.model.path)
        return session_id

    def token(
        self, session_id: int, test: str, repetition: int, call: int, event: TokenEvent, store_text: bool
    ) -> None:
        text = event.text if store_text else None
        self._token_rows.put((session_id, test, repetition, call, event.index, event.t_ns, event.token_id, text))

    def rows(self, session_id: int, calls: list[CallRow], results: list[ResultRow]) -> None:
        """A repetition's calls and result rows (columns from the records' field lists)."""
        call_rows = [{"session_id": session_id, **fields.to_row(c)} for c in calls]
        result_rows = [{"session_id": session_id, **fields.to_row(r)} for r in results]

        def write(db: Database) -> None:
            if call_rows:
                db["calls"].insert_all(call_rows)
            if result_rows:
                db["results"].insert_all(result_rows)

        self._submit(write)

    def begin_sweep(self, kind: str, plan: dict[str, Any]) -> int:
        """The sweep's row: its sessions point at it."""
        return self._call(
            lambda db: (
                db["sweeps"]
                .insert({"started_at": utc_now(), "status": "running", "kind": kind, "plan": as_json(plan)})
                .last_pk
            )
        )

    def finish_sweep(self, sweep_id: int, status: Status, settles: list[Settle], error: str | None = None) -> None:
        self._call(
            lambda db: db["sweeps"].update(
                sweep_id, {"status": status, "ended_at": utc_now(), "settles": as_json(settles), "error": error}
            )
        )

    def idle(self, session_id: int, outcome: RunOutcome) -> None:
        """The idle baseline as soon as it is measured: a killed run keeps it."""
        self._submit(lambda db: db["sessions"].update(session_id, outcome_columns(outcome)))

    def finish(self, session_id: int, status: Status, outcome: RunOutcome, error: str | None = None) -> None:
        """Write the last samples, the outcome and the summaries; returns once it is committed."""

        def write(db: Database) -> None:
            db["sessions"].update(
                session_id,
                {
                    "status": status,
                    "ended_at": utc_now(),
                    "heartbeat_at": utc_now(),
                    "error": error,
                    **outcome_columns(outcome),
                },
            )
            db.execute("DELETE FROM summaries WHERE session_id = ?", [session_id])
            db["summaries"].insert_all(summary_rows(session_id, outcome.summaries))
            # This commit also writes the session's last tokens and samples, then detaches it.
            self._attached[session_id].finished = True

        self._call(write)

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            self._queue.put(None)
            self._thread.join(10)

    def __enter__(self) -> SessionWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- the thread ------------------------------------------------------------------

    def _submit(self, fn: Callable[[Database], Any], urgent: bool = False) -> Future:
        if self._closed.is_set():
            raise RuntimeError("the session writer is closed")
        op = _Op(fn, urgent)
        self._queue.put(op)
        return op.future

    def _call(self, fn: Callable[[Database], Any]) -> Any:
        try:
            return self._submit(fn, urgent=True).result(timeout=60)
        except sqlite3.Error as exc:
            raise SaveFailed(
                f"the session database {self.path} took no write: {describe_sqlite_error(exc, self.path)}"
            ) from None

    def problem(self) -> str | None:
        """Why writes are failing right now (disk full ...), or None when the last commit succeeded."""
        return self.last_write_error

    def _run(self, ready: Future) -> None:
        try:
            db = connect(self.path)
        except BaseException as exc:  # noqa: BLE001 - handed to the constructor
            ready.set_exception(exc)
            return
        ready.set_result(None)
        stopping = False
        while not stopping:
            batch: list[_Op] = []
            deadline = time.monotonic() + self.commit_interval_s
            while (timeout := deadline - time.monotonic()) > 0:
                try:
                    op = self._queue.get(timeout=timeout)
                except queue.Empty:
                    break
                if op is None:
                    stopping = True
                    break
                batch.append(op)
                if op.urgent:
                    break
            self._commit(db, batch)
        db.close()

    def _commit(self, db: Database, batch: list[_Op]) -> None:
        """One transaction: queued ops (each in its own savepoint), new tokens and samples, heartbeat.

        Rows are taken before the transaction and only count as written when
        it commits: if it fails (disk full, I/O error), the tokens go back in
        the queue and the ring cursors stay put, so the next commit writes them.
        """
        tokens = self._take_tokens()
        samples, cursors = self._new_samples()
        outcomes: list[tuple[_Op, Any, BaseException | None]] = []
        try:
            db.conn.execute("BEGIN IMMEDIATE")
            for op in batch:
                try:
                    with db.atomic():
                        outcomes.append((op, op.fn(db), None))
                except Exception as exc:  # noqa: BLE001 - reported to the op's caller
                    outcomes.append((op, None, exc))
            if tokens:
                db.conn.executemany(_TOKEN_INSERT, tokens)
            if samples:
                # The hot path (thousands of rows a second): one prepared statement.
                db.conn.executemany(_SAMPLE_INSERT, samples)
            self._heartbeat(db)
            db.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.conn.in_transaction:
                db.conn.execute("ROLLBACK")
            self.last_write_error = describe_sqlite_error(exc, self.path)
            self.failed_commits += 1
            for row in tokens:
                self._token_rows.put(row)
            for op in batch:
                if op.urgent:  # its caller is waiting: it decides what to do
                    op.future.set_exception(exc)
                else:  # results and calls rows: kept for the next commit, like the tokens
                    self._queue.put(op)
            return
        self.last_write_error = None
        for att, new_cursors in cursors:
            att.cursors = new_cursors
        self._attached = {sid: att for sid, att in self._attached.items() if not att.finished}
        for op, result, error in outcomes:
            if error is None:
                op.future.set_result(result)
            else:
                op.future.set_exception(error)

    def _new_samples(self) -> tuple[list[tuple], list[tuple[_Attached, list[int]]]]:
        """Sample rows appended since the last commit, and the cursors to keep once they're written."""
        rows, cursors = [], []
        for session_id, att in self._attached.items():
            moved = []
            for i, name in enumerate(att.names):
                total, data = att.sampler.samples_since(i, att.cursors[i])
                moved.append(total)
                rows.extend(
                    (session_id, name, int(t), _finite(p), _finite(e))
                    for t, p, e in zip(data["t_ns"], data["power_w"], data["energy_j"])
                )
            cursors.append((att, moved))
        return rows, cursors

    def _take_tokens(self) -> list[tuple]:
        rows = []
        while True:
            try:
                rows.append(self._token_rows.get_nowait())
            except queue.Empty:
                return rows

    def _heartbeat(self, db: Database) -> None:
        now = time.monotonic()
        if self._attached and now - self._last_heartbeat >= HEARTBEAT_INTERVAL_S:
            self._last_heartbeat = now
            stamp = utc_now()
            for session_id in self._attached:
                db.conn.execute("UPDATE sessions SET heartbeat_at = ? WHERE id = ?", (stamp, session_id))

    # --- rows --------------------------------------------------------------------------

    def _hash_model_later(self, path: str) -> None:
        """sha256 of a many-GB file takes seconds: compute it aside, then record it."""

        def work() -> None:
            try:
                stat = os.stat(path)
                digest = file_sha256(path)
            except OSError:
                return
            sql = "UPDATE models SET sha256 = ? WHERE path = ? AND size_bytes = ? AND mtime_ns = ?"
            args = (digest, path, stat.st_size, stat.st_mtime_ns)
            try:
                self._submit(lambda db: db.conn.execute(sql, args))
            except RuntimeError:  # the writer closed meanwhile: next session hashes again
                pass

        threading.Thread(target=work, name="tpw-model-hash", daemon=True).start()


def open_recorder(path=None) -> tuple[SessionWriter, Path]:
    """The one way to start recording, for the CLI and the window alike: check and open the
    database (ours, not newer, writable), mark sessions whose process died, start the writer."""
    from .store import Store

    with Store(path) as store:
        store.recover_interrupted()
        resolved = store.path
    return SessionWriter(resolved), resolved


def _finite(value: float) -> float | None:
    return None if value != value else float(value)  # NaN -> NULL
