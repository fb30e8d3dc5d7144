"""A session's records as rows, and back: the session, its machine, model, sources, outcome and sweep.

The write side (``insert_session``, ``outcome_columns``) and the read side
(``stored_session``) are each other's inverse, so what a run recorded is
what every view reads back, typed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
from collections.abc import Mapping
from typing import Any

from sqlite_utils import Database

from .. import serialize
from ..metrics import IdleBaseline
from ..record import fields
from ..record.meta import (
    BuildFacts,
    EngineSettings,
    MachineFacts,
    ModelRef,
    RunMeta,
    RunOptions,
    ServerTarget,
    SourceFacts,
    SweepTag,
    TestRef,
)
from ..record.results import CooldownChecked, SamplerStats, TestSummary
from ..record.stored import RunOutcome, StoredSession
from ..record.vocab import STATUSES, checked
from .db import utc_now


def as_json(value: Any) -> str:
    return serialize.dumps(value, sort_keys=True)


def _json(text: str | None) -> Any:
    return json.loads(text) if text else None


def insert_session(db: Database, meta: RunMeta, t0_ns: int) -> tuple[int, str | None]:
    """The session row and its sources; also the model's sha256 if already known."""
    model_id = _model_id(db, meta.model)
    options = meta.options
    sweep = meta.sweep
    session_id = (
        db["sessions"]
        .insert(
            {
                "started_at": utc_now(),
                "heartbeat_at": utc_now(),
                "status": "running",
                "tool_version": meta.tool_version,
                "hostname": platform.node(),
                "pid": os.getpid(),
                "t0_ns": t0_ns,
                "machine_id": _machine_id(db, meta),
                "model_id": model_id,
                "llama_cpp_version": meta.build.llama_cpp_python_version,
                "gpu_offload": int(meta.build.gpu_offload_supported),
                "system_info": meta.build.system_info,
                "settings": as_json(meta.settings) if meta.settings else None,
                "load_ms": meta.load_ms,
                "server": as_json(meta.server) if meta.server else None,
                "options": as_json(options),
                "tests": as_json(meta.tests),
                "workload": as_json(meta.workload) if options.store_text else None,
                "method": meta.method,
                "price_per_kwh": options.price_per_kwh,
                "currency": options.currency,
                "warnings": as_json(meta.warnings),
                **(
                    {
                        "sweep_id": sweep.id,
                        "sweep_variant": sweep.variant,
                        "sweep_round": sweep.round,
                        "power_limit_w": sweep.power_limit_w,
                    }
                    if sweep
                    else {}
                ),
            }
        )
        .last_pk
    )
    db["session_sources"].insert_all(
        [
            {"session_id": session_id, "name": s.name, "method": s.method, "measures": s.measures, "info": _info(s)}
            for s in meta.power_sources
        ]
    )
    return session_id, db["models"].get(model_id)["sha256"]


def _info(source: SourceFacts) -> str:
    typed = {k: getattr(source, k) for k in ("gpu_name", "gpu_uuid", "driver", "power_limit_w")}
    return as_json({**source.details, **{k: v for k, v in typed.items() if v is not None}})


def outcome_columns(outcome: RunOutcome) -> dict[str, Any]:
    """The session row's columns for its outcome (the summaries go to their own table)."""
    idle = outcome.idle
    return {
        "idle_power_w": idle.power_w if idle else None,
        "idle_seconds": idle.seconds if idle else None,
        "idle_method": idle.method if idle else None,
        "idle_confident": idle.confident if idle else None,
        "idle_error_w": idle.error_w if idle else None,
        "idle_settle_s": idle.settle_s if idle else None,
        "idle_reason": outcome.idle_reason,
        "sampler": as_json(outcome.sampler) if outcome.sampler else None,
        "cooldowns": as_json(outcome.cooldowns),
    }


def summary_rows(session_id: int, summaries: tuple[TestSummary, ...]) -> list[dict[str, Any]]:
    return [{"session_id": session_id, "position": i, **fields.to_row(s)} for i, s in enumerate(summaries)]


