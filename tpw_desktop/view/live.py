"""What the live charts show, kept without Qt so it can be tested and timed alone.

The GUI timer feeds it new power samples (pulled from the sampler's ring
buffers) and the run's typed events (call starts, tokens, phase edges,
settle/idle marks); it keeps
them on a 250 ms grid, updated incrementally, so a refresh never rescans an
hour of history. Views slice the visible time range and decimate it to a
few points per pixel column before anything reaches pyqtgraph.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..metrics import rate, spread_tokens, trailing_sum, weakest_method
from ..metrics.efficiency import MIN_ABOVE_IDLE_SHARE
from ..record.token import TokenEvent
from ..run.events import CallStarted, Marked, PhaseEnded

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


class LiveSeries:
    """Power, tokens and phases since ``origin_ns``, on the engine's clock, fed the run's typed events."""

    def __init__(self, sources: list[tuple[str, str]], origin_ns: int):
        """``sources``: (name, method) of each power source, in sampler order."""
        self.sources = sources
        self.origin_ns = origin_ns
        self.method = weakest_method(m for _, m in sources)
        self._t = [_Growing(np.int64) for _ in sources]
        self._p = [_Growing(np.float64) for _ in sources]
        self._bin_power_sum = [_Growing(np.float64) for _ in sources]
        self._bin_power_n = [_Growing(np.float64) for _ in sources]
        self._bin_tokens = _Growing(np.float64)
        # The live "this run" figures count only measured pp/tg spans, as the
        # run's results do (no settle, idle or warm-up): their tokens, and the
        # share of each bin they cover.
        self._bin_measured_tokens = _Growing(np.float64)
        self._bin_measured = _Growing(np.float64)
        self.phases: list[PhaseSpan] = []
        self._in_warmup = False
        self.idle_w: float | None = None
        self.run_start_ns: int | None = None
        self.run_end_ns: int | None = None
        self.last_ttft_s: float | None = None
        self.latest_ns = origin_ns

    # --- input -----------------------------------------------------------------------------

    def _bin(self, t_ns: np.ndarray | int):
        return (np.asarray(t_ns) - self.origin_ns) // BIN_NS

    def _ensure_bins(self, n_bins: int) -> None:
        for g in (
            *self._bin_power_sum,
            *self._bin_power_n,
            self._bin_tokens,
            self._bin_measured,
            self._bin_measured_tokens,
        ):
            g.ensure(n_bins)
            g.n = max(g.n, n_bins)

    def add_samples(self, index: int, t_ns: np.ndarray, power_w: np.ndarray) -> None:
        keep = t_ns >= self.origin_ns
        t_ns, power_w = t_ns[keep], power_w[keep]
        if not len(t_ns):
            return
        self._t[index].extend(t_ns)
        self._p[index].extend(power_w)
        self.latest_ns = max(self.latest_ns, int(t_ns[-1]))
        bins = self._bin(t_ns)
        self._ensure_bins(int(bins[-1]) + 1)
        ok = np.isfinite(power_w)
        np.add.at(self._bin_power_sum[index].raw, bins[ok], power_w[ok])
        np.add.at(self._bin_power_n[index].raw, bins[ok], 1)

    def sample_times_ns(self, index: int) -> np.ndarray:
        """Every sample of source ``index`` that reached the window: what a soak compares the store against."""
        return self._t[index].view()

    def run_started(self, t_ns: int) -> None:
        self.run_start_ns, self.run_end_ns = t_ns, None

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
                self._call_started(event)
            elif isinstance(event, PhaseEnded):
                self._phase_ended(event)
            elif isinstance(event, Marked):
                self._close_open_span(event.t_start_ns)
                self.phases.append(PhaseSpan(event.kind, event.t_start_ns, event.t_end_ns))
        self.add_tokens(token_times)
        return texts

    def _call_started(self, event: CallStarted) -> None:
        self._close_open_span(event.t_ns)
        self._in_warmup = event.warmup
        kind = "warmup" if event.warmup else ("tg" if event.kind == "tg" else "pp")
        self.phases.append(PhaseSpan(kind, event.t_ns, None))

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
            self.phases.append(span := PhaseSpan("tg", t_ns[0], None))
        self.latest_ns = max(self.latest_ns, t_ns[-1])

    def _phase_ended(self, event: PhaseEnded) -> None:
        """A measured span's exact edges: prompt tokens spread over it, and its share of the bins."""
        t0, t1 = event.t_start_ns, event.t_end_ns
        self._ensure_bins(int(self._bin(max(t0, t1))) + 1)
        if event.phase == "pp":
            spread_tokens(self._bin_tokens.raw, t0, t1, event.tokens, self.origin_ns, BIN_NS)
        if not event.warmup and t1 > t0:
            spread_tokens(self._bin_measured.raw, t0, t1, (t1 - t0) / BIN_NS, self.origin_ns, BIN_NS)
            spread_tokens(self._bin_measured_tokens.raw, t0, t1, event.tokens, self.origin_ns, BIN_NS)
        span = self.phases[-1] if self.phases else None
        if span is not None and span.kind == ("warmup" if event.warmup else event.phase):
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
        t, p = self._t[index].view(), self._p[index].view()
        s = self._slice(t, x0_s, x1_s)
        return decimate_minmax(self.seconds(t[s]), p[s], max_points)

    def _bin_range(self, x0_s: float, x1_s: float) -> slice:
        n = self._bin_tokens.n
        lo = max(int(x0_s * 1e9 // BIN_NS) - ROLLING_BINS, 0)
        hi = min(int(x1_s * 1e9 // BIN_NS) + 2, n)
        return slice(lo, max(lo, hi))

    def _total_power_bins(self) -> np.ndarray:
        total = np.zeros(self._bin_tokens.n)
        for s, n in zip(self._bin_power_sum, self._bin_power_n):
            total += rate(s.view(), n.view())  # mean per bin; NaN where a source had no reading
        return total

    def bin_series(self, x0_s: float, x1_s: float) -> dict[str, np.ndarray]:
        """Per-bin series for the visible range: rates, watts and tokens per joule."""
        n = self._bin_tokens.n
        if n == 0:
            empty = np.zeros(0)
            return dict.fromkeys(
                ("x", "tok_s", "tok_s_rolling", "tok_j_rolling", "tok_j_run", "tok_j_run_above_idle"), empty
            )
        bin_s = BIN_NS / 1e9
        tokens = self._bin_tokens.view()
        power = self._total_power_bins()
        joules = power * bin_s
        rolling_tokens = trailing_sum(tokens, ROLLING_BINS)
        rolling_joules = trailing_sum(joules, ROLLING_BINS)
        rolling_seconds = np.minimum(np.arange(1, n + 1), ROLLING_BINS) * bin_s
        x = (np.arange(n) + 1) * bin_s  # a bin's value is known at its end
        series = {
            "x": x,
            "tok_s": tokens / bin_s,
            "tok_s_rolling": rolling_tokens / rolling_seconds,
            "tok_j_rolling": rate(rolling_tokens, rolling_joules),
        }
        series.update(self._run_cumulative(self._bin_measured_tokens.view(), joules, self._bin_measured.view(), bin_s))
        s = self._bin_range(x0_s, x1_s)
        return {k: v[s] for k, v in series.items()}

    def _run_cumulative(self, tokens, joules, measured, bin_s) -> dict[str, np.ndarray]:
        """Tokens over the energy spent inside the run's measured spans, cumulatively."""
        n = len(tokens)
        run = np.full(n, np.nan)
        above = np.full(n, np.nan)
        if self.run_start_ns is not None:
            first = int(self._bin(self.run_start_ns))
            last = n if self.run_end_ns is None else min(n, int(self._bin(self.run_end_ns)) + 1)
            if last > first:
                share = measured[first:last]
                cum_tokens = np.cumsum(tokens[first:last])
                cum_joules = np.cumsum(np.nan_to_num(joules[first:last]) * share)
                run[first:last] = rate(cum_tokens, cum_joules)
                if self.idle_w is not None:
                    cum_above = cum_joules - self.idle_w * np.cumsum(share) * bin_s
                    # Until the run has spent a real share above idle, this ratio divides
                    # by noise around zero: leave it blank rather than draw a spike.
                    cum_above[cum_above < MIN_ABOVE_IDLE_SHARE * cum_joules] = np.nan
                    above[first:last] = rate(cum_tokens, cum_above)
        return {"tok_j_run": run, "tok_j_run_above_idle": above}

    # --- tiles ---------------------------------------------------------------------------------

    def live_figures(self) -> dict[str, float | None]:
        """Latest rolling rate and power, and the current run's cumulative efficiency."""
        series = self.bin_series(max(self.now_s - 3, 0), self.now_s + 1)
        last = {k: (float(v[-2]) if len(v) > 1 else math.nan) for k, v in series.items()}  # the last full bin
        run = [v for v in series["tok_j_run"] if np.isfinite(v)]
        power = self._total_power_bins()
        recent_power = power[-ROLLING_BINS - 1 : -1] if len(power) > 1 else power
        recent_power = recent_power[np.isfinite(recent_power)]
        return {
            "tok_s": last.get("tok_s_rolling", math.nan),
            "power_w": float(recent_power.mean()) if len(recent_power) else math.nan,
            "tok_j": run[-1] if run else math.nan,
            "ttft_s": self.last_ttft_s,
        }
