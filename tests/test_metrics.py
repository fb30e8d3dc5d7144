"""Every figure from hand-computed traces, with exact expected values."""
import math

import numpy as np
import pytest

from tpw_desktop.metrics import (
    Span,
    combine,
    concat,
    counter_delta_uj,
    counter_window_energy,
    idle_power_w,
    integrate_power_j,
    latency,
    mean_sd,
    merge,
    phase_figures,
    sampled_window_energy,
    split_call,
)

S = 1_000_000_000  # ns per second
RAPL_WRAP_UJ = 262_143_328_850  # a real max_energy_range_uj


# --- counters -----------------------------------------------------------------------------


def test_counter_delta_without_wrap():
    assert counter_delta_uj(100, 250, RAPL_WRAP_UJ) == 150
    assert counter_delta_uj(100, 250, None) == 150


def test_counter_delta_across_a_wrap():
    assert counter_delta_uj(RAPL_WRAP_UJ - 100, 50, RAPL_WRAP_UJ) == 150


def test_counter_going_backwards_without_a_range_is_an_error():
    with pytest.raises(ValueError, match="went backwards"):
        counter_delta_uj(500, 100, None)


# --- a step in power: 10 W for 2 s, then 30 W ---------------------------------------------

T = np.array([0, 1, 2, 3, 4]) * S
P = np.array([10.0, 10.0, 30.0, 30.0, 30.0])
E = np.array([0.0, 10.0, 30.0, 60.0, 90.0])  # a counter that saw the same power


def test_trapezoid_over_the_whole_trace():
    assert integrate_power_j(T, P, 0, 4 * S) == 90.0


