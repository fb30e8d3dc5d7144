"""Energy over a time window, from counters when we have them, from power otherwise.

Pure functions on numpy arrays; no I/O, no clocks. Times are monotonic
nanoseconds, power in watts, energy in joules, raw counters in microjoules.

Rules (after Zeus): the energy of a window is the difference of an energy
counter read at its two edges. Integrating sampled power is the fallback for
sources without a counter, and says so in its method label.

Every window carries an error bound: one resolution step of its source (a
counter update, a sample interval, half a power-averaging period) at the
local power, per span. Confidence follows from that bound, so a phase made
of many short spans is judged by the sum of their errors, not by its total
length (see docs/methodology.md, "Confidence").
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from .integrals import cumulative_trapezoid_j

Method = Literal["counter", "sampled", "estimated", "replayed"]

# From most to least trustworthy; a sum of sources is as good as its worst part.
METHOD_RANK: dict[str, int] = {"counter": 3, "sampled": 2, "replayed": 1, "estimated": 0}


def weakest_method(methods) -> str:
    """The least trustworthy of ``methods``; "estimated" when there are none (nothing measured it)."""
    return min(methods, key=METHOD_RANK.__getitem__, default="estimated")


# A window is confident when it lasts at least this long (sensors that watch
# part of the time, such as the H100's, need it to average out) ...
MIN_CONFIDENT_WINDOW_S = 1.0
# ... and its error bound is at most this share of its energy (one 100 ms
# NVML counter update in a 1 s window).
MAX_CONFIDENT_RELATIVE_ERROR = 0.10
# The local power that sizes a span's error bound is averaged over this much
# data on each side of the span: a span with no counter update has none of its own.
ERROR_POWER_MARGIN_NS = 2_000_000_000


@dataclass(frozen=True)
class WindowEnergy:
    """The energy of a window (or of several spans, or several sources summed).

    ``joules`` is what the source measured; when ``unknown_reason`` is set it
    is not a figure anyone may use (a counter that never moved reads 0 J).
    ``error_j`` bounds how far ``joules`` can be from the truth because of the
    source's resolution alone; ``None`` when there is nothing to bound it with.
    """

    joules: float
    seconds: float
    method: Method
    error_j: float | None
    n_spans: int
    n_samples: int  # samples inside the window
    n_updates: int  # counter changes (or valid power samples) covering the window
    peak_w: float | None
    unknown_reason: str | None = None
    # Unknown only because a periodic counter had not moved yet: inside a longer
    # phase such a span counts as 0 J within its one-update error bound.
    stalled: bool = False
    # The longest gap in the source's readings that an edge of the window fell in (0: none): its energy
    # over the gap is in ``error_j``, and the window is low confidence.
    edge_gap_s: float = 0.0

    @property
    def known(self) -> bool:
        return self.unknown_reason is None

    @property
    def average_w(self) -> float | None:
        return self.joules / self.seconds if self.known and self.seconds > 0 else None

    @property
    def relative_error(self) -> float | None:
        if not self.known or self.error_j is None or self.joules <= 0:
            return None
        return self.error_j / self.joules

    @property
    def low_confidence_reason(self) -> str | None:
        """Why this window is not confident; None when it is."""
        return low_confidence_reason(self)

    @property
    def confident(self) -> bool:
        return self.low_confidence_reason is None


def low_confidence_reason(w: WindowEnergy) -> str | None:
    if not w.known:
        return w.unknown_reason
    if w.method == "estimated":
        return "estimated: a model of CPU load x TDP, not a measurement"
    if w.edge_gap_s > 0:
        return (
            f"an edge of the window fell in a {w.edge_gap_s:.2g} s gap in the power readings: where in it is "
            "unknown, so the gap's energy is in the error bound"
        )
    relative = w.relative_error
    if relative is None:
        return "no error bound: the energy is zero or the source's resolution is unknown"
    if relative > MAX_CONFIDENT_RELATIVE_ERROR * (1 + 1e-9):  # 10.000000000000002% is 10%
        spans = f" over {w.n_spans} spans" if w.n_spans > 1 else ""
        return (
            f"resolution error up to {relative:.0%}{spans} (over {MAX_CONFIDENT_RELATIVE_ERROR:.0%}): "
            "measure longer or with fewer, longer calls"
        )
    if w.seconds < MIN_CONFIDENT_WINDOW_S:
        return f"{w.seconds:.3g} s of measurement, under {MIN_CONFIDENT_WINDOW_S:g} s"
    return None


def _bracket(t: np.ndarray, t0_ns: int, t1_ns: int) -> tuple[int, int]:
    """Indices of the last sample at or before t0 and the first at or after t1."""
    lo = int(np.searchsorted(t, t0_ns, side="right")) - 1
    hi = int(np.searchsorted(t, t1_ns, side="left"))
    return lo, hi


def _peak_w(t: np.ndarray, p: np.ndarray, t0_ns: int, t1_ns: int) -> float | None:
    """Largest power seen in the window, its edges (interpolated) included.

    A window shorter than the sample interval has no sample inside; its edges
    still have a power, so its peak is never missing while it is covered.
    """
    ok = np.isfinite(p)
    t, p = t[ok], p[ok]
    if t.size == 0 or t0_ns < t[0] or t1_ns > t[-1]:
        return None
    inside = p[(t >= t0_ns) & (t <= t1_ns)]
    edges = np.interp([t0_ns, t1_ns], t, p)
    return float(max(edges.max(), inside.max() if inside.size else -np.inf))


def _median_step_ns(t: np.ndarray) -> float | None:
    steps = np.diff(t)
    return float(np.median(steps)) if steps.size else None


# Valid readings further apart than this many typical steps are a gap (failed reads, a source that paused).
GAP_STEPS = 3.0


def edge_gaps_ns(t: np.ndarray, t0_ns: int, t1_ns: int) -> list[float]:
    """The gaps in the readings ``t`` that the window's edges fall inside (an edge on a reading is in none)."""
    step = _median_step_ns(t)
    if step is None or step <= 0:
        return []
    gaps = []
    for edge in (t0_ns, t1_ns):
        hi = int(np.searchsorted(t, edge, side="left"))
        if hi < len(t) and t[hi] == edge or hi == 0 or hi == len(t):
            continue
        span = float(t[hi] - t[hi - 1])
        if span > GAP_STEPS * step:
            gaps.append(span)
    return gaps


