"""Reading the session database: list, load, compare, export, delete, recover.

The library the CLI and the GUI share; each thread opens its own ``Store``.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import platform
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from .. import serialize
from ..errors import TpwError
from .db import DatabaseReadOnly, connect

HEARTBEAT_STALE_S = 30.0

_JSON_COLUMNS = (
    "settings",
    "options",
    "tests",
    "workload",
    "sampler",
    "summary",
    "warnings",
    "info",
    "gpus",
    "perf",
    "unknown",
    "cooldowns",
    "plan",
    "settles",
)
RESULT_COLUMNS = (
    "test", "repetition", "phase", "t_start_ns", "t_end_ns", "tokens", "seconds", "joules", "joules_error",
    "joules_above_idle", "average_w", "peak_w", "tokens_per_s", "tokens_per_j", "j_per_token", "wh_per_1k_tokens",
    "cost_per_1m_tokens", "tokens_per_j_above_idle", "j_per_token_above_idle", "method", "confident",
    "low_confidence", "unknown",
)  # fmt: skip
SAMPLE_COLUMNS = ("source", "method", "t_ns", "t_s", "power_w", "energy_j")


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    for key in _JSON_COLUMNS:
        if isinstance(row.get(key), str):
            row[key] = json.loads(row[key])
    return row


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
    ) -> list[dict[str, Any]]:
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
            "SELECT s.id, s.started_at, s.ended_at, s.status, s.method, s.tests, s.idle_power_w, s.summary, "
            "s.gpu_offload, s.settings, s.sweep_id, s.sweep_variant, s.sweep_round, s.power_limit_w, "
            "m.file_name AS model, m.quantization, m.n_params, m.size_bytes "
            "FROM sessions s LEFT JOIN models m ON m.id = s.model_id"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY s.started_at DESC, s.id DESC"
            + (" LIMIT ?" if limit else "")
        )
        if limit:
            args.append(limit)
        return [_decode(dict(r)) for r in self.db.query(sql, args)]

    def session(self, session_id: int) -> dict[str, Any]:
        """A session with its model, machine and power sources."""
        row = next(
            self.db.query(
                "SELECT s.*, m.path AS model_path, m.file_name AS model, m.sha256 AS model_sha256, "
                "m.architecture, m.name AS model_name, m.n_params, m.quantization, m.size_bytes, "
                "h.cpu, h.ram_gib, h.os, h.gpus FROM sessions s "
                "LEFT JOIN models m ON m.id = s.model_id LEFT JOIN machines h ON h.id = s.machine_id WHERE s.id = ?",
                [session_id],
            ),
            None,
        )
        if row is None:
            raise TpwError(f"no session {session_id} in {self.path}")
        session = _decode(dict(row))
        session["sources"] = self.sources(session_id)
        return session

    def sources(self, session_id: int) -> list[dict[str, Any]]:
        return [
            _decode(dict(r))
            for r in self.db.query(
                "SELECT name, method, measures, info FROM session_sources WHERE session_id = ?", [session_id]
            )
        ]

    def results(self, session_id: int) -> list[dict[str, Any]]:
        return [
            _decode(dict(r))
            for r in self.db.query("SELECT * FROM results WHERE session_id = ? ORDER BY id", [session_id])
        ]

    def calls(self, session_id: int) -> list[dict[str, Any]]:
        return [
            _decode(dict(r))
            for r in self.db.query(
                "SELECT * FROM calls WHERE session_id = ? ORDER BY test, repetition, call", [session_id]
            )
        ]

    def tokens(self, session_id: int) -> list[dict[str, Any]]:
        return [
            dict(r)
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

    def summary_rows(self, session_ids: list[int] | None = None, **filters) -> list[dict[str, Any]]:
        """One row per session, test and phase: the figures to compare runs by."""
        ids = session_ids if session_ids is not None else [s["id"] for s in self.list_sessions(limit=None, **filters)]
        rows = []
        for session_id in ids:
            session = self.session(session_id)
            for s in session.get("summary") or []:
                rows.append(
                    {
                        "session_id": session_id,
                        "started_at": session["started_at"],
                        "status": session["status"],
                        "model": session["model"],
                        "quantization": session["quantization"],
                        "idle_power_w": session["idle_power_w"],
                        **s,
                    }
                )
        return rows

    def sweeps(self, limit: int | None = 50) -> list[dict[str, Any]]:
        """Sweeps, newest first, with how many sessions each holds."""
        rows = self.db.query(
            "SELECT w.*, (SELECT count(*) FROM sessions s WHERE s.sweep_id = w.id) AS n_sessions FROM sweeps w "
            "ORDER BY w.started_at DESC, w.id DESC" + (" LIMIT ?" if limit else ""),
            [limit] if limit else [],
        )
        return [_decode(dict(r)) for r in rows]

    def sweep(self, sweep_id: int) -> dict[str, Any]:
        row = next(self.db.query("SELECT * FROM sweeps WHERE id = ?", [sweep_id]), None)
        if row is None:
            raise TpwError(f"no sweep {sweep_id} in {self.path}")
        sweep = _decode(dict(row))
        sweep["session_ids"] = [
            r["id"]
            for r in self.db.query("SELECT id FROM sessions WHERE sweep_id = ? ORDER BY sweep_round, id", [sweep_id])
        ]
        return sweep

    def delete(self, session_id: int) -> None:
        self.session(session_id)  # raises for an unknown id
        with self.db.atomic():
            for table in ("samples", "tokens", "calls", "results", "session_sources"):
                self.db.execute(f"DELETE FROM {table} WHERE session_id = ?", [session_id])
            self.db.execute("DELETE FROM sessions WHERE id = ?", [session_id])

    # --- export ---------------------------------------------------------------------------

    def _raw_samples(self, session_id: int, t0_ns: int):
        methods = {s["name"]: s["method"] for s in self.sources(session_id)}
        for source, t_ns, power_w, energy_j in self.db.execute(
            "SELECT source, t_ns, power_w, energy_j FROM samples WHERE session_id = ? ORDER BY t_ns, source",
            [session_id],
        ):
            yield {
                "source": source,
                "method": methods.get(source),
                "t_ns": t_ns,
                "t_s": (t_ns - t0_ns) / 1e9,
                "power_w": power_w,
                "energy_j": energy_j,
            }

    def export(self, session_id: int, fmt: str, out: TextIO) -> None:
        """Every sample and result row of a session, each with its method.

        JSON: one document (session, sources, results, calls, samples, tokens).
        CSV: one table in long form; a ``record`` column says whether a row is
        a ``result`` or a ``sample``, and only that kind's columns are filled.
        """
        session = self.session(session_id)
        if fmt == "json":
            doc = {
                "session": {k: v for k, v in session.items() if k != "sources"},
                "sources": session["sources"],
                "results": self.results(session_id),
                "calls": self.calls(session_id),
                "samples": list(self._raw_samples(session_id, session["t0_ns"])),
                "tokens": self.tokens(session_id),
            }
            serialize.dump(doc, out, indent=1)
            out.write("\n")
        elif fmt == "csv":
            columns = ("record", "session_id", *RESULT_COLUMNS, *(c for c in SAMPLE_COLUMNS if c != "method"))
            writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            for row in self.results(session_id):
                writer.writerow({"record": "result", **row, "unknown": serialize.dumps(row["unknown"] or {})})
            for row in self._raw_samples(session_id, session["t0_ns"]):
                writer.writerow({"record": "sample", "session_id": session_id, **row})
        else:
            raise TpwError(f"unknown export format {fmt!r} (choose csv or json)")