def _machine_id(db: Database, meta: RunMeta) -> int:
    gpus = [
        {"gpu_name": s.gpu_name, "gpu_uuid": s.gpu_uuid, "driver": s.driver, "power_limit_w": s.power_limit_w}
        for s in meta.gpus
    ]
    facts = {**dataclasses.asdict(meta.machine), "gpus": as_json(gpus)}
    fingerprint = hashlib.sha256(as_json(facts).encode()).hexdigest()[:32]
    return db["machines"].lookup({"fingerprint": fingerprint}, facts)


def _model_id(db: Database, model: ModelRef) -> int:
    if model.server:  # a server's model: its URL and name, no file
        keys = {"path": model.path, "size_bytes": 0, "mtime_ns": 0}
    else:
        stat = os.stat(model.path)
        keys = {"path": model.path, "size_bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    extra = {
        "file_name": model.file_name,
        "architecture": model.architecture,
        "name": model.name,
        "n_params": model.n_params,
        "quantization": model.quantization,
        "n_layers": model.n_layers,
        "n_ctx_train": model.n_ctx_train,
    }
    return db["models"].lookup(keys, extra)


# --- the read side: a joined session row (see store.SESSION_SQL) back into records ----------------


def _typed(cls: type, value: Any) -> Any:
    return None if value is None else fields.from_row(cls, value) if isinstance(value, Mapping) else value


def stored_session(
    row: Mapping[str, Any], sources: list[Mapping[str, Any]], summaries: list[TestSummary]
) -> StoredSession:
    """A joined session row, its sources' rows and its summaries, as the typed session they were written from."""
    server = _typed(ServerTarget, _json(row["server"]))
    model = ModelRef(
        path=row["model_path"] or "?",
        file_name=row["model"] or "?",
        name=row["model_name"],
        architecture=row["architecture"] or "?",
        quantization=row["quantization"] or "?",
        n_params=row["n_params"],
        n_layers=row["n_layers"],
        n_ctx_train=row["n_ctx_train"],
        size_bytes=row["size_bytes"] or None,
        server=server.url if server else None,
    )
    facts = tuple(SourceFacts.of(s["name"], s["method"], s["measures"] or "", _json(s["info"]) or {}) for s in sources)
    sweep = None
    if row["sweep_id"] is not None:
        sweep = SweepTag(row["sweep_id"], row["sweep_variant"] or "?", row["sweep_round"] or 0, row["power_limit_w"])
    meta = RunMeta(
        tool_version=row["tool_version"] or "?",
        machine=MachineFacts(
            row["hostname"] or "?",
            row["cpu"] or "?",
            row["cpu_logical"],
            row["cpu_physical"],
            row["ram_gib"],
            row["os"] or "?",
            row["python"] or "?",
        ),
        model=model,
        build=BuildFacts(row["llama_cpp_version"] or "?", bool(row["gpu_offload"]), row["system_info"] or ""),
        options=_typed(RunOptions, _json(row["options"])) or RunOptions(),
        tests=tuple(TestRef(t["name"], t["kind"]) for t in _json(row["tests"]) or []),
        power_sources=facts,
        method=row["method"] or "estimated",
        settings=_typed(EngineSettings, _json(row["settings"])),
        load_ms=row["load_ms"],
        server=server,
        warnings=tuple(_json(row["warnings"]) or ()),
        workload=_json(row["workload"]),
        sweep=sweep,
    )
    idle = None
    if row["idle_power_w"] is not None:
        idle = IdleBaseline(
            row["idle_power_w"],
            row["idle_seconds"] or 0.0,
            row["idle_method"] or "estimated",
            bool(row["idle_confident"]),
            row["idle_error_w"],
            row["idle_settle_s"] or 0.0,
        )
    outcome = RunOutcome(
        idle,
        row["idle_reason"],
        tuple(summaries),
        _typed(SamplerStats, _json(row["sampler"])),
        tuple(fields.from_row(CooldownChecked, c) for c in _json(row["cooldowns"]) or []),
    )
    return StoredSession(
        id=row["id"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        status=checked(row["status"], STATUSES, "status"),
        error=row["error"],
        t0_ns=row["t0_ns"],
        meta=meta,
        outcome=outcome,
        model_sha256=row["model_sha256"],
    )