def counter_window_energy(
    t_ns: np.ndarray,
    energy_j: np.ndarray,
    power_w: np.ndarray,
    t0_ns: int,
    t1_ns: int,
    *,
    update_s: float | None = None,
    still_means_zero: bool = False,
) -> WindowEnergy:
    """Window energy as the difference of a cumulative counter at the two edges.

    ``energy_j`` is cumulative (already unwrapped) and finite; the edges are
    linearly interpolated between the neighbouring samples. A counter whose
    value never changed between the samples around the window measured
    nothing: the window is unknown, not zero (unless ``still_means_zero``: a
    counter of events, such as CPU ticks, that didn't move counted none). The error bound is one counter
    update's energy: the measured difference lags the true one by between 0
    and one update at each edge, so their difference is off by at most one.
    ``update_s`` is the counter's update period when the caller knows it;
    otherwise it is the median time between changes in the data (or, for a
    counter seen moving fewer than twice, the whole span of the data).
    """
    t = np.asarray(t_ns, dtype=np.int64)
    e = np.asarray(energy_j, dtype=np.float64)
    _check_window(t, t0_ns, t1_ns)
    tf = t.astype(np.float64)
    joules = float(np.interp(t1_ns, tf, e) - np.interp(t0_ns, tf, e))
    lo, hi = _bracket(t, t0_ns, t1_ns)
    n_updates = int(np.count_nonzero(np.diff(e[lo : hi + 1]) != 0))
    seconds = (t1_ns - t0_ns) / 1e9
    if update_s is None:
        changes = t[1:][np.diff(e) != 0]
        step_ns = _median_step_ns(changes)
        # Seen moving fewer than twice: its period is unknown, so bound it by all the data we have.
        update_s = (step_ns if step_ns is not None else float(t[-1] - t[0])) / 1e9
    power_ref = _local_counter_power_w(t, e, t0_ns, t1_ns)
    gaps = edge_gaps_ns(t, t0_ns, t1_ns)
    error_j = None if power_ref is None else power_ref * (update_s + sum(gaps) / 1e9)
    unknown = None
    if n_updates == 0 and not still_means_zero:
        unknown = f"no counter update in the {seconds * 1e3:.0f} ms window"
    return WindowEnergy(
        joules=joules,
        seconds=seconds,
        method="counter",
        error_j=error_j,
        n_spans=1,
        n_samples=int(np.count_nonzero((t >= t0_ns) & (t <= t1_ns))),
        n_updates=n_updates,
        peak_w=_peak_w(t, np.asarray(power_w, dtype=np.float64), t0_ns, t1_ns),
        unknown_reason=unknown,
        stalled=unknown is not None,
        edge_gap_s=max(gaps, default=0.0) / 1e9,
    )


