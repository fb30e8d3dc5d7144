"""An estimate for machines with no power sensor: CPU busy time x TDP.

This is what CodeCarbon falls back to, and its error is large (reported
-60% to +190%). It exists so that a laptop or VM still shows the whole
dashboard, and it is always labelled ``estimated``, never a measurement.

It is built as an energy *counter*: cumulative CPU busy seconds (from the
kernel, exact to its 10 ms tick) divided by the number of CPUs, times the
TDP. A window's energy is the counter's difference, as for RAPL, so it is
never staler than the samples at its edges. In ``process`` scope it counts
only the measuring process's CPU time (PowerJoular's and CodeCarbon's
process mode): another program's load is then not booked to the model.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Literal

from .base import PowerReading

# A typical desktop CPU's TDP, used when the user hasn't entered theirs.
DEFAULT_TDP_W = 65.0
# Polling faster only takes CPU from the inference being measured (~3% of tg
# speed at 50 Hz on 2 vCPUs); edges are interpolated from the counter anyway.
ESTIMATE_MAX_RATE_HZ = 10.0

Scope = Literal["machine", "process"]


def machine_busy_cpu_s() -> float:
    """CPU-seconds spent not idle, summed over all CPUs (steal and iowait are not ours)."""
    import psutil

    t = psutil.cpu_times()
    return t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)


def process_busy_cpu_s(pid: int | None = None) -> Callable[[], float]:
    """CPU-seconds of one process (all its threads), user + system."""
    import psutil

    process = psutil.Process(pid)

    def read() -> float:
        t = process.cpu_times()
        return t.user + t.system

    return read


class EstimateSource:
    method = "estimated"
    counter_wrap_uj = None
    max_rate_hz = ESTIMATE_MAX_RATE_HZ
    # It counts busy ticks as they happen: not moving means no CPU was busy,
    # not (as for NVML's periodic counter) that the next update hasn't come yet.
    still_counter_means_zero = True

    def __init__(
        self,
        clock_ns: Callable[[], int],
        tdp_w: float = DEFAULT_TDP_W,
        *,
        scope: Scope = "machine",
        busy_cpu_s: Callable[[], float] | None = None,
        n_cpus: int | None = None,
    ):
        if tdp_w <= 0:
            raise ValueError("TDP must be a positive number of watts")
        self.tdp_w = float(tdp_w)
        self.scope = scope
        self._clock_ns = clock_ns
        self._busy_cpu_s = busy_cpu_s or (machine_busy_cpu_s if scope == "machine" else process_busy_cpu_s())
        self.n_cpus = n_cpus or os.cpu_count() or 1
        self.name = "estimate" if scope == "machine" else "estimate-process"
        whose = "CPU" if scope == "machine" else f"CPU time of process {os.getpid()}"
        self.measures = f"{whose}, estimated as busy share x {self.tdp_w:g} W TDP"
        self._previous: tuple[int, float] | None = None

    def energy_j(self, busy_cpu_s: float) -> float:
        """The counter: busy CPU-seconds as a share of all CPUs, at TDP."""
        return busy_cpu_s / self.n_cpus * self.tdp_w

    def read(self) -> PowerReading:
        busy = self._busy_cpu_s()
        t_ns = self._clock_ns()
        power_w = float("nan")
        if self._previous is not None:
            t0, b0 = self._previous
            if t_ns > t0:
                power_w = self.energy_j(busy - b0) / ((t_ns - t0) / 1e9)
        self._previous = (t_ns, busy)
        return PowerReading(t_ns, power_w, round(self.energy_j(busy) * 1e6))

    def info(self) -> dict[str, Any]:
        return {
            "tdp_w": self.tdp_w,
            "scope": self.scope,
            "n_cpus": self.n_cpus,
            "model": "energy = busy CPU-seconds / CPUs x TDP",
        }

    def close(self) -> None:
        pass
