"""Every figure from hand-computed traces, with exact expected values."""

import math

import numpy as np
import pytest

from tpw_desktop.metrics import (
    IdleBaseline,
    Span,
    WindowEnergy,
    combine,
    concat,
    counter_delta_uj,
    counter_window_energy,
    idle_baseline,
    idle_power_w,
    integrate_power_j,
    latency,
    mean_sd,
    merge,
    phase_figures,
    pooled_figures,
    sampled_window_energy,
    split_call,
)

S = 1_000_000_000  # ns per second
MS = 1_000_000
RAPL_WRAP_UJ = 262_143_328_850  # a real max_energy_range_uj


def window(joules, seconds, *, method="counter", error_j=None, peak_w=None, n_updates=10, unknown=None):
    """A window as the sampler would hand it over, built by hand."""
    return WindowEnergy(
        joules=joules,
        seconds=seconds,
        method=method,
        error_j=error_j,
        n_spans=1,
        n_samples=10,
        n_updates=n_updates,
        peak_w=peak_w,
        unknown_reason=unknown,
    )


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
    assert (w.method, w.seconds, w.average_w, w.peak_w) == ("counter", 2.0, 20.0, 30.0)
    assert (w.n_samples, w.n_updates) == (2, 3)  # updates between the samples at 0 s and 3 s
    # one update a second, at the counter's mean power over the span +-2 s (90 J / 4 s)
    assert w.error_j == 22.5
    assert w.relative_error == 22.5 / 40.0
    assert w.confident is False
    assert w.low_confidence_reason.startswith("resolution error up to 56%")


def test_sampled_window_keeps_the_source_label():
    w = sampled_window_energy(T, P, 0, 4 * S, method="replayed")
    assert (w.joules, w.method, w.peak_w, w.n_samples) == (90.0, "replayed", 30.0, 5)
    assert w.error_j == 22.5  # one 1 s sample interval at the window's 22.5 W


def test_window_outside_the_samples_is_refused():
    with pytest.raises(ValueError, match="not covered"):
        counter_window_energy(T, E, P, 0, 5 * S)
    with pytest.raises(ValueError, match="ends before it starts"):
        integrate_power_j(T, P, 2 * S, S)


# --- resolution, confidence and unknown windows (issue 8: items 2, 8, 10) -------------------


def nvml_like(seconds=4.0, watts=100.0, update_ms=100, sample_ms=20):
    """Sampled every 20 ms; the counter moves only every 100 ms, by 100 ms of energy."""
    t = np.arange(0, round(seconds * 1000) + 1, sample_ms) * MS
    e = np.floor(t / (update_ms * MS)) * watts * update_ms / 1000
    return t, e, np.full(t.shape, watts)


def test_a_counter_that_did_not_move_is_unknown_not_zero():
    t, e, p = nvml_like()
    w = counter_window_energy(t, e, p, 20 * MS, 60 * MS)
    assert w.n_updates == 0
    assert w.known is False and w.average_w is None
    assert w.unknown_reason == "no counter update in the 40 ms window"
    f = phase_figures(5, w, price_per_kwh=0.3)
    assert f.joules is None and f.average_w is None and f.tokens_per_j is None and f.cost_per_1m_tokens is None
    assert f.unknown["tokens_per_j"] == "no counter update in the 40 ms window"
    assert f.tokens_per_s == 5 / 0.04  # speed is still known
    assert f.peak_w == 100.0 and "peak_w" not in f.unknown  # the power reading is


def test_a_counter_of_events_that_did_not_move_counted_none():
    """The estimate counts busy CPU ticks: still means idle, not 'not updated yet'."""
    t, e, p = nvml_like()
    w = counter_window_energy(t, e, p, 20 * MS, 60 * MS, still_means_zero=True)
    assert w.known and w.joules == 0.0 and w.error_j is not None


