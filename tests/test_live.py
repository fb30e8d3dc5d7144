"""The live chart model (no Qt): exact series from a hand-made run."""

import numpy as np
import pytest

from tpw_desktop.record.token import TokenEvent
from tpw_desktop.run.events import CallStarted, Marked, PhaseEnded
from tpw_desktop.view.live import BIN_NS, LiveSeries, decimate_minmax

S = 1_000_000_000


def token(t_ns, i=0):
    return TokenEvent(t_ns, i, 5, "x")


def constant_power_run(watts=100.0):
    """0-1 s idle, a warm-up at 1-2 s, then one workload call: 100 prompt tokens over [3 s, 4 s], 11 tokens to 5 s."""
    live = LiveSeries([("meter", "counter")], origin_ns=0)
    t = np.arange(0, 10 * S + 1, S // 50, dtype=np.int64)  # 50 Hz for 10 s
    live.add_samples(0, t, np.full(t.shape, watts))
    live.run_started(0)
    live.feed(
        [
            Marked("idle", 0, 1 * S),
            CallStarted("w", "workload", -1, 0, 10, 1 * S),
            token(2 * S),
            PhaseEnded("w", -1, 0, "pp", 1 * S, 2 * S, 10),
        ]
    )
    tokens = [4 * S + k * S // 10 for k in range(11)]
    live.feed(
        [
            CallStarted("w", "workload", 0, 0, 100, 3 * S),
            *(token(t, i) for i, t in enumerate(tokens)),
            PhaseEnded("w", 0, 0, "pp", 3 * S, 4 * S, 100),
            PhaseEnded("w", 0, 0, "tg", 4 * S, 5 * S, 10),
        ]
    )
    live.run_ended(6 * S)
    return live


def test_phases_come_from_the_run_events():
    live = constant_power_run()
    assert [(p.kind, p.t0_ns / S, p.t1_ns / S) for p in live.phases] == [
        ("idle", 0.0, 1.0),
        ("warmup", 1.0, 2.0),
        ("pp", 3.0, 4.0),
        ("tg", 4.0, 5.0),
    ]  # the warm-up ends with its work
    assert live.last_ttft_s == 1.0


def test_this_run_counts_only_measured_spans_not_idle_or_warmup():
    live = constant_power_run(100.0)
    series = live.bin_series(0, 10)
    run = series["tok_j_run"][np.isfinite(series["tok_j_run"])]
    # 100 prompt tokens + 10 decodes over the 2 s of pp + tg at 100 W; idle and warm-up are left out
    assert run[-1] == pytest.approx(110 / 200.0, rel=1e-12)


def test_above_idle_subtracts_idle_over_measured_time_only():
    live = constant_power_run(100.0)
    live.idle_w = 40.0
    series = live.bin_series(0, 10)
    above = series["tok_j_run_above_idle"][np.isfinite(series["tok_j_run_above_idle"])]
    assert above[-1] == pytest.approx(110 / (200.0 - 40.0 * 2), rel=1e-12)


def test_prompt_tokens_are_spread_over_their_span():
    live = constant_power_run()
    series = live.bin_series(0, 10)
    per_bin = series["tok_s"] * BIN_NS / 1e9
    bins_3_to_4 = per_bin[12:16]  # [3 s, 4 s) is 4 bins of 250 ms
    assert bins_3_to_4.tolist() == [25.0, 25.0, 25.0, 25.0]
    assert per_bin.sum() == pytest.approx(122)  # the warm-up's 10 + 1 tokens are on the speed chart too


def test_rolling_rate_of_generation():
    live = constant_power_run()
    series = live.bin_series(0, 10)
    i = int(5 * S // BIN_NS)  # the bin ending at 5.25 s
    # rolling 2 s at 5.25 s covers [3.25, 5.25): 75 prompt tokens + 11 generated
    assert series["tok_s_rolling"][i] == pytest.approx(86 / 2.0)


def test_a_pp_test_without_tokens_is_closed_with_its_real_edges():
    live = LiveSeries([("meter", "counter")], origin_ns=0)
    live.feed([CallStarted("pp512", "pp", 0, 0, 512, 1 * S), PhaseEnded("pp512", 0, 0, "pp", S + S // 4, 2 * S, 512)])
    assert [(p.kind, p.t0_ns, p.t1_ns) for p in live.phases] == [("pp", S + S // 4, 2 * S)]


def test_a_tg_test_is_generation_from_its_first_decode():
    live = LiveSeries([("meter", "counter")], origin_ns=0)
    live.feed(
        [
            CallStarted("tg4", "tg", 0, 0, 0, 1 * S),
            *(token(S + k * S // 10, k) for k in range(1, 5)),
            PhaseEnded("tg4", 0, 0, "tg", 1 * S, S + 4 * S // 10, 4),
        ]
    )
    assert [(p.kind, p.t0_ns, p.t1_ns) for p in live.phases] == [("tg", S, S + 4 * S // 10)]
    assert live.last_ttft_s is None


def test_views_slice_the_visible_range():
    live = constant_power_run()
    x, y = live.power_series(0, 2.0, 3.0, max_points=10_000)
    assert x[0] <= 2.0 and x[-1] >= 3.0 and len(x) < 60  # one sample beyond each edge, not the whole trace


def test_decimation_keeps_the_peaks():
    x = np.arange(100_000, dtype=float)
    y = np.sin(x / 1000)
    y[54_321] = 50.0
    y[12_345] = -50.0
    xs, ys = decimate_minmax(x, y, 1000)
    assert len(xs) <= 1000
    assert ys.max() == 50.0 and ys.min() == -50.0
    assert np.all(np.diff(xs) >= 0)