def test_trapezoid_with_interpolated_edges():
    # (0.5 s, 10 W) (1 s, 10 W) (2 s, 30 W) (2.5 s, 30 W): 5 + 20 + 15
    assert integrate_power_j(T, P, S // 2, 5 * S // 2) == 40.0


def test_trapezoid_skips_failed_reads():
    p = P.copy()
    p[1] = math.nan  # the read at 1 s failed: bridge 0 s -> 2 s
    assert integrate_power_j(T, p, 0, 2 * S) == 40.0


def test_counter_window_is_the_difference_at_the_edges():
    w = counter_window_energy(T, E, P, S // 2, 5 * S // 2)
    assert w.joules == 40.0  # 45 - 5
    assert w.method == "counter"
    assert w.seconds == 2.0
    assert w.average_w == 20.0
    assert w.peak_w == 30.0
    assert (w.n_samples, w.n_updates) == (2, 1)
    assert w.confident is False  # 2 s but only one counter update inside


def test_sampled_window_keeps_the_source_label():
    w = sampled_window_energy(T, P, 0, 4 * S, method="estimated")
    assert (w.joules, w.method, w.peak_w, w.n_samples) == (90.0, "estimated", 30.0, 5)


def test_window_outside_the_samples_is_refused():
    with pytest.raises(ValueError, match="not covered"):
        counter_window_energy(T, E, P, 0, 5 * S)
    with pytest.raises(ValueError, match="ends before it starts"):
        integrate_power_j(T, P, 2 * S, S)


# --- a window shorter than one counter update -----------------------------------------------


def test_window_shorter_than_one_update_reads_zero_and_is_low_confidence():
    # NVML-like: sampled every 20 ms, the counter moves only every 100 ms.
    t = np.arange(0, 220, 20) * 1_000_000
    e = np.where(t >= 100_000_000, 10.0, 0.0)
    p = np.full(t.shape, 100.0)
    w = counter_window_energy(t, e, p, 20_000_000, 60_000_000)
    assert w.joules == 0.0
    assert w.n_updates == 0
    assert w.confident is False


@pytest.mark.parametrize(("seconds", "updates", "confident"), [(1.0, 10, True), (0.99, 10, False), (1.0, 9, False)])
def test_confidence_needs_a_second_and_ten_updates(seconds, updates, confident):
    t = np.linspace(0, seconds, updates + 1) * S
    e = np.arange(updates + 1, dtype=float)
    w = counter_window_energy(t.astype(np.int64), e, np.ones_like(e), 0, int(t[-1]))
    assert w.n_updates == updates
    assert w.confident is confident


# --- sums of sources and of spans -----------------------------------------------------------


def test_combining_sources_keeps_the_weakest_method():
    gpu = counter_window_energy(T, E, P, 0, 4 * S)
    cpu = sampled_window_energy(T, P / 10, 0, 4 * S, method="estimated")
    total = combine([gpu, cpu])
    assert total.joules == 99.0
    assert total.method == "estimated"
    assert total.peak_w == 33.0


def test_concatenating_spans_adds_time_and_energy():
    a = counter_window_energy(T, E, P, 0, S)
    b = counter_window_energy(T, E, P, 3 * S, 4 * S)
    both = concat([a, b])
    assert (both.joules, both.seconds, both.peak_w) == (40.0, 2.0, 30.0)


# --- idle, phases, efficiency -----------------------------------------------------------------


def test_idle_power_is_energy_over_time():
    assert idle_power_w(30.0, 3.0) == 10.0
    with pytest.raises(ValueError):
        idle_power_w(1.0, 0.0)


def test_phase_figures():
    f = phase_figures(100, 2.0, 50.0, method="counter", confident=True, peak_w=40.0, idle_w=10.0, price_per_kwh=0.30)
    assert f.tokens_per_s == 50.0
    assert f.average_w == 25.0
    assert f.tokens_per_j == 2.0
    assert f.tokens_per_j == f.tokens_per_s / f.average_w  # tokens/J is tokens/s per watt
    assert f.j_per_token == 0.5
    assert f.wh_per_1k_tokens == pytest.approx(0.5 * 1000 / 3600, rel=1e-15)
    assert f.cost_per_1m_tokens == pytest.approx(0.5e6 / 3.6e6 * 0.30, rel=1e-15)
    assert f.joules_above_idle == 30.0
    assert f.tokens_per_j_above_idle == pytest.approx(100 / 30, rel=1e-15)
    assert f.j_per_token_above_idle == 0.3
    assert (f.method, f.confident, f.peak_w) == ("counter", True, 40.0)


def test_phase_figures_without_idle_or_price():
    f = phase_figures(10, 1.0, 5.0, method="estimated", confident=False)
    assert f.joules_above_idle is None and f.tokens_per_j_above_idle is None and f.cost_per_1m_tokens is None


def test_phase_figures_with_no_tokens_are_nan_not_a_crash():
    f = phase_figures(0, 1.0, 5.0, method="counter", confident=True)
    assert math.isnan(f.j_per_token) and f.tokens_per_j == 0.0


def test_split_a_call_at_its_first_token():
    ms = 1_000_000
    phases = split_call(0, [100 * ms, 110 * ms, 130 * ms], prompt_tokens=50)
    assert phases["pp"].tokens == 50 and phases["pp"].spans == (Span(0, 100 * ms),)
    assert phases["tg"].tokens == 2 and phases["tg"].spans == (Span(100 * ms, 130 * ms),)
    assert phases["total"].tokens == 53 and phases["total"].spans == (Span(0, 130 * ms),)
    assert phases["pp"].tokens_per_s == 500.0
    assert phases["tg"].tokens_per_s == pytest.approx(2 / 0.03, rel=1e-12)


def test_split_a_call_with_one_token_has_no_generation_phase():
    assert set(split_call(0, [5], 3)) == {"pp", "total"}
    assert split_call(0, [], 3) == {}


def test_merge_phases_of_several_calls():
    a = split_call(0, [10, 20], 4)
    b = split_call(100, [130, 150, 160], 6)
    pp = merge([a["pp"], b["pp"]])
    assert pp.tokens == 10
    assert pp.spans == (Span(0, 10), Span(100, 130))
    assert pp.seconds == 40e-9


def test_latency_percentiles():
    ms = 1_000_000
    lat = latency([(0, [100 * ms, 110 * ms, 130 * ms])])
    assert lat.time_to_first_token_s == 0.1
    assert lat.inter_token_p50_ms == 15.0
    assert lat.inter_token_p95_ms == pytest.approx(19.5, rel=1e-12)
    assert lat.inter_token_p99_ms == pytest.approx(19.9, rel=1e-12)


def test_latency_pools_calls_but_never_spans_them():
    ms = 1_000_000
    lat = latency([(0, [100 * ms, 110 * ms]), (1000 * ms, [1300 * ms, 1330 * ms])])
    assert lat.time_to_first_token_s == pytest.approx(0.2, rel=1e-12)
    assert lat.inter_token_p50_ms == 20.0  # gaps 10 and 30, not the 1190 ms between calls


def test_latency_of_nothing():
    assert latency([]).time_to_first_token_s is None
    assert latency([(0, [5])]).inter_token_p50_ms is None


def test_mean_and_sample_sd_as_llama_bench():
    mean, sd = mean_sd([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5
    assert sd == pytest.approx(math.sqrt(5 / 3), rel=1e-15)
    assert mean_sd([7.0]) == (7.0, 0.0)


# --- live rates -----------------------------------------------------------------------------------

from tpw_desktop.metrics import rate, spread_tokens, trailing_sum  # noqa: E402


def test_a_prompt_is_spread_over_the_bins_its_span_covers():
    counts = np.zeros(4)
    # 100 tokens over [50 ms, 250 ms] with 100 ms bins: 25 + 50 + 25
    spread_tokens(counts, 50_000_000, 250_000_000, 100, 0, 100_000_000)
    assert counts.tolist() == [25.0, 50.0, 25.0, 0.0]


def test_a_token_counts_in_its_own_bin():
    counts = np.zeros(3)
    spread_tokens(counts, 150, 150, 1, 0, 100)
    spread_tokens(counts, 200, 200, 1, 0, 100)  # on an edge: the later bin
    assert counts.tolist() == [0.0, 1.0, 1.0]


def test_a_span_ending_on_an_edge_stays_in_its_bins():
    counts = np.zeros(3)
    spread_tokens(counts, 0, 200, 10, 0, 100)
    assert counts.tolist() == [5.0, 5.0, 0.0]


def test_trailing_sums():
    assert trailing_sum(np.array([1.0, 2.0, np.nan, 4.0]), 2).tolist() == [1.0, 3.0, 2.0, 4.0]


def test_rates_are_nan_without_a_denominator():
    out = rate(np.array([4.0, 1.0, 1.0]), np.array([2.0, 0.0, -1.0]))
    assert out[0] == 2.0 and np.isnan(out[1:]).all()


def test_json_never_carries_nan():
    import json

    from tpw_desktop import serialize

    text = serialize.dumps({"peak_w": float("nan"), "rates": [np.float64(2.5), np.inf], "n": np.int64(3)})
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in JSON")) == {
        "peak_w": None, "rates": [2.5, None], "n": 3}
