"""The session database schema, as sqlite-utils migrations.

Never ALTER a table anywhere else: add a migration at the end of this file,
and a database of any earlier version is brought up to date on open.
"""

from __future__ import annotations

import json

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from ..record import fields
from ..record.calls import CallRow
from ..record.results import ResultRow, TestSummary

migrations = Migrations("tpw")


@migrations()
def m001_core_tables(db: Database) -> None:
    db["machines"].create(
        {
            "id": int,
            "fingerprint": str,  # hash of the facts below: one row per distinct machine
            "hostname": str,
            "cpu": str,
            "cpu_logical": int,
            "cpu_physical": int,
            "ram_gib": float,
            "os": str,
            "python": str,
            "gpus": str,  # JSON: [{name, uuid, driver, power_limit_w, ...}]
        },
        pk="id",
    )
    db["machines"].create_index(["fingerprint"], unique=True)
    db["models"].create(
        {
            "id": int,
            "path": str,
            "file_name": str,
            "size_bytes": int,
            "mtime_ns": int,
            "sha256": str,
            "architecture": str,
            "name": str,
            "n_params": int,
            "quantization": str,
            "n_layers": int,
            "n_ctx_train": int,
        },
        pk="id",
    )
    db["models"].create_index(["path", "size_bytes", "mtime_ns"], unique=True)
    db["sessions"].create(
        {
            "id": int,
            "started_at": str,  # ISO 8601, UTC
            "ended_at": str,
            "status": str,
            "tool_version": str,
            "hostname": str,
            "pid": int,
            "heartbeat_at": str,  # the writer touches this every second while running
            "t0_ns": int,  # monotonic clock at start: samples and tokens are relative to it
            "machine_id": int,
            "model_id": int,
            "llama_cpp_version": str,
            "gpu_offload": int,
            "settings": str,  # JSON: engine settings as loaded
            "options": str,  # JSON: repetitions, idle seconds, price...
            "tests": str,  # JSON list of test names
            "workload": str,  # JSON: the workload or prompt that ran
            "method": str,  # weakest power method among the sources
            "idle_power_w": float,
            "idle_seconds": float,
            "idle_method": str,
            "idle_confident": int,
            "price_per_kwh": float,
            "currency": str,
            "sampler": str,  # JSON: achieved rate, gaps, errors
            "summary": str,  # JSON: per test and phase, mean and sd
            "warnings": str,  # JSON list
            "error": str,
        },
        pk="id",
        foreign_keys=[("machine_id", "machines", "id"), ("model_id", "models", "id")],
        not_null={"started_at", "status"},
    )
    db["session_sources"].create(
        {"session_id": int, "name": str, "method": str, "measures": str, "info": str},
        pk=("session_id", "name"),
        foreign_keys=[("session_id", "sessions", "id")],
    )
    db["results"].create(
        {
            "id": int,
            "session_id": int,
            "test": str,
            "repetition": int,
            "phase": str,  # pp | tg | total
            "tokens": int,
            "seconds": float,
            "joules": float,
            "joules_above_idle": float,
            "average_w": float,
            "peak_w": float,
            "tokens_per_s": float,
            "tokens_per_j": float,
            "j_per_token": float,
            "wh_per_1k_tokens": float,
            "cost_per_1m_tokens": float,
            "tokens_per_j_above_idle": float,
            "j_per_token_above_idle": float,
            "method": str,
            "confident": int,
        },
        pk="id",
        foreign_keys=[("session_id", "sessions", "id")],
    )
    db["calls"].create(
        {
            "session_id": int,
            "test": str,
            "repetition": int,
            "call": int,
            "t_start_ns": int,
            "t_end_ns": int,
            "prompt_tokens": int,
            "generated_tokens": int,
            "stop_reason": str,
            "prompt_text": str,  # NULL when the user turned text storage off
            "output_text": str,
            "perf": str,  # JSON: llama.cpp's own counters
        },
        pk=("session_id", "test", "repetition", "call"),
        foreign_keys=[("session_id", "sessions", "id")],
    )
    db["samples"].create(
        {"session_id": int, "source": str, "t_ns": int, "power_w": float, "energy_j": float},
        foreign_keys=[("session_id", "sessions", "id")],
    )
    db["tokens"].create(
        {
            "session_id": int,
            "test": str,
            "repetition": int,
            "call": int,
            "idx": int,
            "t_ns": int,
            "token_id": int,
            "text": str,
        },
        foreign_keys=[("session_id", "sessions", "id")],
    )


