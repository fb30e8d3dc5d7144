"""What the live charts and tiles show, kept without Qt so it can be tested and timed alone.

The GUI timer feeds it new power samples (with their energy) pulled from
the measuring process, and the run's typed events (call starts, tokens,
phase edges, settle/idle marks). Rates are kept on a 250 ms grid, updated
incrementally, so a refresh never rescans an hour of history; each bin's
joules are the difference of a source's cumulative energy at the bin's
edges (its counter, or ``metrics``' integral of its power). This run's
efficiency is ``run_figure``'s: the saved figure's own code over the exact
phase edges. Views slice the visible time range and decimate it to a few
points per pixel column before anything reaches pyqtgraph.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..metrics import IdleBaseline, cumulative_trapezoid_j, rate, spread_tokens, trailing_sum, weakest_method
from ..record.calls import TokenEvent
from ..run.events import CallStarted, Marked, PhaseEnded
from .run_figure import RunFigure, RunSoFar, SourceTrack

BIN_NS = 250_000_000
ROLLING_BINS = 8  # rolling rates over the last 2 s


class _Growing:
    """A numpy column that grows by doubling; ``view`` is the filled part."""

    def __init__(self, dtype, fill=0.0, capacity: int = 4096):
        self._a = np.full(capacity, fill, dtype=dtype)
        self._fill = fill
        self.n = 0

    def extend(self, values: np.ndarray) -> None:
        need = self.n + len(values)
        self.ensure(need)
        self._a[self.n : need] = values
        self.n = need

    def ensure(self, length: int) -> None:
        if length > len(self._a):
            grown = np.full(max(length, 2 * len(self._a)), self._fill, dtype=self._a.dtype)
            grown[: len(self._a)] = self._a
            self._a = grown

    @property
    def raw(self) -> np.ndarray:
        return self._a

    def view(self) -> np.ndarray:
        return self._a[: self.n]


def decimate_minmax(x: np.ndarray, y: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` points that keep each bucket's min and max (peaks survive)."""
    n = len(x)
    if n <= max_points or max_points < 4:
        return x, y
    buckets = max_points // 2
    per = n // buckets
    cut = per * buckets
    yb = y[:cut].reshape(buckets, per)
    xb = x[:cut].reshape(buckets, per)
    finite = np.isfinite(yb)
    lo = np.where(finite, yb, np.inf).argmin(axis=1)
    hi = np.where(finite, yb, -np.inf).argmax(axis=1)
    first, second = np.minimum(lo, hi), np.maximum(lo, hi)
    rows = np.arange(buckets)
    xs = np.column_stack((xb[rows, first], xb[rows, second])).ravel()
    ys = np.column_stack((yb[rows, first], yb[rows, second])).ravel()
    return np.concatenate((xs, x[cut:])), np.concatenate((ys, y[cut:]))


@dataclass
class PhaseSpan:
    # "pp" | "tg" | "warmup" (unrecorded) | "settle" | "idle" | "cooldown": shown so no stretch is a mystery
    kind: str
    t0_ns: int
    t1_ns: int | None  # None while open


@dataclass(frozen=True)
class LiveFigures:
    """The tiles' latest figures: rolling speed and power, and this run's efficiency so far."""

    tok_s: float | None  # the last 2 s, every token (prompt tokens spread over their prompt's span)
    power_w: float | None  # the last 2 s
    run: RunSoFar | None  # None before the first measured span
    ttft_s: float | None
    # A prompt is evaluated in one go, its tokens timed only when it ends: while one runs, the
    # speed tile shows the last prompt's rate instead of a rolling 0.
    prompt_running: bool = False
    last_prompt_tok_s: float | None = None


def call_heading(call: CallStarted, first: bool = False) -> str:
    """The line an answer starts under in the output pane: which test, repetition and call."""
    which = "warm-up" if call.repetition < 0 else f"repetition {call.repetition + 1}"
    return f"{'' if first else chr(10) * 2}── {call.test} · {which} · call {call.call + 1} ──\n"