@pytest.mark.parametrize(("t0_ms", "t1_ms", "confident"), [(500, 1500, True), (500, 1400, False), (500, 2000, True)])
def test_confidence_is_one_update_against_the_window(t0_ms, t1_ms, confident):
    t, e, p = nvml_like()
    w = counter_window_energy(t, e, p, t0_ms * MS, t1_ms * MS)
    assert w.error_j == 10.0  # one 100 ms update at 100 W
    assert w.joules == (t1_ms - t0_ms) / 10
    assert w.confident is confident  # 1 s: exactly 10%; 0.9 s: 11%


def test_twelve_short_calls_are_judged_by_the_sum_of_their_errors():
    """The agentic burst: 12 spans of 0.12 s with a 100 ms counter add up to 1.44 s but err by up to 83%."""
    t, e, p = nvml_like()
    spans = [counter_window_energy(t, e, p, k * 300 * MS + 10 * MS, k * 300 * MS + 130 * MS) for k in range(12)]
    phase = concat(spans)
    assert phase.seconds == pytest.approx(1.44, rel=1e-12)
    assert phase.n_spans == 12
    # 12 x one 10 J update (the local power is read off the stepping counter itself: within 1%)
    assert phase.error_j == pytest.approx(120.0, rel=0.01)
    assert phase.confident is False
    assert "over 12 spans" in phase.low_confidence_reason
    # the same 1.44 s as one window is confident: one update's error against 144 J
    assert counter_window_energy(t, e, p, 10 * MS, 1450 * MS).confident is True


def test_a_span_with_no_update_inside_a_longer_phase_counts_as_zero_within_its_error():
    t, e, p = nvml_like()
    still = counter_window_energy(t, e, p, 20 * MS, 60 * MS)
    moving = counter_window_energy(t, e, p, 500 * MS, 1500 * MS)
    phase = concat([still, moving])
    assert phase.known and phase.joules == 100.0
    assert phase.error_j == pytest.approx(20.0, rel=0.03)  # one update each (local power off the steps)
    assert concat([still, still]).unknown_reason == "no counter update in 80 ms over 2 spans"


def test_an_estimate_is_never_confident():
    w = window(1000.0, 100.0, method="estimated", error_j=1.0)
    assert w.confident is False
    assert w.low_confidence_reason == "estimated: a model of CPU load x TDP, not a measurement"


@pytest.mark.parametrize(("seconds", "confident"), [(3, False), (6, True)])
def test_a_one_second_average_reading_needs_several_seconds(seconds, confident):
    t = np.arange(0, 10_001, 20) * MS
    p = np.full(t.shape, 200.0)
    w = sampled_window_energy(t, p, S, (1 + seconds) * S, resolution_s=0.5)
    assert w.error_j == 100.0  # half a second of 200 W
    assert w.confident is confident


# --- peaks (issue 8: item 3) ------------------------------------------------------------------


def test_a_window_between_two_samples_still_has_a_peak():
    w = counter_window_energy(T, E, P, 1_100 * MS, 1_200 * MS)
    assert w.n_samples == 0
    assert w.peak_w == pytest.approx(14.0, rel=1e-12)  # the interpolated edge at 1.2 s


def test_the_peak_of_several_spans_does_not_depend_on_their_order():
    a, b = window(10.0, 1.0, peak_w=None), window(10.0, 1.0, peak_w=42.0)
    assert concat([a, b]).peak_w == concat([b, a]).peak_w == 42.0
    assert combine([a, b]).peak_w is None  # a sum missing a part is not a sum


# --- sums of sources ------------------------------------------------------------------------


def test_combining_sources_keeps_the_weakest_method_and_adds_errors():
    gpu = counter_window_energy(T, E, P, 0, 4 * S)
    cpu = sampled_window_energy(T, P / 10, 0, 4 * S, method="estimated")
    total = combine([gpu, cpu], ["nvml:0", "estimate"])
    assert total.joules == 99.0
    assert total.method == "estimated"
    assert total.peak_w == 33.0
    assert total.error_j == gpu.error_j + cpu.error_j