@migrations()
def m002_query_indexes(db: Database) -> None:
    """What the session list filters on and how samples are loaded for display."""
    db["samples"].create_index(["session_id", "source", "t_ns"])
    db["tokens"].create_index(["session_id", "t_ns"])
    db["results"].create_index(["session_id"])
    db["sessions"].create_index(["started_at"])
    db["sessions"].create_index(["status"])
    db["models"].create_index(["quantization"])


@migrations()
def m003_result_windows(db: Database) -> None:
    """Where each result's window lies on the session clock, to line it up with the samples."""
    db["results"].add_column("t_start_ns", int)
    db["results"].add_column("t_end_ns", int)


# Summary keys that held a mean of per-repetition ratios before m004; from
# then on they are pooled (total tokens over total joules) under new names.
_OLD_MEAN_KEYS = ("tokens_per_j", "j_per_token", "average_w", "tokens_per_j_above_idle")


@migrations()
def m004_unknown_figures_and_error_bounds(db: Database) -> None:
    """Every figure that can be unknown says why; windows carry their error bound; idle its settle."""
    db["results"].add_column("joules_error", float)
    db["results"].add_column("low_confidence", str)
    db["results"].add_column("unknown", str)  # JSON: {figure: why it is unknown}
    db["sessions"].add_column("idle_error_w", float)
    db["sessions"].add_column("idle_settle_s", float)
    db["sessions"].add_column("idle_reason", str)
    db["sessions"].add_column("cooldowns", str)  # JSON: power after each cool-down vs idle
    for row_id, summary in db.execute("SELECT id, summary FROM sessions WHERE summary IS NOT NULL").fetchall():
        rows = json.loads(summary)
        for row in rows or []:
            if row.get("pooled"):
                continue
            for key in _OLD_MEAN_KEYS:
                if f"{key}_mean" in row:
                    row[key] = row.pop(f"{key}_mean")
            row["pooled"] = False  # these were means of per-repetition ratios
        db.execute("UPDATE sessions SET summary = ? WHERE id = ?", [json.dumps(rows), row_id])


@migrations()
def m005_sweeps(db: Database) -> None:
    """A sweep is one plan run as many sessions: each variant (a model, a setting, a power limit) once per round."""
    db["sweeps"].create(
        {
            "id": int,
            "started_at": str,
            "ended_at": str,
            "status": str,  # running | completed | cancelled | failed | interrupted
            "kind": str,  # models | threads | batch | ngl | flash_attn | power_limit, or a product of them
            "plan": str,  # JSON: variants, tests, options, rounds, the command that reproduces it
            "settles": str,  # JSON: per run, how long power took to come back near idle
            "error": str,
        },
        pk="id",
        not_null={"started_at", "status"},
    )
    db["sessions"].add_column("sweep_id", int)
    db["sessions"].add_column("sweep_variant", str)
    db["sessions"].add_column("sweep_round", int)
    db["sessions"].add_column("power_limit_w", float)
    db["sessions"].create_index(["sweep_id"])


# The tables whose columns are a record's field list (``record.fields``), keyed by the session.
RECORD_TABLES = {"results": ResultRow, "summaries": TestSummary, "calls": CallRow}


