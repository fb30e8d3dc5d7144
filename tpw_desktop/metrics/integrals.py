"""The arithmetic under every energy figure: counter differences and integrals of sampled power.

Pure functions on numpy arrays. A counter that wraps (RAPL) or resets
(a Prometheus counter after a restart) is differenced the way its source
means; sampled power is integrated by the trapezoid rule, exact for power
that is linear between samples.
"""

from __future__ import annotations

import numpy as np


def counter_delta_uj(previous_uj: int, current_uj: int, wrap_uj: int | None) -> int:
    """Energy between two reads of a counter that wraps to zero at ``wrap_uj``.

    RAPL's ``energy_uj`` wraps at ``max_energy_range_uj``; if the new value is
    smaller than the old one the counter went round once. A counter without a
    known range (NVML's 64-bit one) must never go backwards.
    """
    delta = current_uj - previous_uj
    if delta >= 0:
        return delta
    if wrap_uj is None:
        raise ValueError(f"energy counter went backwards ({previous_uj} -> {current_uj}) and has no wrap range")
    return delta + wrap_uj


def cumulative_trapezoid_j(t: np.ndarray, power_w: np.ndarray, per_s: float = 1.0) -> np.ndarray:
    """Joules from the first sample to each one, by the trapezoid rule (exact for power linear between samples);
    ``t`` in seconds, or in units of which there are ``per_s`` to a second (1e9: nanoseconds).

    The one integrator of sampled power: a window's energy is its last value (``integrate_power_j``), a
    replayed trace's counter is it, and so are a chart's per-bin joules.
    """
    t = np.asarray(t, dtype=np.float64)
    p = np.asarray(power_w, dtype=np.float64)
    return np.concatenate(([0.0], np.cumsum((p[1:] + p[:-1]) * np.diff(t)) / 2 / per_s))


def piecewise_linear_energy_j(t_s: np.ndarray, power_w: np.ndarray, cumulative_j: np.ndarray, at_s: float) -> float:
    """Energy from the trace's start to ``at_s`` of power that is linear between its points: the trapezoid's
    value at the points, and the exact quadratic in between (not a straight line across a ramp)."""
    t = np.asarray(t_s, dtype=np.float64)
    i = int(np.clip(np.searchsorted(t, at_s, side="right") - 1, 0, len(t) - 2))
    dt, span = at_s - t[i], t[i + 1] - t[i]
    slope = (power_w[i + 1] - power_w[i]) / span
    return float(cumulative_j[i] + power_w[i] * dt + slope * dt * dt / 2)


def counter_increase(values) -> float:
    """The increase of a counter over its successive readings; a reading below the previous one is a reset
    (the counter restarted from zero, as Prometheus counts it)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        return 0.0
    steps = np.diff(v)
    return float(np.where(steps >= 0, steps, v[1:]).sum())
