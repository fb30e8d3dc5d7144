"""Reading the session database: list, load, compare, export, delete, recover.

The library the CLI and the GUI share; each thread opens its own ``Store``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from ..errors import TpwError
from ..record import fields
from ..record.calls import CallRow, SampleRow, StoredToken
from ..record.results import ResultRow, TestSummary
from ..record.stored import Settle, StoredSession, StoredSweep
from ..record.vocab import STATUSES, checked
from ..serialize import SafeCsvWriter, dump
from .db import DatabaseReadOnly, connect
from .rows import stored_session

HEARTBEAT_STALE_S = 30.0

# A session row joined with its model and machine: everything ``rows.stored_session`` reads.
SESSION_SQL = (
    "SELECT s.*, m.path AS model_path, m.file_name AS model, m.sha256 AS model_sha256, m.architecture, "
    "m.name AS model_name, m.n_params, m.n_layers, m.n_ctx_train, m.quantization, m.size_bytes, "
    "h.cpu, h.cpu_logical, h.cpu_physical, h.ram_gib, h.os, h.python "
    "FROM sessions s LEFT JOIN models m ON m.id = s.model_id LEFT JOIN machines h ON h.id = s.machine_id"
)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Store:
    """The query API; ``readonly`` opens an existing database without ever writing to it."""

    def __init__(self, path=None, *, readonly: bool = False):
        self.db = connect(path, readonly=readonly)
        self.readonly = readonly
        self.path = Path(self.db.conn.execute("PRAGMA database_list").fetchone()[2])

    @classmethod
    def for_reading(cls, path=None) -> Store:
        """Open to read: migrated and with dead sessions marked when writable, else read-only as it is."""
        try:
            store = cls(path)
        except DatabaseReadOnly:
            return cls(path, readonly=True)
        store.recover_interrupted()
        return store

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- recovery --------------------------------------------------------------------

    def recover_interrupted(self, stale_after_s: float = HEARTBEAT_STALE_S) -> list[int]:
        """Mark sessions whose process died as ``interrupted``; their data stays.

        A session is dead when its process is gone (same host) or its writer
        hasn't touched the heartbeat for ``stale_after_s`` (any host).
        """
        host = platform.node()
        cutoff = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=stale_after_s)).isoformat()
        dead = []
        for row in self.db.query("SELECT id, hostname, pid, heartbeat_at FROM sessions WHERE status = 'running'"):
            gone = row["hostname"] == host and row["pid"] is not None and not _pid_alive(row["pid"])
            if gone or (row["heartbeat_at"] or "") < cutoff:
                dead.append(row)
        with self.db.atomic():
            for row in dead:
                self.db.execute(
                    "UPDATE sessions SET status = 'interrupted', ended_at = heartbeat_at, "
                    "error = 'the process ended before the session finished' WHERE id = ? AND status = 'running'",
                    [row["id"]],
                )
        return [row["id"] for row in dead]

    # --- queries ------------------------------------------------------------------------

    def list_sessions(
        self,
        *,
        model: str | None = None,
        quantization: str | None = None,
        status: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = 100,
    ) -> list[StoredSession]:
        """Newest first. ``model`` matches the file name or GGUF name (substring);
        ``since``/``until`` are ISO dates or timestamps (UTC)."""
        filters = [  # (condition, its arguments when the filter is given)
            ("(m.file_name LIKE ? OR m.name LIKE ?)", model and [f"%{model}%"] * 2),
            ("m.quantization = ? COLLATE NOCASE", quantization and [quantization]),
            ("s.status = ?", status and [status]),
            ("s.started_at >= ?", since and [since]),
            ("s.started_at < ?", until and [until]),
        ]
        where = [condition for condition, values in filters if values]
        args = [value for _, values in filters if values for value in values]
        sql = (
            SESSION_SQL
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY s.started_at DESC, s.id DESC"
            + (" LIMIT ?" if limit else "")
        )
        if limit:
            args.append(limit)
        return self._sessions(list(self.db.query(sql, args)))

    def session(self, session_id: int) -> StoredSession:
        """A session with its model, machine, power sources and summaries."""
        rows = list(self.db.query(SESSION_SQL + " WHERE s.id = ?", [session_id]))
        if not rows:
            raise TpwError(f"no session {session_id} in {self.path}")
        return self._sessions(rows)[0]

    def _sessions(self, rows: list[dict[str, Any]]) -> list[StoredSession]:
        """Session rows as records, their sources and summaries fetched in one query each."""
        ids = [r["id"] for r in rows]
        marks = ",".join("?" * len(ids))
        sources: dict[int, list] = {i: [] for i in ids}
        summaries: dict[int, list] = {i: [] for i in ids}
        if ids:
            for r in self.db.query(f"SELECT * FROM session_sources WHERE session_id IN ({marks}) ORDER BY rowid", ids):
                sources[r["session_id"]].append(r)
            for r in self.db.query(
                f"SELECT * FROM summaries WHERE session_id IN ({marks}) ORDER BY session_id, position", ids
            ):
                summaries[r["session_id"]].append(fields.from_row(TestSummary, r))
        try:
            return [stored_session(r, sources[r["id"]], summaries[r["id"]]) for r in rows]
        except (ValueError, KeyError, TypeError) as exc:
            raise TpwError(f"{self.path}: a session row is not what tpw wrote ({exc})") from None

    def results(self, session_id: int) -> list[ResultRow]:
        return [
            fields.from_row(ResultRow, r)
            for r in self.db.query("SELECT * FROM results WHERE session_id = ? ORDER BY id", [session_id])
        ]

    def calls(self, session_id: int) -> list[CallRow]:
        return [
            fields.from_row(CallRow, r)
            for r in self.db.query(
                "SELECT * FROM calls WHERE session_id = ? ORDER BY test, repetition, call", [session_id]
            )
        ]

    def tokens(self, session_id: int) -> list[StoredToken]:
        return [
            fields.from_row(StoredToken, r)
            for r in self.db.query(
                "SELECT test, repetition, call, idx, t_ns, token_id, text FROM tokens "
                "WHERE session_id = ? ORDER BY t_ns",
                [session_id],
            )
        ]

    def token_times_ns(self, session_id: int) -> np.ndarray:
        """When each generated token was ready, in order: what a chart of a stored run needs."""
        rows = self.db.execute("SELECT t_ns FROM tokens WHERE session_id = ? ORDER BY t_ns", [session_id]).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def sample_count(self, session_id: int) -> int:
        return self.db.execute("SELECT count(*) FROM samples WHERE session_id = ?", [session_id]).fetchone()[0]

    def samples(self, session_id: int, *, max_points: int | None = None) -> dict[str, dict[str, np.ndarray]]:
        """Power samples per source, times in seconds from the session start.

        With ``max_points``, each source is cut into that many time buckets and
        each bucket gives its mean, min and max power (the min/max envelope is
        what a chart needs so peaks don't vanish) and its last energy reading.
        """
        t0 = self.db.execute("SELECT t0_ns FROM sessions WHERE id = ?", [session_id]).fetchone()
        if t0 is None:
            raise TpwError(f"no session {session_id} in {self.path}")
        t0_ns = t0[0]
        out: dict[str, dict[str, np.ndarray]] = {}
        for (source,) in self.db.execute(  # the declared sources: no scan of an hour of samples
            "SELECT name FROM session_sources WHERE session_id = ? ORDER BY name", [session_id]
        ).fetchall():
            if max_points:
                # min/max come straight off the index; no count(*) over an hour of rows:
                # a short session's buckets each hold at most one sample anyway.
                first, last = self.db.execute(
                    "SELECT min(t_ns), max(t_ns) FROM samples WHERE session_id = ? AND source = ?",
                    [session_id, source],
                ).fetchone()
                if first is None:
                    continue
                bucket_ns = max(1, -(-(last - first + 1) // max_points))
                rows = self.db.execute(
                    "SELECT min(t_ns), avg(power_w), min(power_w), max(power_w), max(energy_j) FROM samples "
                    "WHERE session_id = ? AND source = ? GROUP BY (t_ns - ?) / ? ORDER BY 1",
                    [session_id, source, first, bucket_ns],
                ).fetchall()
            else:
                rows = self.db.execute(
                    "SELECT t_ns, power_w, power_w, power_w, energy_j FROM samples "
                    "WHERE session_id = ? AND source = ? ORDER BY t_ns",
                    [session_id, source],
                ).fetchall()
            a = np.array(rows, dtype=np.float64).reshape(-1, 5)  # NULL -> nan
            out[source] = {
                "t_s": (a[:, 0] - t0_ns) / 1e9,
                "power_w": a[:, 1],
                "power_min_w": a[:, 2],
                "power_max_w": a[:, 3],
                "energy_j": a[:, 4],
            }
        return out

    def sweeps(self, limit: int | None = 50) -> list[StoredSweep]:
        """Sweeps, newest first."""
        rows = self.db.query(
            "SELECT * FROM sweeps ORDER BY started_at DESC, id DESC" + (" LIMIT ?" if limit else ""),
            [limit] if limit else [],
        )
        return [self._sweep(dict(r)) for r in rows]

    def sweep(self, sweep_id: int) -> StoredSweep:
        row = next(self.db.query("SELECT * FROM sweeps WHERE id = ?", [sweep_id]), None)
        if row is None:
            raise TpwError(f"no sweep {sweep_id} in {self.path}")
        return self._sweep(dict(row))

    def _sweep(self, row: dict[str, Any]) -> StoredSweep:
        plan = json.loads(row["plan"] or "{}")
        ids = tuple(
            r[0]
            for r in self.db.execute(
                "SELECT id FROM sessions WHERE sweep_id = ? ORDER BY sweep_round, id", [row["id"]]
            ).fetchall()
        )
        return StoredSweep(
            id=row["id"],
            started_at=row["started_at"],
            ended_at=row["ended_at"],
            status=checked(row["status"], STATUSES, "status"),
            kind=row["kind"] or "?",
            variants=tuple(v["label"] for v in plan.get("variants", [])),
            command=plan.get("command", ""),
            settles=tuple(fields.from_row(Settle, r) for r in json.loads(row["settles"] or "[]")),
            error=row["error"],
            session_ids=ids,
        )

    def delete(self, session_id: int) -> None:
        self.session(session_id)  # raises for an unknown id
        with self.db.atomic():
            for table in ("samples", "tokens", "calls", "results", "summaries", "session_sources"):
                self.db.execute(f"DELETE FROM {table} WHERE session_id = ?", [session_id])
            self.db.execute("DELETE FROM sessions WHERE id = ?", [session_id])

    # --- export ---------------------------------------------------------------------------

    def raw_samples(self, session: StoredSession) -> Iterator[SampleRow]:
        methods = {s.name: s.method for s in session.meta.power_sources}
        for source, t_ns, power_w, energy_j in self.db.execute(
            "SELECT source, t_ns, power_w, energy_j FROM samples WHERE session_id = ? ORDER BY t_ns, source",
            [session.id],
        ):
            yield SampleRow(source, methods.get(source, "?"), t_ns, (t_ns - session.t0_ns) / 1e9, power_w, energy_j)

    def export(self, session_id: int, fmt: str, out: TextIO) -> None:
        """Every sample and result row of a session, each with its method; columns from the records' field lists.

        JSON: one document (session, results, calls, samples, tokens).
        CSV: one table in long form; a ``record`` column says whether a row is
        a ``result`` or a ``sample``, and only that kind's columns are filled.
        Every text cell is spreadsheet-safe (a peer's model name can't run as a formula).
        """
        session = self.session(session_id)
        if fmt == "json":
            doc = {
                "session": session,
                "summaries": fields.rows(session.outcome.summaries, json_text=False),
                "results": fields.rows(self.results(session_id), json_text=False),
                "calls": fields.rows(self.calls(session_id), json_text=False),
                "samples": fields.rows(self.raw_samples(session), json_text=False),
                "tokens": fields.rows(self.tokens(session_id), json_text=False),
            }
            dump(doc, out, indent=1)
            out.write("\n")
        elif fmt == "csv":
            result_columns = fields.column_names(ResultRow)
            sample_columns = [c for c in fields.column_names(SampleRow) if c not in ("method", *result_columns)]
            columns = ["record", "session_id", *result_columns, *sample_columns]
            writer = SafeCsvWriter(out)
            writer.writerow(columns)
            for result in self.results(session_id):
                row = {"record": "result", "session_id": session_id, **fields.to_row(result)}
                writer.writerow([row.get(c) for c in columns])
            for sample in self.raw_samples(session):
                row = {"record": "sample", "session_id": session_id, **fields.to_row(sample)}
                writer.writerow([row.get(c) for c in columns])
        else:
            raise TpwError(f"unknown export format {fmt!r} (choose csv or json)")
