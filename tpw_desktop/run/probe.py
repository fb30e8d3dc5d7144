"""The sampler's view of the machine between runs: settling, the idle baseline, power after a cool-down.

Shared by a measured run (its idle baseline and --delay) and a sweep (one
baseline for every run, and waiting for power to come back near it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..metrics import IdleBaseline, WindowEnergy, idle_baseline
from .events import IdleMeasured, Marked, RunEvent, Status

# Power counts as back near idle within this share of the baseline (or this many
# watts, for a baseline near zero), over the last half second.
NEAR_IDLE_SHARE = 0.10
NEAR_IDLE_MIN_W = 1.0
RECENT_S = 0.5


def near_idle(power_w: float, idle_w: float) -> bool:
    """Whether power is back within the tolerance of the idle baseline."""
    return power_w <= idle_w + max(NEAR_IDLE_SHARE * idle_w, NEAR_IDLE_MIN_W)


class Probe:
    def __init__(self, sampler, listener: Callable[[RunEvent], None], stop: threading.Event):
        self.sampler = sampler
        self.listener = listener
        self.stop = stop

    def now_with_samples(self) -> int:
        """A time with a valid sample of every source at or before it: a window starting then has its left edge.

        (Not the time before the wait: a sampler started a moment ago has no sample before that.)
        """
        self.sampler.wait_until(time.monotonic_ns())
        return time.monotonic_ns()

    def energy(self, spans: list[tuple[int, int]]) -> WindowEnergy:
        self.sampler.wait_until(max(end for _, end in spans))
        return self.sampler.spans_energy(spans)

    def wait(self, seconds: float, kind: str) -> tuple[int, int] | None:
        """Leave the machine alone for ``seconds`` (a mark on the charts); None if stopped meanwhile."""
        t0 = self.now_with_samples()
        if self.stop.wait(seconds):
            return None
        t1 = time.monotonic_ns()
        self.listener(Marked(kind, t0, t1))
        return t0, t1

    def idle(self, idle_s: float, settle_s: float) -> tuple[IdleBaseline | None, str | None]:
        """Settle, then measure idle power: the baseline, or None and why."""
        if idle_s <= 0:
            return None, "the idle baseline was turned off"
        if settle_s > 0:
            self.listener(Status(f"letting the machine settle for {settle_s:g} s"))
            if self.wait(settle_s, "settle") is None:
                return None, "stopped before the idle baseline"
        self.listener(Status(f"measuring idle power for {idle_s:g} s"))
        span = self.wait(idle_s, "idle")
        if span is None:
            return None, "stopped before the idle baseline"
        window = self.energy([span])
        baseline = idle_baseline(window, settle_s)
        reason = None if baseline else f"idle power unknown: {window.unknown_reason}"
        self.listener(IdleMeasured(baseline, reason))
        return baseline, reason

    def recent_power_w(self, t_ns: int | None = None) -> float | None:
        """Mean power over the half second before ``t_ns`` (now by default)."""
        t_ns = t_ns if t_ns is not None else self.now_with_samples()
        return self.energy([(t_ns - round(RECENT_S * 1e9), t_ns)]).average_w