class _Source:
    """One source's samples, and the cumulative joules its bins are cut from."""

    def __init__(self):
        self.t, self.p, self.e = _Growing(np.int64), _Growing(np.float64), _Growing(np.float64)
        self.valid_t, self.cumulative_j = _Growing(np.int64), _Growing(np.float64)
        self.has_counter = False
        self._last_power: tuple[int, float] | None = None  # the newest good power reading, where the integral is

    def add(self, t_ns: np.ndarray, power_w: np.ndarray, energy_j: np.ndarray) -> None:
        self.t.extend(t_ns)
        self.p.extend(power_w)
        self.e.extend(energy_j)
        self.has_counter |= bool(np.isfinite(energy_j).any())
        if self.has_counter:  # the counter itself, where it was read
            ok = np.isfinite(energy_j)
            self.valid_t.extend(t_ns[ok])
            self.cumulative_j.extend(energy_j[ok])
            return
        ok = np.isfinite(power_w)
        t, p = t_ns[ok], power_w[ok]
        if not len(t):
            return
        start = 0.0
        if self._last_power is not None:  # the integral goes on from the newest good reading
            t = np.concatenate(([self._last_power[0]], t))
            p = np.concatenate(([self._last_power[1]], p))
            start = self.cumulative_j.view()[-1]
        joules = start + cumulative_trapezoid_j(t, p, per_s=1e9)
        skip = 1 if self._last_power is not None else 0
        self.valid_t.extend(t[skip:])
        self.cumulative_j.extend(joules[skip:])
        self._last_power = (int(t[-1]), float(p[-1]))

    @property
    def covered_ns(self) -> int | None:
        return int(self.valid_t.view()[-1]) if self.valid_t.n else None

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        return self.t.view(), self.p.view(), self.e.view(), self.has_counter


