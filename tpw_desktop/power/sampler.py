"""Poll power sources on a background thread at a fixed rate.

Drift-free: each sample is due at ``start + k * period`` (the next deadline,
not ``sleep(period)``), so the achieved rate doesn't sag with the time a read
takes. Samples carry ``time.monotonic_ns()``, the engine's clock. A source
that raises gets a NaN sample (a gap) and is polled again next time: one
flaky sensor never stops the others.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import TpwError
from ..metrics import (
    WindowEnergy,
    combine,
    counter_delta_uj,
    counter_window_energy,
    failed_window,
    sampled_window_energy,
    source_energy,
)
from ..record.results import SamplerStats
from .base import PowerSource
from .ring import RingBuffer

DEFAULT_RATE_HZ = 50.0
DEFAULT_CAPACITY = 1 << 18  # about 87 minutes at 50 Hz
STOP_CHECK_NS = 50_000_000  # the longest stop() may wait for the thread
# How long a window's end waits for a source's next good sample before it
# fails honestly (NVML can take a few hundred ms to answer after an error).
WAIT_FOR_VALID_S = 3.0

SAMPLE_COLUMNS = {"t_ns": np.int64, "power_w": np.float64, "energy_j": np.float64}


def effective_rate_hz(requested_hz: float, sources: Sequence[PowerSource]) -> float:
    """The requested rate, unless every source changes more slowly than that.

    Each wake-up of the sampler takes a core from the inference it measures;
    sampling a source faster than it updates (the estimate: every 100 ms)
    costs speed and adds nothing.
    """
    caps = [getattr(s, "max_rate_hz", None) for s in sources]
    if any(cap is None for cap in caps):
        return requested_hz
    return min(requested_hz, max(caps))


class SourceFailed(TpwError):
    """A window's energy can't be measured because a source stopped answering."""


@dataclass(frozen=True)
class SampleError:
    t_ns: int
    source: str
    message: str


class _Channel:
    """One source's ring buffer and counter state."""

    def __init__(self, source: PowerSource, capacity: int):
        self.source = source
        self.ring = RingBuffer(capacity, SAMPLE_COLUMNS)
        self.previous_counter_uj: int | None = None
        self.energy_j = 0.0  # cumulative since the sampler started
        self.consecutive_errors = 0
        self.has_counter = False  # set by the first counter read
        # Time of the newest sample a window's edge can stand on: a counter
        # read for a counter source, a power reading otherwise. A failed read
        # at a window's end covers nothing.
        self.last_valid_ns: int | None = None


