"""Energy over a time window, from counters when we have them, from power otherwise.

Pure functions on numpy arrays; no I/O, no clocks. Times are monotonic
nanoseconds, power in watts, energy in joules, raw counters in microjoules.

Rules (after Zeus): the energy of a window is the difference of an energy
counter read at its two edges. Integrating sampled power is the fallback for
sources without a counter, and says so in its method label.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Method = Literal["counter", "sampled", "estimated", "replayed"]

# From most to least trustworthy; a sum of sources is as good as its worst part.
METHOD_RANK: dict[str, int] = {"counter": 3, "sampled": 2, "replayed": 1, "estimated": 0}

MIN_CONFIDENT_WINDOW_S = 1.0
MIN_CONFIDENT_UPDATES = 10


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


@dataclass(frozen=True)
class WindowEnergy:
    joules: float
    seconds: float
    method: Method
    confident: bool
    n_samples: int  # samples inside the window
    n_updates: int  # counter changes (or samples, for power) inside the window
    peak_w: float

    @property
    def average_w(self) -> float:
        return self.joules / self.seconds if self.seconds > 0 else float("nan")


def _inside(t_ns: np.ndarray, t0_ns: int, t1_ns: int) -> np.ndarray:
    return (t_ns >= t0_ns) & (t_ns <= t1_ns)


def _peak(power_w: np.ndarray, mask: np.ndarray) -> float:
    values = power_w[mask]
    values = values[np.isfinite(values)]
    return float(values.max()) if values.size else float("nan")


def counter_window_energy(
    t_ns: np.ndarray, energy_j: np.ndarray, power_w: np.ndarray, t0_ns: int, t1_ns: int
) -> WindowEnergy:
    """Window energy as the difference of a cumulative counter at the two edges.

    ``energy_j`` is cumulative (already unwrapped); the edges are linearly
    interpolated between the neighbouring samples. Confidence needs a window
    of at least 1 s and at least 10 counter updates inside it: NVML's counter
    moves only every ~100 ms, so a shorter window is mostly quantisation.
    """
    t = np.asarray(t_ns, dtype=np.float64)
    e = np.asarray(energy_j, dtype=np.float64)
    _check_window(t, t0_ns, t1_ns)
    joules = float(np.interp(t1_ns, t, e) - np.interp(t0_ns, t, e))
    mask = _inside(np.asarray(t_ns), t0_ns, t1_ns)
    n_updates = int(np.count_nonzero(np.diff(e[mask]) != 0)) if mask.any() else 0
    seconds = (t1_ns - t0_ns) / 1e9
    return WindowEnergy(
        joules=joules,
        seconds=seconds,
        method="counter",
        confident=seconds >= MIN_CONFIDENT_WINDOW_S and n_updates >= MIN_CONFIDENT_UPDATES,
        n_samples=int(mask.sum()),
        n_updates=n_updates,
        peak_w=_peak(np.asarray(power_w, dtype=np.float64), mask),
    )


def integrate_power_j(t_ns: np.ndarray, power_w: np.ndarray, t0_ns: int, t1_ns: int) -> float:
    """Trapezoid integral of sampled power over [t0, t1], edges interpolated.

    Samples whose power is NaN (a failed read) are skipped: the trapezoid
    bridges the gap from the neighbours on each side.
    """
    t = np.asarray(t_ns, dtype=np.float64)
    p = np.asarray(power_w, dtype=np.float64)
    ok = np.isfinite(p)
    t, p = t[ok], p[ok]
    _check_window(t, t0_ns, t1_ns)
    inner = (t > t0_ns) & (t < t1_ns)
    ts = np.concatenate(([t0_ns], t[inner], [t1_ns]))
    ps = np.concatenate(([np.interp(t0_ns, t, p)], p[inner], [np.interp(t1_ns, t, p)]))
    return float(np.sum((ps[1:] + ps[:-1]) * np.diff(ts)) / 2 / 1e9)


def sampled_window_energy(
    t_ns: np.ndarray, power_w: np.ndarray, t0_ns: int, t1_ns: int, method: Method = "sampled"
) -> WindowEnergy:
    """Fallback window energy from power samples, labelled with the source's method."""
    joules = integrate_power_j(t_ns, power_w, t0_ns, t1_ns)
    p = np.asarray(power_w, dtype=np.float64)
    mask = _inside(np.asarray(t_ns), t0_ns, t1_ns)
    n_valid = int(np.count_nonzero(mask & np.isfinite(p)))
    seconds = (t1_ns - t0_ns) / 1e9
    return WindowEnergy(
        joules=joules,
        seconds=seconds,
        method=method,
        confident=seconds >= MIN_CONFIDENT_WINDOW_S and n_valid >= MIN_CONFIDENT_UPDATES,
        n_samples=int(mask.sum()),
        n_updates=n_valid,
        peak_w=_peak(p, mask),
    )


def _check_window(t: np.ndarray, t0_ns: int, t1_ns: int) -> None:
    if t1_ns < t0_ns:
        raise ValueError("window ends before it starts")
    if t.size == 0:
        raise ValueError("no samples")
    if t0_ns < t[0] or t1_ns > t[-1]:
        raise ValueError("window is not covered by the samples")


def combine(windows: list[WindowEnergy]) -> WindowEnergy:
    """Sum the same window across sources (GPU + CPU ...): the weakest method wins."""
    if not windows:
        raise ValueError("no sources")
    method = min((w.method for w in windows), key=METHOD_RANK.__getitem__)
    return WindowEnergy(
        joules=sum(w.joules for w in windows),
        seconds=windows[0].seconds,
        method=method,
        confident=all(w.confident for w in windows),
        n_samples=min(w.n_samples for w in windows),
        n_updates=min(w.n_updates for w in windows),
        # Peaks of different sources need not coincide; their sum bounds the total's.
        peak_w=sum(w.peak_w for w in windows),
    )


def concat(windows: list[WindowEnergy]) -> WindowEnergy:
    """One phase made of several disjoint spans (e.g. the prompt of each agent call)."""
    if not windows:
        raise ValueError("no spans")
    method = min((w.method for w in windows), key=METHOD_RANK.__getitem__)
    seconds = sum(w.seconds for w in windows)
    n_updates = sum(w.n_updates for w in windows)
    return WindowEnergy(
        joules=sum(w.joules for w in windows),
        seconds=seconds,
        method=method,
        confident=seconds >= MIN_CONFIDENT_WINDOW_S and n_updates >= MIN_CONFIDENT_UPDATES,
        n_samples=sum(w.n_samples for w in windows),
        n_updates=n_updates,
        peak_w=max(w.peak_w for w in windows),
    )
