"""Power sources, their detection, and the background sampler.

``open_sources("auto")`` picks NVML (every GPU), else RAPL, else the
estimate. An explicit spec combines sources: ``nvml:0,rapl``,
``estimate:95`` (TDP in watts), ``estimate-process`` (this process's CPU
time only), ``replay:trace.csv``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import TpwError
from ..peers.urls import redact
from ..record.meta import SourceFacts
from .base import NA, PowerReading, PowerSource, SourceUnavailable, source_facts
from .estimate import DEFAULT_TDP_W, EstimateSource
from .nvml import nvml_sources
from .rapl import DEFAULT_SYSFS_ROOT, rapl_sources
from .replay import PowerTrace, ReplaySource
from .sampler import DEFAULT_RATE_HZ, Sampler

__all__ = [
    "DEFAULT_RATE_HZ",
    "DEFAULT_TDP_W",
    "NA",
    "EstimateSource",
    "PowerEnvironment",
    "PowerReading",
    "PowerSource",
    "PowerTrace",
    "ReplaySource",
    "Sampler",
    "SourceUnavailable",
    "availability",
    "open_sources",
    "source_facts",
]


@dataclass
class PowerEnvironment:
    """Where to look for sensors; tests point these at fakes."""

    clock_ns: Callable[[], int] = time.monotonic_ns
    tdp_w: float = DEFAULT_TDP_W
    rapl_root: Path = DEFAULT_SYSFS_ROOT
    nvml_module: object | None = None  # the pynvml module (or a fake of it)
    replay_speed: float = 1.0
    replay_loop: bool = True
    # What ``auto`` falls back to without a sensor: the whole machine's CPU time (the
    # CLI), or only the measuring process's (the window, whose own painting isn't the model's).
    auto_estimate: str = "estimate"


def _open_one(kind: str, arg: str | None, env: PowerEnvironment) -> list[PowerSource]:
    if kind == "nvml":
        indices = None
        if arg:
            try:
                indices = [int(i) for i in arg.split("+")]
            except ValueError:
                raise TpwError(f"--power nvml:{arg}: expected GPU indices like nvml:0 or nvml:0+1") from None
        return list(nvml_sources(env.clock_ns, indices, env.nvml_module))
    if kind == "rapl":
        return list(rapl_sources(env.clock_ns, env.rapl_root))
    if kind in ("estimate", "estimate-process"):
        try:
            tdp = float(arg) if arg else env.tdp_w
        except ValueError:
            raise TpwError(f"--power {kind}:{arg}: expected a TDP in watts, like {kind}:95") from None
        if tdp <= 0:
            raise TpwError(f"--power {kind}:{arg}: the TDP must be a positive number of watts")
        return [EstimateSource(env.clock_ns, tdp, scope="machine" if kind == "estimate" else "process")]
    if kind == "replay":
        if not arg:
            raise TpwError("--power replay: name the trace file, like replay:trace.csv")
        trace = PowerTrace.load(arg)
        return [ReplaySource(trace, env.clock_ns, speed=env.replay_speed, loop=env.replay_loop)]
    if kind == "prometheus":
        if not arg:
            raise TpwError("--power prometheus: name the server, like prometheus:http://127.0.0.1:9090")
        from .prometheus import PrometheusSource

        return [PrometheusSource(arg, env.clock_ns)]
    raise TpwError(
        f"--power {kind}: unknown source (choose from auto, nvml, rapl, estimate, estimate-process, replay, prometheus)"
    )


def open_sources(spec: str | None = "auto", env: PowerEnvironment | None = None) -> list[PowerSource]:
    """Open the sources a spec names; ``auto`` takes the best one this machine has."""
    env = env or PowerEnvironment()
    spec = (spec or "auto").strip()
    if spec == "auto":
        for kind in ("nvml", "rapl"):
            try:
                return _open_one(kind, None, env)
            except SourceUnavailable:
                continue
        return _open_one(env.auto_estimate, None, env)
    sources: list[PowerSource] = []
    try:
        for item in filter(None, (part.strip() for part in spec.split(","))):
            kind, _, arg = item.partition(":")
            try:
                sources.extend(_open_one(kind, arg or None, env))
            except SourceUnavailable as exc:
                raise TpwError(f"--power {redact(item)}: {exc}") from None
    except TpwError:
        for source in sources:
            source.close()
        raise
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        for source in sources:
            source.close()
        raise TpwError(f"--power {redact(spec)}: a source is named twice")
    if not sources:
        raise TpwError("--power: no source named")
    return sources


@dataclass(frozen=True)
class Availability:
    kind: str
    available: bool
    detail: str  # the sources found, or why there are none
    sources: tuple[SourceFacts, ...] = ()


def availability(env: PowerEnvironment | None = None) -> list[Availability]:
    """What each kind of source offers on this machine, and why not when it doesn't."""
    env = env or PowerEnvironment()
    report = []
    for kind in ("nvml", "rapl", "estimate"):
        try:
            sources = _open_one(kind, None, env)
        except SourceUnavailable as exc:
            report.append(Availability(kind, False, str(exc)))
            continue
        facts = tuple(source_facts(s) for s in sources)
        for source in sources:
            source.close()
        detail = ", ".join(f"{s.name} ({s.method}: {s.measures})" for s in facts)
        report.append(Availability(kind, True, detail, facts))
    return report