def _legacy_kind(test: str, server: bool = False) -> str:
    """What a test was, for rows stored before its kind was: the last place a name is read for it."""
    if server or "@c" in test:
        return "server"
    return test[:2] if test[:2] in ("pp", "tg") and test[2:].isdigit() else "workload"


def _legacy_summary(row: dict) -> dict:
    """A summary as m001-m005 kept it in ``sessions.summary`` (JSON), as a row of ``summaries``."""
    latency = row.get("latency") or {}
    total = row.get("total_tokens", row.get("tokens"))
    seconds = row.get("seconds")
    out = {
        **row,
        **latency,
        "kind": _legacy_kind(row["test"], "concurrency" in row),
        "tokens_per_repetition": row.get("tokens"),
        "tokens": total,
        "tokens_per_s": total / seconds if total and seconds else None,
        "unknown": json.dumps(row.get("unknown") or {}),
    }
    if "concurrency" in row:
        out.setdefault("inter_token_basis", "token")
    return {c: out.get(c) for c in fields.column_names(TestSummary)}


@migrations()
def m006_typed_records(db: Database) -> None:
    """Every record's table has its field list's columns: the test kind is stored (no name is parsed
    for it again), summaries are rows, a server's target and the load time leave the engine settings."""
    add_record_columns(db)
    for row_id, test in db.execute("SELECT id, test FROM results").fetchall():
        db.execute("UPDATE results SET kind = ? WHERE id = ?", [_legacy_kind(test), row_id])
    for name in ("load_ms", "server", "system_info"):
        db["sessions"].add_column(name, float if name == "load_ms" else str)
    db["summaries"].create(
        {"session_id": int, "position": int, **{c.name: c.sql_type for c in fields.columns(TestSummary)}},
        pk=("session_id", "position"),
        foreign_keys=[("session_id", "sessions", "id")],
    )
    old = db.execute("SELECT id, settings, tests, summary FROM sessions").fetchall()
    for session_id, settings_json, tests_json, summary_json in old:
        settings = json.loads(settings_json) if settings_json else {}
        server, load_ms = None, settings.pop("load_ms", None)
        if "endpoint" in settings:
            server = {
                "url": settings["endpoint"],
                "api_model": settings.get("api_model", "?"),
                "concurrency": settings.get("concurrency", []),
                "repetitions_per_client": settings.get("repetitions_per_client", 1),
            }
            settings = None
        summaries = [_legacy_summary(r) for r in json.loads(summary_json or "null") or []]
        tests = [
            {"name": t, "kind": _legacy_kind(t, server is not None)} if isinstance(t, str) else t
            for t in json.loads(tests_json or "[]")
        ]
        db.execute(
            "UPDATE sessions SET settings = ?, server = ?, load_ms = ?, tests = ? WHERE id = ?",
            [
                json.dumps(settings) if settings is not None else None,
                json.dumps(server) if server else None,
                load_ms,
                json.dumps(tests),
                session_id,
            ],
        )
        db["summaries"].insert_all({"session_id": session_id, "position": i, **r} for i, r in enumerate(summaries))
    db["sessions"].transform(drop={"summary"})


def add_record_columns(db: Database) -> None:
    """Add to each record table any column its record's field list has and the table lacks."""
    for table, record in RECORD_TABLES.items():
        if not db[table].exists():
            continue
        have = set(db[table].columns_dict)
        for column in fields.columns(record):
            if column.name not in have:
                db[table].add_column(column.name, column.sql_type)


def missing_record_columns(db: Database) -> bool:
    return any(
        db[t].exists() and not set(fields.column_names(r)) <= set(db[t].columns_dict) for t, r in RECORD_TABLES.items()
    )


def apply(db: Database) -> None:
    migrations.apply(db)
    add_record_columns(db)


def migration_names() -> list[str]:
    """Every migration this version of tpw knows, in order."""
    return [m.name for m in migrations._migrations]


def schema_version(db: Database) -> list[str]:
    return [m.name for m in migrations.applied(db)]