def test_a_sum_with_an_unknown_part_is_unknown_and_names_it():
    ok, still = window(10.0, 0.04), window(0.0, 0.04, n_updates=0, unknown="no counter update in the 40 ms window")
    total = combine([ok, still], ["rapl:package-0", "nvml:0"])
    assert total.unknown_reason == "nvml:0: no counter update in the 40 ms window"


# --- idle and above idle (issue 8: item 4) ----------------------------------------------------


def test_idle_power_is_energy_over_time():
    assert idle_power_w(30.0, 3.0) == 10.0
    with pytest.raises(ValueError):
        idle_power_w(1.0, 0.0)
    idle = idle_baseline(window(30.0, 3.0, error_j=0.3), settle_s=2.0)
    assert (idle.power_w, idle.error_w, idle.settle_s, idle.method) == (10.0, 0.3 / 3.0, 2.0, "counter")
    assert idle_baseline(window(0.0, 3.0, unknown="no counter update in the 3000 ms window")) is None


def test_phase_figures():
    w = window(50.0, 2.0, error_j=1.0, peak_w=40.0)
    f = phase_figures(100, w, idle=IdleBaseline(10.0, 3.0, "counter", True, 0.1), price_per_kwh=0.30)
    assert f.tokens_per_s == 50.0
    assert f.average_w == 25.0
    assert f.tokens_per_j == 2.0
    assert f.tokens_per_j == f.tokens_per_s / f.average_w  # tokens/J is tokens/s per watt
    assert f.j_per_token == 0.5
    assert f.wh_per_1k_tokens == 0.5 * 1000 / 3600
    assert f.cost_per_1m_tokens == 0.5 * 1e6 / 3.6e6 * 0.30
    assert f.joules_above_idle == 30.0
    assert f.tokens_per_j_above_idle == 100 / 30
    assert f.j_per_token_above_idle == 0.3
    assert (f.method, f.confident, f.peak_w, f.joules_error, f.unknown) == ("counter", True, 40.0, 1.0, {})


def test_figures_without_idle_or_price_say_why():
    f = phase_figures(10, window(5.0, 1.0, method="estimated", error_j=0.5, peak_w=6.0))
    assert f.joules_above_idle is None and f.tokens_per_j_above_idle is None and f.cost_per_1m_tokens is None
    assert f.unknown == {
        "joules_above_idle": "no idle baseline was measured",
        "tokens_per_j_above_idle": "no idle baseline was measured",
        "j_per_token_above_idle": "no idle baseline was measured",
        "cost_per_1m_tokens": "no electricity price was given",
    }
    g = phase_figures(10, window(5.0, 1.0), idle_reason="the idle baseline was turned off")
    assert g.unknown["tokens_per_j_above_idle"] == "the idle baseline was turned off"


@pytest.mark.parametrize("idle_w", [100.0, 99.999, 120.0, 96.0])
def test_a_run_within_noise_of_idle_is_not_measurable_above_idle(idle_w):
    """Run power at, just above or below idle: never NaN, a 10^15 residue or a negative J/token."""
    f = phase_figures(64, window(100.0, 1.0, error_j=1.0), idle=IdleBaseline(idle_w, 3.0, "counter", True, 0.0))
    assert f.joules_above_idle is None and f.tokens_per_j_above_idle is None and f.j_per_token_above_idle is None
    assert f.unknown["tokens_per_j_above_idle"].startswith("not measurable: 100.0 W during the window is within noise")
    assert f.tokens_per_j == 0.64  # the whole-power figure stands


