"""A sampler on a replayed constant trace: power without a sensor, for runs made in the test's own process."""

import time

import numpy as np

from tpw_desktop.power import PowerTrace, ReplaySource, Sampler


def replay_sampler(watts: float = 100.0) -> Sampler:
    trace = PowerTrace(np.array([0.0, 3600.0]), np.array([watts, watts]), None, "flat.csv")
    return Sampler([ReplaySource(trace, time.monotonic_ns)], rate_hz=50)
