"""The run controller's states and what moves between them, as one table (``RunController`` obeys it).

A command the current state doesn't allow is refused rather than queued; a
job that ends, or the process's news, moves the state along.
"""

from __future__ import annotations

from typing import Literal

State = Literal["starting", "ready", "loading", "idle", "running", "stopping", "quantizing", "dead"]
# What moves the state: a command sent ("load", "run", "stop" ...), a job that ended, the process's news.
Event = Literal[
    "started",
    "load",
    "loaded",
    "unloaded",
    "run",
    "stop",
    "ran",
    "quantize",
    "quantized",
    "sweep_ran",
    "died",
    "restart",
    "cancel_load",
]
ANY: tuple[State, ...] = ("starting", "ready", "loading", "idle", "running", "stopping", "quantizing", "dead")
AT_REST: tuple[State, ...] = ("ready", "idle")
# (state, event) -> the state it leads to. "ran"/"quantized" go back to rest: idle with a model, ready without.
TRANSITIONS: dict[tuple[State, Event], State | Literal["at rest"]] = {
    **{("starting", "started"): "ready"},
    **{(s, "load"): "loading" for s in ("starting", *AT_REST)},  # a load sent at start waits in the pipe
    **{("loading", "loaded"): "idle", ("loading", "unloaded"): "at rest"},
    **{("idle", "run"): "running"},
    **{("ready", "run"): "running"},  # a sweep or a server needs no model loaded
    **{("running", "stop"): "stopping"},
    **{(s, "ran"): "at rest" for s in ("running", "stopping")},
    **{(s, "sweep_ran"): "loading" for s in ("running", "stopping")},  # the process loads the window's model again
    **{(s, "quantize"): "quantizing" for s in AT_REST},
    **{("quantizing", "quantized"): "at rest"},
    **{(s, "died"): "dead" for s in ANY},
    **{("dead", "restart"): "starting"},
    **{("loading", "cancel_load"): "starting"},
}