def failed_window(seconds: float, method: Method, n_spans: int, reason: str) -> WindowEnergy:
    """The window of a source that stopped answering: unknown, and no part of any sum."""
    return WindowEnergy(
        joules=0.0,
        seconds=seconds,
        method=method,
        error_j=None,
        n_spans=n_spans,
        n_samples=0,
        n_updates=0,
        peak_w=None,
        unknown_reason=reason,
    )


def _local_counter_power_w(t: np.ndarray, e: np.ndarray, t0_ns: int, t1_ns: int) -> float | None:
    """The counter's mean power over the span and a margin either side: what one update is worth here."""
    lo = max(0, int(np.searchsorted(t, t0_ns - ERROR_POWER_MARGIN_NS, side="left")))
    hi = min(len(t) - 1, int(np.searchsorted(t, t1_ns + ERROR_POWER_MARGIN_NS, side="right")) - 1)
    if hi <= lo or t[hi] <= t[lo]:
        return None
    return float((e[hi] - e[lo]) / ((t[hi] - t[lo]) / 1e9))


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
    return float(cumulative_trapezoid_j(ts, ps, per_s=1e9)[-1])


def sampled_window_energy(
    t_ns: np.ndarray,
    power_w: np.ndarray,
    t0_ns: int,
    t1_ns: int,
    method: Method = "sampled",
    *,
    resolution_s: float | None = None,
) -> WindowEnergy:
    """Fallback window energy from power samples, labelled with the source's method.

    The error bound is the window's power times ``resolution_s``: the sample
    interval by default, or half the averaging period of a reading that is
    itself an average (NVML's 1 s one smears each edge by half a second).
    """
    t = np.asarray(t_ns, dtype=np.int64)
    p = np.asarray(power_w, dtype=np.float64)
    joules = integrate_power_j(t, p, t0_ns, t1_ns)
    valid = np.isfinite(p)
    seconds = (t1_ns - t0_ns) / 1e9
    if resolution_s is None:
        step_ns = _median_step_ns(t[valid])
        resolution_s = step_ns / 1e9 if step_ns is not None else None
    power_ref = joules / seconds if seconds > 0 else _peak_w(t, p, t0_ns, t1_ns)
    lo, hi = _bracket(t[valid], t0_ns, t1_ns)
    gaps = edge_gaps_ns(t[valid], t0_ns, t1_ns)
    return WindowEnergy(
        joules=joules,
        seconds=seconds,
        method=method,
        error_j=None
        if resolution_s is None or power_ref is None
        else abs(power_ref) * (resolution_s + sum(gaps) / 1e9),
        n_spans=1,
        n_samples=int(np.count_nonzero((t >= t0_ns) & (t <= t1_ns))),
        n_updates=max(0, hi - lo),
        peak_w=_peak_w(t, p, t0_ns, t1_ns),
        edge_gap_s=max(gaps, default=0.0) / 1e9,
    )


def _check_window(t: np.ndarray, t0_ns: int, t1_ns: int) -> None:
    if t1_ns < t0_ns:
        raise ValueError("window ends before it starts")
    if t.size == 0:
        raise ValueError("no samples")
    if t0_ns < t[0] or t1_ns > t[-1]:
        raise ValueError("window is not covered by the samples")


