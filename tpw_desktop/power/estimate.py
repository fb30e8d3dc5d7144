"""An estimate for machines with no power sensor: CPU utilisation x TDP.

This is what CodeCarbon falls back to, and its error is large (reported
-60% to +190%). It exists so that a laptop or VM still shows the whole
dashboard, and it is always labelled ``estimated``, never a measurement.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .base import PowerReading

# A typical desktop CPU's TDP, used when the user hasn't entered theirs.
DEFAULT_TDP_W = 65.0
_MIN_UTILISATION_WINDOW_NS = 100_000_000  # /proc/stat ticks at 10 ms: shorter windows are noise
# The estimate changes at most every 100 ms; polling it faster only takes CPU
# from the inference being measured (~3% of tg speed at 50 Hz on 2 vCPUs).
ESTIMATE_MAX_RATE_HZ = 10.0


class CpuUtilisation:
    """Whole-machine CPU utilisation (0..1) over at least the last 100 ms."""

    def __init__(self, clock_ns: Callable[[], int]):
        import psutil

        self._psutil = psutil
        self._clock_ns = clock_ns
        self._psutil.cpu_percent(interval=None)  # primes psutil's reference point
        self._last_ns = clock_ns()
        self._value = 0.0

    def __call__(self) -> float:
        now = self._clock_ns()
        if now - self._last_ns >= _MIN_UTILISATION_WINDOW_NS:
            self._value = self._psutil.cpu_percent(interval=None) / 100.0
            self._last_ns = now
        return self._value


class EstimateSource:
    method = "estimated"
    counter_wrap_uj = None
    max_rate_hz = ESTIMATE_MAX_RATE_HZ

    def __init__(self, clock_ns: Callable[[], int], tdp_w: float = DEFAULT_TDP_W, utilisation=None):
        if tdp_w <= 0:
            raise ValueError("TDP must be a positive number of watts")
        self.tdp_w = float(tdp_w)
        self._clock_ns = clock_ns
        self._utilisation: Callable[[], float] = utilisation or CpuUtilisation(clock_ns)
        self.name = "estimate"
        self.measures = f"CPU, estimated as utilisation x {self.tdp_w:g} W TDP"

    def read(self) -> PowerReading:
        return PowerReading(self._clock_ns(), self.tdp_w * self._utilisation())

    def info(self) -> dict[str, Any]:
        return {"tdp_w": self.tdp_w, "model": "power = TDP x CPU utilisation"}

    def close(self) -> None:
        pass