def test_the_noise_floor_includes_both_error_bounds():
    idle = IdleBaseline(80.0, 3.0, "counter", True, error_w=2.0)
    # 100 J over 1 s: 20 J above idle against 5% (5 J) but errors of 15 + 2 x 1 J = 17 J: measurable
    assert phase_figures(10, window(100.0, 1.0, error_j=15.0), idle=idle).joules_above_idle == 20.0
    # errors of 19 + 2 = 21 J: not
    assert phase_figures(10, window(100.0, 1.0, error_j=19.0), idle=idle).joules_above_idle is None


def test_figures_with_no_tokens_are_unknown_not_a_crash():
    f = phase_figures(0, window(5.0, 1.0))
    assert f.j_per_token is None and f.tokens_per_j is None
    assert f.unknown["j_per_token"] == "no tokens in this window"


def test_zero_joules_is_not_infinite_efficiency():
    f = phase_figures(10, window(0.0, 1.0, method="sampled", error_j=0.0))
    assert f.tokens_per_j is None and f.confident is False
    assert f.unknown["tokens_per_j"] == "the source measured no energy in this window (0 J)"


# --- pooling repetitions (issue 8: item 5) ---------------------------------------------------------


def test_a_test_pools_tokens_over_joules_instead_of_averaging_ratios():
    """Two repetitions 8 J and 0.001 J above a 1 W idle: the mean of ratios was 50,006 tok/J."""
    idle = IdleBaseline(1.0, 3.0, "counter", True, 0.0)
    reps = [(100, window(9.0, 1.0, error_j=0.01)), (100, window(1.001, 1.0, error_j=0.01))]
    assert [phase_figures(n, w, idle=idle).tokens_per_j_above_idle for n, w in reps] == [12.5, None]
    pooled = pooled_figures(reps, idle=idle)
    assert pooled.tokens == 200 and pooled.seconds == 2.0
    assert pooled.tokens_per_j == 200 / (9.0 + 1.001)
    assert pooled.tokens_per_j_above_idle == 200 / ((9.0 + 1.001) - 1.0 * 2.0)
    assert pooled.joules_error == 0.02


# --- phases (issue 8: item 6) -------------------------------------------------------------------------


def test_split_a_call_at_the_end_of_its_prompt():
    phases = split_call(0, 100 * MS, 130 * MS, prompt_tokens=50, generated_tokens=3, decodes=2)
    assert phases["pp"].tokens == 50 and phases["pp"].spans == (Span(0, 100 * MS),)
    assert phases["tg"].tokens == 2 and phases["tg"].spans == (Span(100 * MS, 130 * MS),)
    assert phases["total"].tokens == 53 and phases["total"].spans == (Span(0, 130 * MS),)
    assert phases["pp"].tokens_per_s == 500.0
    assert phases["tg"].tokens_per_s == 2 / 0.03


def test_a_call_ending_on_end_of_text_keeps_its_last_decode():
    """3 tokens returned, then end-of-text: 3 decodes, the window ends when the third one returned."""
    phases = split_call(0, 100 * MS, 145 * MS, prompt_tokens=50, generated_tokens=3, decodes=3)
    assert phases["tg"].tokens == 3 and phases["tg"].spans == (Span(100 * MS, 145 * MS),)
    assert phases["total"].spans == (Span(0, 145 * MS),)


def test_a_call_with_one_token_has_no_generation_phase():
    assert set(split_call(0, 5, 5, 3, 1, 0)) == {"pp", "total"}


def test_merge_phases_of_several_calls():
    a = split_call(0, 10, 20, 4, 2, 1)
    b = split_call(100, 130, 160, 6, 3, 2)
    pp = merge([a["pp"], b["pp"]])
    assert pp.tokens == 10
    assert pp.spans == (Span(0, 10), Span(100, 130))
    assert pp.seconds == 40e-9


# --- latency and spread -------------------------------------------------------------------------------


def test_latency_percentiles():
    lat = latency([(0, [100 * MS, 110 * MS, 130 * MS])])
    assert lat.time_to_first_token_s == 0.1
    assert lat.inter_token_p50_ms == 15.0
    assert lat.inter_token_p95_ms == pytest.approx(19.5, rel=1e-12)
    assert lat.inter_token_p99_ms == pytest.approx(19.9, rel=1e-12)