class Sampler:
    """Background sampling of several sources into per-source ring buffers."""

    def __init__(
        self,
        sources: Sequence[PowerSource],
        *,
        rate_hz: float = DEFAULT_RATE_HZ,
        capacity: int = DEFAULT_CAPACITY,
        clock_ns: Callable[[], int] = time.monotonic_ns,
    ):
        if not sources:
            raise ValueError("a sampler needs at least one power source")
        if rate_hz <= 0:
            raise ValueError("rate must be positive")
        self.sources = list(sources)
        self.requested_hz = rate_hz
        self.rate_hz = effective_rate_hz(rate_hz, self.sources)
        self._period_ns = round(1e9 / self.rate_hz)
        self._clock_ns = clock_ns
        self._channels = [_Channel(s, capacity) for s in self.sources]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._errors: deque[SampleError] = deque(maxlen=100)
        self._n_errors = 0
        self._n_late = 0
        self._n_ticks = 0
        self._first_tick_ns: int | None = None
        self._last_tick_ns: int | None = None
        self._max_interval_ns = 0

    # --- lifecycle -----------------------------------------------------------------

    def start(self) -> Sampler:
        if self._thread is not None:
            raise RuntimeError("sampler already started")
        self._thread = threading.Thread(target=self._run, name="tpw-power-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> Sampler:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self) -> None:
        deadline = self._clock_ns()
        while not self._stop.is_set():
            self._tick()
            deadline += self._period_ns
            delay_ns = deadline - self._clock_ns()
            if delay_ns < -self._period_ns:
                # Starved for more than a period: skip the missed deadlines
                # rather than firing a burst of catch-up samples.
                missed = math.ceil(-delay_ns / self._period_ns)
                deadline += missed * self._period_ns
                self._n_late += 1
                delay_ns = deadline - self._clock_ns()
            # time.sleep, not Event.wait: at 50 Hz Event.wait's condition
            # machinery alone costs ~0.6% of a core, sleep ~0.3%. Slices of at
            # most 50 ms keep stop() prompt at slow rates.
            while delay_ns > 0 and not self._stop.is_set():
                time.sleep(min(delay_ns, STOP_CHECK_NS) / 1e9)
                delay_ns = deadline - self._clock_ns()

    def _tick(self) -> None:
        now = self._clock_ns()
        if self._last_tick_ns is not None:
            self._max_interval_ns = max(self._max_interval_ns, now - self._last_tick_ns)
        else:
            self._first_tick_ns = now
        self._last_tick_ns = now
        self._n_ticks += 1
        for channel in self._channels:
            self._sample(channel)

    def _sample(self, channel: _Channel) -> None:
        source = channel.source
        try:
            reading = source.read()
            if reading.counter_uj is not None:
                if channel.previous_counter_uj is not None:
                    delta = counter_delta_uj(channel.previous_counter_uj, reading.counter_uj, source.counter_wrap_uj)
                    channel.energy_j += delta / 1e6
                channel.previous_counter_uj = reading.counter_uj
            t_ns, power_w = reading.t_ns, reading.power_w
            counter_read = reading.counter_uj is not None
            channel.has_counter |= counter_read
            if counter_read or (not channel.has_counter and math.isfinite(power_w)):
                channel.last_valid_ns = t_ns
            channel.consecutive_errors = 0
        except Exception as exc:  # noqa: BLE001 - any sensor failure becomes a gap
            t_ns, power_w, counter_read = self._clock_ns(), math.nan, False
            channel.consecutive_errors += 1
            self._n_errors += 1
            self._errors.append(SampleError(t_ns, source.name, f"{type(exc).__name__}: {exc}"))
        # A failed read has no energy reading: NaN, not the last value, or a
        # window over the gap would read as zero joules. When the counter
        # answers again, the difference covers the gap.
        energy = channel.energy_j if counter_read else math.nan
        channel.ring.append(t_ns=t_ns, power_w=power_w, energy_j=energy)

    # --- reading results -----------------------------------------------------------

    def stats(self) -> SamplerStats:
        n = self._n_ticks
        span_ns = (self._last_tick_ns or 0) - (self._first_tick_ns or 0)
        return SamplerStats(
            target_hz=self.rate_hz,
            achieved_hz=(n - 1) / (span_ns / 1e9) if n > 1 and span_ns > 0 else 0.0,
            n_samples=n,
            n_late=self._n_late,
            max_interval_ms=self._max_interval_ns / 1e6,
            n_errors=self._n_errors,
            last_error=self._errors[-1].message if self._errors else None,
        )

    def errors(self) -> list[SampleError]:
        return list(self._errors)

    def failing_sources(self, min_consecutive: int = 10) -> list[str]:
        """Sources whose last ``min_consecutive`` reads all failed."""
        return [c.source.name for c in self._channels if c.consecutive_errors >= min_consecutive]

    def snapshot(self, index: int, last: int | None = None) -> dict[str, np.ndarray]:
        return self._channels[index].ring.snapshot(last)

    def source_names(self) -> list[str]:
        return [c.source.name for c in self._channels]

    def samples_written(self, index: int) -> int:
        """How many samples source ``index`` has taken so far (a cursor for ``samples_since``)."""
        return self._channels[index].ring.total_written

    def samples_since(self, index: int, written_before: int) -> tuple[int, dict[str, np.ndarray]]:
        """Source ``index``'s samples after the first ``written_before``, and the new total (the store's feed)."""
        return self._channels[index].ring.since(written_before)

    def wait_until(self, t_ns: int, timeout_s: float = WAIT_FOR_VALID_S) -> bool:
        """Block until every source has a *valid* sample at or after ``t_ns``.

        A window's end edge must be covered before its energy can be read. A
        failed read past the edge covers nothing: a source that comes back
        covers its gap with its next good sample, so we wait for that one, up
        to ``timeout_s``. False when some source never answered in time; its
        windows then fail with the reason rather than a guess.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            covered = [c.last_valid_ns is not None and c.last_valid_ns >= t_ns for c in self._channels]
            if all(covered):
                return True
            # A source failing for longer than the timeout already is down: don't wait on it again.
            down = [self._down(c, timeout_s) for c in self._channels]
            if time.monotonic() >= deadline or not self.running or all(a or b for a, b in zip(covered, down)):
                return False
            time.sleep(self._period_ns / 4e9)

    def _down(self, channel: _Channel, timeout_s: float) -> bool:
        last = channel.last_valid_ns
        return channel.consecutive_errors > 0 and (last is None or self._clock_ns() - last > timeout_s * 1e9)

    def window_energy(self, t0_ns: int, t1_ns: int) -> WindowEnergy:
        """Energy of all sources between two engine timestamps."""
        return self.spans_energy([(t0_ns, t1_ns)])

    def spans_energy(self, spans: Sequence[tuple[int, int]]) -> WindowEnergy:
        """Energy of all sources over disjoint spans (one phase of several calls).

        Counter sources are differenced (over the samples whose counter was
        read); the others integrate power. Each span carries its own error
        bound, and the spans are concatenated, then the sources summed; the
        result's method is the weakest of the parts.
        """
        return combine(self.per_source_energy(spans), [c.source.name for c in self._channels])

    def per_source_energy(self, spans: Sequence[tuple[int, int]]) -> list[WindowEnergy]:
        """Each source's energy over the spans, in sampler order.

        A source that stopped answering gives an unknown window with the
        reason: the run goes on with the others, and no sum includes it.
        """
        return [self._energy_or_reason(channel, spans) for channel in self._channels]

    def source_energy(self, index: int, t0_ns: int, t1_ns: int) -> WindowEnergy:
        """One source's energy over one window (the exporter's counters advance source by source)."""
        return self._energy_or_reason(self._channels[index], [(t0_ns, t1_ns)])

    def last_valid_ns(self, index: int) -> int | None:
        """When the source last answered: the end of the newest window it can cover."""
        return self._channels[index].last_valid_ns

    def _energy_or_reason(self, channel: _Channel, spans: Sequence[tuple[int, int]]) -> WindowEnergy:
        try:
            return self._channel_energy(channel, spans)
        except SourceFailed as exc:
            seconds = sum((t1 - t0) / 1e9 for t0, t1 in spans)
            return failed_window(seconds, channel.source.method, len(spans), str(exc))

    def _channel_energy(self, channel: _Channel, spans: Sequence[tuple[int, int]]) -> WindowEnergy:
        data = channel.ring.snapshot()
        source = channel.source
        try:
            return source_energy(
                data["t_ns"],
                data["power_w"],
                data["energy_j"],
                spans,
                source.method,
                has_counter=channel.has_counter,
                resolution_s=getattr(source, "resolution_s", None),
                still_means_zero=getattr(source, "still_counter_means_zero", False),
            )
        except ValueError:
            t0, t1 = min(t0 for t0, _ in spans), max(t1 for _, t1 in spans)
            raise SourceFailed(self._why_uncovered(channel, t0, t1)) from None

    def compare_methods(self, t0_ns: int, t1_ns: int) -> list[dict]:
        """For each source with a counter: its counter energy next to its integrated power.

        The GPU check's question: on this GPU, does integrating the power
        reading agree with the energy counter? (On recent NVIDIA GPUs the
        power reading is a 1 s average, or the instant field sees ~25% of
        the time: the two can disagree on short windows.)
        """
        rows = []
        for channel in self._channels:
            if not channel.has_counter:
                continue
            data = channel.ring.snapshot()
            known = np.isfinite(data["energy_j"])
            counter = counter_window_energy(
                data["t_ns"][known], data["energy_j"][known], data["power_w"][known], t0_ns, t1_ns
            )
            integrated = sampled_window_energy(data["t_ns"], data["power_w"], t0_ns, t1_ns)
            rows.append(
                {
                    "source": channel.source.name,
                    "seconds": counter.seconds,
                    "counter_j": counter.joules if counter.known else None,
                    "counter_error_j": counter.error_j,
                    "integrated_power_j": integrated.joules,
                    "ratio": integrated.joules / counter.joules if counter.known and counter.joules > 0 else None,
                    "counter_updates": counter.n_updates,
                    "power_samples": integrated.n_updates,
                    "confident": counter.confident,
                    "low_confidence": counter.low_confidence_reason,
                }
            )
        return rows

    def _why_uncovered(self, channel: _Channel, t0_ns: int, t1_ns: int) -> str:
        name = channel.source.name
        errors = [e for e in self._errors if e.source == name]
        if errors and (channel.consecutive_errors or errors[-1].t_ns >= t0_ns):
            return f"power source {name} stopped answering ({errors[-1].message})"
        return f"power source {name} has no readings covering the window"
