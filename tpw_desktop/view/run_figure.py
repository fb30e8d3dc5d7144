"""This run's efficiency so far, computed as the saved figure is: over the exact phase edges, by ``metrics``.

Each measured span (a ``PhaseEnded`` of a repetition, not of a warm-up)
waits until every source has a valid sample past its end, as the sampler's
own window does; then its energy is ``metrics.source_energy`` of each
source, summed by ``metrics.combine``, exactly the run's code on the same
samples. The figure shown is the headline's (``record.results.headline``):
the first workload's whole calls, else the first generation test, else a
server's last level, else the phase that ran; pooled over its spans, as the
saved summary pools its repetitions. So the live tile and the saved figure
agree, and the tile never changes meaning when the run ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..metrics import IdleBaseline, PhaseFigures, WindowEnergy, combine, concat, phase_figures, source_energy
from ..record.results import headline
from ..record.vocab import Phase, TestKind
from ..run.events import PhaseEnded


@dataclass(frozen=True)
class SourceTrack:
    """How a source's samples make windows (its method, resolution and counter kind)."""

    name: str
    method: str
    resolution_s: float | None = None
    still_means_zero: bool = False


@dataclass(frozen=True)
class _Group:
    """The spans of one test and phase, as ``headline`` ranks summaries."""

    test: str
    kind: TestKind
    phase: Phase
    concurrency: int | None = None


@dataclass(frozen=True)
class RunSoFar:
    """This run's figure so far: which test and phase it is, and its figures pooled over its spans."""

    test: str
    kind: TestKind
    phase: Phase
    spans: int
    figures: PhaseFigures


@dataclass
class _Pooled:
    """One group's spans so far: their tokens and their windows concatenated (``metrics.concat`` adds)."""

    first: PhaseEnded
    spans: int
    tokens: int
    window: WindowEnergy
    series: list[tuple[int, PhaseFigures]]  # (span end, figures through that span)


@dataclass
class RunFigure:
    """Measured spans of the current run, pooled per test and phase as they are covered by samples."""

    tracks: list[SourceTrack]
    pending: list[PhaseEnded] = field(default_factory=list)
    groups: dict[_Group, _Pooled] = field(default_factory=dict)

    def add(self, event: PhaseEnded) -> None:
        if event.repetition >= 0 and event.t_end_ns > event.t_start_ns:
            self.pending.append(event)

    def reset(self) -> None:
        self.pending.clear()
        self.groups.clear()

    def update(self, samples, covered_ns: int | None, idle: IdleBaseline | None) -> None:
        """Compute the windows of the spans every source now covers; ``samples(i)`` gives source i's
        (t_ns, power_w, energy_j, has_counter); ``covered_ns`` is the newest time they all cover."""
        if covered_ns is None:
            return
        ready = [e for e in self.pending if e.t_end_ns <= covered_ns]
        if not ready:
            return
        self.pending = [e for e in self.pending if e.t_end_ns > covered_ns]
        for event in ready:
            window = self._window(event, samples)
            if window is None:
                continue
            key = _Group(event.test, event.kind, event.phase)
            pooled = self.groups.get(key)
            if pooled is None:
                pooled = self.groups[key] = _Pooled(event, 1, event.tokens, window, [])
            else:
                pooled.spans += 1
                pooled.tokens += event.tokens
                pooled.window = concat([pooled.window, window])
            pooled.series.append((event.t_end_ns, phase_figures(pooled.tokens, pooled.window, idle=idle)))

    def _window(self, event: PhaseEnded, samples) -> WindowEnergy | None:
        """The span's energy, every source's summed (None when a source's samples don't reach it)."""
        windows = []
        for i, track in enumerate(self.tracks):
            t, p, e, has_counter = samples(i)
            try:
                windows.append(
                    source_energy(
                        t,
                        p,
                        e,
                        [(event.t_start_ns, event.t_end_ns)],
                        track.method,
                        has_counter=has_counter,
                        resolution_s=track.resolution_s,
                        still_means_zero=track.still_means_zero,
                    )
                )
            except ValueError:  # samples out of reach (a source that stopped answering): no figure for it
                return None
        return combine(windows, [t.name for t in self.tracks])

    def chosen(self) -> _Pooled | None:
        """The headline's group: a server's last level, else ``headline``'s pick among the groups."""
        if not self.groups:
            return None
        servers = [g for g in self.groups if g.kind == "server"]
        if servers:  # levels run in increasing concurrency: the last one is the busiest yet
            return self.groups[servers[-1]]
        return self.groups[headline(list(self.groups))]

    def figures(self, idle: IdleBaseline | None, price_per_kwh: float | None) -> RunSoFar | None:
        """The headline's figures pooled over its spans so far, or None before the first span."""
        pooled = self.chosen()
        if pooled is None:
            return None
        first = pooled.first
        figures = phase_figures(pooled.tokens, pooled.window, idle=idle, price_per_kwh=price_per_kwh)
        return RunSoFar(first.test, first.kind, first.phase, pooled.spans, figures)

    @property
    def series(self) -> list[tuple[int, PhaseFigures]]:
        pooled = self.chosen()
        return pooled.series if pooled else []