def test_latency_pools_calls_but_never_spans_them():
    lat = latency([(0, [100 * MS, 110 * MS]), (1000 * MS, [1300 * MS, 1330 * MS])])
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
    assert mean_sd([None, 3.0, None, 5.0]) == (4.0, math.sqrt(2))  # unknown repetitions are left out
    assert mean_sd([None]) == (None, None)


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
        "peak_w": None,
        "rates": [2.5, None],
        "n": 3,
    }


def test_the_weakest_method_decides_and_nothing_measured_is_an_estimate():
    from tpw_desktop.metrics import weakest_method

    assert weakest_method(["counter", "sampled"]) == "sampled"
    assert weakest_method(iter(["counter", "replayed", "sampled"])) == "replayed"
    assert weakest_method(["sampled", "estimated", "counter"]) == "estimated"
    assert weakest_method([]) == "estimated"


def test_an_edge_inside_a_gap_in_the_readings_carries_the_gap_in_its_error_bound():
    """Issue 17: readings missing from 2.0 to 3.5 s (failed reads); power steps from 50 to 200 W inside the gap."""
    t = np.arange(0, 10_000_000_001, 20_000_000, dtype=np.int64)  # 50 Hz for 10 s
    power = np.where(t < 2_750_000_000, 50.0, 200.0)
    gap = (t > 2_000_000_000) & (t < 3_500_000_000)
    p = np.where(gap, np.nan, power)
    inside = sampled_window_energy(t, p, 2_500_000_000, 6_000_000_000)
    clear = sampled_window_energy(t, p, 4_000_000_000, 6_000_000_000)
    assert inside.edge_gap_s == pytest.approx(1.5) and clear.edge_gap_s == 0.0
    assert clear.error_j == pytest.approx(200.0 * 0.02, rel=1e-9) and clear.confident
    assert inside.error_j == pytest.approx(inside.average_w * (0.02 + 1.5), rel=1e-9)
    truth = 50.0 * 0.25 + 200.0 * 3.25  # the step at 2.75 s, where no reading saw it
    assert abs(inside.joules - truth) <= inside.error_j  # off, and the bound says by how much it may be
    assert abs(inside.joules - truth) > 0.02 * inside.average_w  # more than one reading's worth: the gap's doing
    assert not inside.confident and "fell in a 1.5 s gap in the power readings" in inside.low_confidence_reason
    # a counter over the same gap: its reads failed, so the edge's place in the gap is as unknown
    energy = np.concatenate(([0.0], np.cumsum(power[1:] * 0.02)))
    e = np.where(gap, np.nan, energy)
    ok = np.isfinite(e)
    w = counter_window_energy(t[ok], e[ok], power[ok], 2_500_000_000, 6_000_000_000, update_s=0.02)
    assert w.edge_gap_s == pytest.approx(1.5) and not w.confident and abs(w.joules - truth) <= w.error_j


def test_a_replayed_ramp_is_integrated_exactly_at_any_time():
    """Issue 17: the replay's counter is the exact integral of its piecewise-linear power, not a straight line."""
    from tpw_desktop.power import PowerTrace

    trace = PowerTrace(np.array([0.0, 10.0, 20.0]), np.array([0.0, 100.0, 100.0]), None, "ramp.csv")
    for at, exact in ((0.0, 0.0), (2.5, 31.25), (5.0, 125.0), (10.0, 500.0), (12.5, 750.0), (20.0, 1500.0)):
        assert trace.energy_at(at) == pytest.approx(exact, rel=1e-12, abs=1e-12)
    # the energy between two reads, over their time, is the power replayed in between
    assert (trace.energy_at(6.0) - trace.energy_at(4.0)) / 2.0 == pytest.approx(50.0, rel=1e-12)
