"""The rows a session writes: the session itself, its machine, its model, its idle baseline, its sweep."""

from __future__ import annotations

import hashlib
import os
import platform
from typing import Any

from sqlite_utils import Database

from .. import serialize
from .db import utc_now


def as_json(value: Any) -> str:
    return serialize.dumps(value, sort_keys=True)


def insert_session(db: Database, meta: dict[str, Any], t0_ns: int) -> tuple[int, str | None]:
    """The session row and its sources; also the model's sha256 if already known."""
    machine_id = _machine_id(db, meta)
    model_id = _model_id(db, meta["model"])
    options = meta["options"]
    session_id = (
        db["sessions"]
        .insert(
            {
                "started_at": utc_now(),
                "heartbeat_at": utc_now(),
                "status": "running",
                "tool_version": meta["tool_version"],
                "hostname": platform.node(),
                "pid": os.getpid(),
                "t0_ns": t0_ns,
                "machine_id": machine_id,
                "model_id": model_id,
                "llama_cpp_version": meta["build"]["llama_cpp_python_version"],
                "gpu_offload": int(meta["build"]["gpu_offload_supported"]),
                "settings": as_json(meta["settings"]),
                "options": as_json(options),
                "tests": as_json(meta["tests"]),
                "workload": as_json(meta.get("workload")) if options.get("store_text", True) else None,
                "method": meta["method"],
                "price_per_kwh": options.get("price_per_kwh"),
                "currency": options.get("currency"),
                "warnings": as_json(meta.get("warnings", [])),
                **sweep_columns(meta.get("sweep")),
            }
        )
        .last_pk
    )
    db["session_sources"].insert_all(
        [
            {
                "session_id": session_id,
                "name": s["name"],
                "method": s["method"],
                "measures": s["measures"],
                "info": as_json({k: v for k, v in s.items() if k not in ("name", "method", "measures")}),
            }
            for s in meta["power_sources"]
        ]
    )
    return session_id, db["models"].get(model_id)["sha256"]


def sweep_columns(sweep: dict[str, Any] | None) -> dict[str, Any]:
    """Which sweep, variant and round a session belongs to, when it does."""
    if not sweep:
        return {}
    return {
        "sweep_id": sweep["id"],
        "sweep_variant": sweep["variant"],
        "sweep_round": sweep["round"],
        "power_limit_w": sweep.get("power_limit_w"),
    }


def idle_columns(summary: dict[str, Any]) -> dict[str, Any]:
    idle = summary.get("idle") or {}
    return {
        "idle_power_w": idle.get("power_w"),
        "idle_seconds": idle.get("seconds"),
        "idle_method": idle.get("method"),
        "idle_confident": idle.get("confident"),
        "idle_error_w": idle.get("error_w"),
        "idle_settle_s": idle.get("settle_s"),
        "idle_reason": summary.get("idle_reason"),
    }


def _machine_id(db: Database, meta: dict[str, Any]) -> int:
    machine = meta["machine"]
    gpus = [
        {k: s.get(k) for k in ("gpu_name", "gpu_uuid", "driver", "power_limit_w")}
        for s in meta["power_sources"]
        if s["name"].startswith("nvml:")
    ]
    facts = {**machine, "gpus": as_json(gpus)}
    fingerprint = hashlib.sha256(as_json(facts).encode()).hexdigest()[:32]
    return db["machines"].lookup({"fingerprint": fingerprint}, facts)


def _model_id(db: Database, model: dict[str, Any]) -> int:
    if model.get("endpoint"):  # a server's model: its URL and name, no file
        keys = {"path": model["path"], "size_bytes": 0, "mtime_ns": 0}
    else:
        stat = os.stat(model["path"])
        keys = {"path": model["path"], "size_bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    extra = {
        k: model.get(k)
        for k in ("file_name", "architecture", "name", "n_params", "quantization", "n_layers", "n_ctx_train")
    }
    return db["models"].lookup(keys, extra)