class LiveSeries:
    """Power, tokens and phases since ``origin_ns``, on the engine's clock, fed the run's typed events."""

    def __init__(
        self,
        sources: list[tuple[str, str]],
        origin_ns: int,
        *,
        resolutions_s: list[float | None] | None = None,
        still_means_zero: list[bool] | None = None,
    ):
        """``sources``: (name, method) of each power source, in sampler order."""
        self.sources = sources
        self.origin_ns = origin_ns
        self.method = weakest_method(m for _, m in sources)
        self._src = [_Source() for _ in sources]
        self._bin_tokens = _Growing(np.float64)
        self._bin_joules = _Growing(np.float64, fill=np.nan)
        self._bins_done = 0  # bins whose joules every source covers
        tracks = zip(sources, resolutions_s or [None] * len(sources), still_means_zero or [False] * len(sources))
        self.run_figure = RunFigure([SourceTrack(n, m, r, z) for (n, m), r, z in tracks])
        self.phases: list[PhaseSpan] = []
        self.idle: IdleBaseline | None = None
        self.run_start_ns: int | None = None
        self.run_end_ns: int | None = None
        self.last_ttft_s: float | None = None
        self.last_prompt_tok_s: float | None = None
        self._headed = False  # the output pane has had its first call's heading
        self.latest_ns = origin_ns

    @property
    def idle_w(self) -> float | None:
        return self.idle.power_w if self.idle else None

    # --- input -----------------------------------------------------------------------------

    def _bin(self, t_ns):
        return (np.asarray(t_ns) - self.origin_ns) // BIN_NS

    def _ensure_bins(self, n_bins: int) -> None:
        for g in (self._bin_tokens, self._bin_joules):
            g.ensure(n_bins)
            g.n = max(g.n, n_bins)

    def add_samples(self, index: int, t_ns: np.ndarray, power_w: np.ndarray, energy_j: np.ndarray | None = None):
        keep = t_ns >= self.origin_ns
        energy_j = np.full(len(t_ns), np.nan) if energy_j is None else energy_j
        t_ns, power_w, energy_j = t_ns[keep], power_w[keep], energy_j[keep]
        if not len(t_ns):
            return
        self._src[index].add(t_ns, power_w, energy_j)
        self.latest_ns = max(self.latest_ns, int(t_ns[-1]))
        self._ensure_bins(int(self._bin(t_ns[-1])) + 1)
        self._update_bins()
        self.run_figure.update(lambda i: self._src[i].arrays(), self._covered_ns(), self.idle)

    def _covered_ns(self) -> int | None:
        covered = [s.covered_ns for s in self._src]
        return None if None in covered else min(covered)

    def _update_bins(self) -> None:
        """Joules of each bin every source now covers: cumulative energy differenced at the bin's edges."""
        covered = self._covered_ns()
        if covered is None:
            return
        last = min(int(self._bin(covered)), self._bin_joules.n)  # bins ending at or before ``covered``
        if last <= self._bins_done:
            return
        edges = self.origin_ns + np.arange(self._bins_done, last + 1, dtype=np.int64) * BIN_NS
        total = np.zeros(len(edges) - 1)
        for s in self._src:
            t, c = s.valid_t.view(), s.cumulative_j.view()
            at = np.interp(edges, t, c, left=np.nan)  # before a source's first sample: unknown
            total += np.diff(at)
        self._bin_joules.raw[self._bins_done : last] = total
        self._bins_done = last

    def sample_times_ns(self, index: int) -> np.ndarray:
        """Every sample of source ``index`` that reached the window: what a soak compares the store against."""
        return self._src[index].t.view()

    def run_started(self, t_ns: int) -> None:
        self.run_start_ns, self.run_end_ns = t_ns, None
        self.run_figure.reset()

    def run_ended(self, t_ns: int) -> None:
        self.run_end_ns = t_ns
        for span in self.phases:
            if span.t1_ns is None:
                span.t1_ns = t_ns

    def feed(self, events: list) -> list[str]:
        """Take a batch of run events in order; returns the text of the tokens among them."""
        texts: list[str] = []
        token_times: list[int] = []
        for event in events:
            if isinstance(event, TokenEvent):
                token_times.append(event.t_ns)
                texts.append(event.text)
                continue
            self.add_tokens(token_times)
            token_times = []
            if isinstance(event, CallStarted):
                if event.kind != "pp":  # each answer on its own lines, named, never run into the last
                    texts.append(call_heading(event, first=not self._headed))
                    self._headed = True
                self._close_open_span(event.t_ns)
                kind = "warmup" if event.warmup else ("tg" if event.kind == "tg" else "pp")
                self.phases.append(PhaseSpan(kind, event.t_ns, None))
            elif isinstance(event, PhaseEnded):
                self._phase_ended(event)
            elif isinstance(event, Marked):
                self._close_open_span(event.t_start_ns)
                self.phases.append(PhaseSpan(event.kind, event.t_start_ns, event.t_end_ns))
        self.add_tokens(token_times)
        return texts

    def add_tokens(self, t_ns: list[int]) -> None:
        """Generated tokens in time order; the first of a call ends its prompt processing."""
        if not t_ns:
            return
        self._ensure_bins(int(self._bin(t_ns[-1])) + 1)
        np.add.at(self._bin_tokens.raw, self._bin(np.asarray(t_ns, dtype=np.int64)), 1)
        span = self.phases[-1] if self.phases else None
        if span is not None and span.kind == "pp" and span.t1_ns is None:
            span.t1_ns = t_ns[0]
            self.last_ttft_s = (t_ns[0] - span.t0_ns) / 1e9
            self.phases.append(PhaseSpan("tg", t_ns[0], None))
        self.latest_ns = max(self.latest_ns, t_ns[-1])

    def _phase_ended(self, event: PhaseEnded) -> None:
        """A measured span's exact edges: its window for this run's figure; a prompt's tokens spread over it."""
        self.run_figure.add(event)
        self.run_figure.update(lambda i: self._src[i].arrays(), self._covered_ns(), self.idle)
        if event.phase == "total" or event.kind == "server":
            return  # a call's total and a server's level are windows, not stretches of the charts
        t0, t1 = event.t_start_ns, event.t_end_ns
        self._ensure_bins(int(self._bin(max(t0, t1))) + 1)
        if event.phase == "pp":
            spread_tokens(self._bin_tokens.raw, t0, t1, event.tokens, self.origin_ns, BIN_NS)
            if t1 > t0:
                self.last_prompt_tok_s = event.tokens / ((t1 - t0) / 1e9)
        span = self.phases[-1] if self.phases else None
        if span is not None and span.kind == ("warmup" if event.repetition < 0 else event.phase):
            if event.phase == "pp" and span.kind == "pp":
                span.t0_ns = t0
            span.t1_ns = t1
        self.latest_ns = max(self.latest_ns, t1)

    def _close_open_span(self, t_ns: int) -> None:
        if self.phases and self.phases[-1].t1_ns is None:
            self.phases[-1].t1_ns = t_ns

    # --- views -------------------------------------------------------------------------------

    def seconds(self, t_ns) -> np.ndarray | float:
        return (np.asarray(t_ns) - self.origin_ns) / 1e9

    @property
    def now_s(self) -> float:
        return (self.latest_ns - self.origin_ns) / 1e9

    def _slice(self, t: np.ndarray, x0_s: float, x1_s: float) -> slice:
        lo = np.searchsorted(t, self.origin_ns + x0_s * 1e9, side="left")
        hi = np.searchsorted(t, self.origin_ns + x1_s * 1e9, side="right")
        return slice(max(lo - 1, 0), hi + 1)  # one point beyond each edge, so lines reach it

    def power_series(self, index: int, x0_s: float, x1_s: float, max_points: int) -> tuple[np.ndarray, np.ndarray]:
        t, p = self._src[index].t.view(), self._src[index].p.view()
        s = self._slice(t, x0_s, x1_s)
        return decimate_minmax(self.seconds(t[s]), p[s], max_points)

    def bin_series(self, x0_s: float, x1_s: float) -> dict[str, np.ndarray]:
        """Per-bin series for the visible range: token rates, and rolling tokens per joule (ratios of sums)."""
        n = self._bin_tokens.n
        if n == 0:
            return dict.fromkeys(("x", "tok_s", "tok_s_rolling", "tok_j_rolling"), np.zeros(0))
        lo = max(int(x0_s * 1e9 // BIN_NS) - ROLLING_BINS, 0)
        hi = max(lo, min(int(x1_s * 1e9 // BIN_NS) + 2, n))
        bin_s = BIN_NS / 1e9
        tokens = self._bin_tokens.view()[lo:hi]
        joules = self._bin_joules.view()[lo:hi]
        rolling_tokens = trailing_sum(tokens, ROLLING_BINS)
        rolling_joules = trailing_sum(joules, ROLLING_BINS)
        rolling_joules[~np.isfinite(joules)] = np.nan  # no rolling figure until the bin's energy is known
        rolling_seconds = np.minimum(np.arange(lo + 1, hi + 1), ROLLING_BINS) * bin_s
        return {
            "x": (np.arange(lo, hi) + 1) * bin_s,  # a bin's value is known at its end
            "tok_s": tokens / bin_s,
            "tok_s_rolling": rolling_tokens / rolling_seconds,
            "tok_j_rolling": rate(rolling_tokens, np.where(np.isfinite(rolling_joules), rolling_joules, 0.0)),
        }

    def run_series(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """This run's tokens per joule (and above idle) through each measured span, at its end."""
        points = self.run_figure.series
        x = np.array([self.seconds(t) for t, _ in points], dtype=np.float64)
        tok_j = np.array([np.nan if f.tokens_per_j is None else f.tokens_per_j for _, f in points])
        above = np.array(
            [np.nan if f.tokens_per_j_above_idle is None else f.tokens_per_j_above_idle for _, f in points]
        )
        return x, tok_j, above

    # --- tiles ---------------------------------------------------------------------------------

    def live_figures(self, price_per_kwh: float | None = None) -> LiveFigures:
        """Latest rolling rate and power (the last full bins), and this run's efficiency so far."""
        n = self._bins_done
        lo = max(0, n - ROLLING_BINS)
        joules = self._bin_joules.view()[lo:n]
        tokens = self._bin_tokens.view()[max(0, self._bin_tokens.n - 1 - ROLLING_BINS) : self._bin_tokens.n - 1]
        seconds = len(joules) * BIN_NS / 1e9
        power = float(np.sum(joules) / seconds) if seconds and np.isfinite(joules).all() else None
        speed = float(tokens.sum() / (len(tokens) * BIN_NS / 1e9)) if len(tokens) else None
        span = self.phases[-1] if self.phases else None
        return LiveFigures(
            speed,
            power,
            self.run_figure.figures(self.idle, price_per_kwh),
            self.last_ttft_s,
            prompt_running=span is not None and span.kind == "pp" and span.t1_ns is None,
            last_prompt_tok_s=self.last_prompt_tok_s,
        )