def _sum_errors(windows: list[WindowEnergy]) -> float | None:
    errors = [w.error_j for w in windows]
    return None if None in errors else float(sum(errors))


def combine(windows: list[WindowEnergy], names: list[str] | None = None) -> WindowEnergy:
    """Sum the same window across sources (GPU + CPU ...): the weakest method wins.

    The sum is unknown when any part is: a missing GPU can't be left out of
    a total that claims to include it.
    """
    if not windows:
        raise ValueError("no sources")
    names = names or [f"source {i}" for i in range(len(windows))]
    unknown = [f"{name}: {w.unknown_reason}" for name, w in zip(names, windows) if not w.known]
    hard = any(not w.known and not w.stalled for w in windows)
    peaks = [w.peak_w for w in windows]
    return WindowEnergy(
        joules=sum(w.joules for w in windows),
        seconds=windows[0].seconds,
        method=weakest_method(w.method for w in windows),
        error_j=_sum_errors(windows),
        n_spans=windows[0].n_spans,
        n_samples=min(w.n_samples for w in windows),
        n_updates=min(w.n_updates for w in windows),
        # Peaks of different sources need not coincide; their sum bounds the total's.
        peak_w=None if None in peaks else sum(peaks),
        unknown_reason="; ".join(unknown) or None,
        stalled=bool(unknown) and not hard,
        edge_gap_s=max(w.edge_gap_s for w in windows),
    )


def concat(windows: list[WindowEnergy]) -> WindowEnergy:
    """One phase made of several disjoint spans (the prompt of each agent call, each repetition).

    Energies and error bounds add. A span whose counter didn't move is not
    unknown inside a longer phase: it measured 0 J give or take one update,
    and that update is in the error bound. Only a phase in which no span saw
    any update is unknown.
    """
    if not windows:
        raise ValueError("no spans")
    if len(windows) == 1:
        return windows[0]
    peaks = [w.peak_w for w in windows if w.peak_w is not None]
    # A reason other than "nothing moved" (a source that failed) stays a reason for the whole.
    hard = [w.unknown_reason for w in windows if not w.known and not w.stalled]
    all_stalled = all(w.stalled for w in windows)
    seconds = sum(w.seconds for w in windows)
    reason = (
        hard[0]
        if hard
        else (f"no counter update in {seconds * 1e3:.0f} ms over {len(windows)} spans" if all_stalled else None)
    )
    return WindowEnergy(
        joules=sum(w.joules for w in windows),
        seconds=seconds,
        method=weakest_method(w.method for w in windows),
        error_j=_sum_errors(windows),
        n_spans=sum(w.n_spans for w in windows),
        n_samples=sum(w.n_samples for w in windows),
        n_updates=sum(w.n_updates for w in windows),
        peak_w=max(peaks) if peaks else None,
        unknown_reason=reason,
        stalled=all_stalled and not hard,
        edge_gap_s=max(w.edge_gap_s for w in windows),
    )


def source_energy(
    t_ns: np.ndarray,
    power_w: np.ndarray,
    energy_j: np.ndarray,
    spans,
    method: Method,
    *,
    has_counter: bool,
    resolution_s: float | None = None,
    still_means_zero: bool = False,
) -> WindowEnergy:
    """One source's energy over disjoint spans, from its samples: its counter differenced when it has one
    (over the samples whose counter was read), else its power integrated; each span with its own error
    bound, then concatenated. The sampler and the live view both call this, so a window's figure is the
    same wherever it is computed. A ValueError when a span is not covered by valid samples."""
    t = np.asarray(t_ns, dtype=np.int64)
    p = np.asarray(power_w, dtype=np.float64)
    e = np.asarray(energy_j, dtype=np.float64)
    ok = np.isfinite(e if has_counter else p)
    t, p, e = t[ok], p[ok], e[ok]
    windows = []
    for t0, t1 in spans:
        if has_counter:
            w = counter_window_energy(t, e, p, t0, t1, update_s=resolution_s, still_means_zero=still_means_zero)
            windows.append(replace(w, method=method))
        else:
            windows.append(sampled_window_energy(t, p, t0, t1, method=method, resolution_s=resolution_s))
    return concat(windows)
