"""The live chart model (no Qt): exact series from a hand-made run."""

import numpy as np
import pytest

from tpw_desktop.metrics import IdleBaseline
from tpw_desktop.record.calls import TokenEvent
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
            PhaseEnded("w", -1, 0, "pp", 1 * S, 2 * S, 10, "workload"),
        ]
    )
    tokens = [4 * S + k * S // 10 for k in range(11)]
    live.feed(
        [
            CallStarted("w", "workload", 0, 0, 100, 3 * S),
            *(token(t, i) for i, t in enumerate(tokens)),
            PhaseEnded("w", 0, 0, "pp", 3 * S, 4 * S, 100, "workload"),
            PhaseEnded("w", 0, 0, "tg", 4 * S, 5 * S, 10, "workload"),
            PhaseEnded("w", 0, 0, "total", 3 * S, 5 * S, 111, "workload"),
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


def test_this_run_is_the_workload_s_whole_calls_over_their_exact_spans():
    live = constant_power_run(100.0)
    run = live.live_figures().run
    # the headline of a workload is its whole calls: 100 prompt + 11 generated tokens over the 2 s of the call
    # at 100 W; the idle and the warm-up are left out
    assert (run.test, run.phase, run.spans) == ("w", "total", 1)
    assert run.figures.joules == pytest.approx(200.0, rel=1e-12)
    assert run.figures.tokens_per_j == pytest.approx(111 / 200.0, rel=1e-12)
    x, tok_j, _ = live.run_series()  # the headline's own points, one at the end of each of its spans
    assert x.tolist() == [5.0] and tok_j[-1] == run.figures.tokens_per_j


def test_above_idle_subtracts_idle_over_measured_time_only():
    live = LiveSeries([("meter", "sampled")], origin_ns=0)
    live.idle = IdleBaseline(40.0, 3.0, "sampled", True, 0.0)
    t = np.arange(0, 10 * S + 1, S // 50, dtype=np.int64)
    live.feed([CallStarted("tg8", "tg", 0, 0, 0, 3 * S), PhaseEnded("tg8", 0, 0, "tg", 3 * S, 5 * S, 110, "tg")])
    live.add_samples(0, t, np.full(t.shape, 100.0))
    figures = live.live_figures().run.figures
    assert figures.tokens_per_j_above_idle == pytest.approx(110 / (200.0 - 40.0 * 2), rel=1e-12)


def test_the_live_figure_is_the_saved_one_on_power_that_steps_at_the_phase_edges(tiny_engine, tmp_path):
    """Issue 18: the tile during a run and the saved figure are the same code over the same edges and samples."""
    import time

    from tpw_desktop.engine.workloads import TestSpec, get_workload
    from tpw_desktop.power import PowerTrace, ReplaySource, Sampler
    from tpw_desktop.record.meta import RunOptions
    from tpw_desktop.record.results import headline
    from tpw_desktop.run.session import MeasuredRun

    steps = np.arange(0, 120, 0.04)  # 30 W and 120 W in turn, a step every 40 ms: every phase edge is near one
    trace = tmp_path / "square.csv"
    trace.write_text(
        "t_s,power_w\n"
        + "".join(
            f"{t:.3f},{30 if i % 2 else 120}\n{t + 0.039:.3f},{30 if i % 2 else 120}\n" for i, t in enumerate(steps)
        )
    )
    source = ReplaySource(PowerTrace.load(trace), time.monotonic_ns)
    events = []
    tests = [TestSpec.of(get_workload("agentic")), TestSpec.tg(16)]
    with Sampler([source], rate_hz=200) as sampler:
        run = MeasuredRun(tiny_engine, sampler, RunOptions(repetitions=2, idle_s=0, settle_s=0), listener=events.append)
        report = run.run(tests)
        data = sampler.snapshot(0)
    live = LiveSeries([(source.name, source.method)], int(data["t_ns"][0]))
    live.feed(events)  # the events first and the samples after, as a batch may bring them
    for chunk in np.array_split(np.arange(len(data["t_ns"])), 7):
        live.add_samples(0, data["t_ns"][chunk], data["power_w"][chunk], data["energy_j"][chunk])
    saved = headline(report.summaries)
    shown = live.live_figures().run
    assert (shown.test, shown.phase) == (saved.test, saved.phase) == ("agentic", "total")
    assert shown.figures.tokens == saved.pooled.tokens
    assert shown.figures.joules == pytest.approx(saved.pooled.joules, rel=1e-9)
    assert shown.figures.tokens_per_j == pytest.approx(saved.pooled.tokens_per_j, rel=1e-9)
    assert shown.figures.confident == saved.pooled.confident


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
    live.feed(
        [CallStarted("pp512", "pp", 0, 0, 512, 1 * S), PhaseEnded("pp512", 0, 0, "pp", S + S // 4, 2 * S, 512, "pp")]
    )
    assert [(p.kind, p.t0_ns, p.t1_ns) for p in live.phases] == [("pp", S + S // 4, 2 * S)]


def test_a_tg_test_is_generation_from_its_first_decode():
    live = LiveSeries([("meter", "counter")], origin_ns=0)
    live.feed(
        [
            CallStarted("tg4", "tg", 0, 0, 0, 1 * S),
            *(token(S + k * S // 10, k) for k in range(1, 5)),
            PhaseEnded("tg4", 0, 0, "tg", 1 * S, S + 4 * S // 10, 4, "tg"),
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


def test_each_bin_s_joules_are_the_energy_between_its_edges():
    """A counter's cumulative joules differenced at the bins' edges: the rolling tok/J divides tokens by them."""
    live = LiveSeries([("meter", "counter")], origin_ns=0)
    t = np.arange(0, 4 * S + 1, S // 100, dtype=np.int64)
    energy = np.where(t < 2 * S, 50.0 * t / S, 100.0 + 150.0 * (t - 2 * S) / S)  # 50 W, then 150 W from 2 s
    live.add_samples(0, t, np.where(t < 2 * S, 50.0, 150.0), energy)
    live.add_tokens([int(2 * S + k * S // 100) for k in range(200)])  # 100 tok/s from 2 s
    joules = live._bin_joules.view()
    assert joules[:8] == pytest.approx([12.5] * 8) and joules[8:16] == pytest.approx([37.5] * 8)
    series = live.bin_series(0, 4)
    last_full = int(4 * S // BIN_NS) - 1  # the bin that ends at 4 s (the one after it has no energy yet)
    assert series["tok_j_rolling"][last_full] == pytest.approx(200 / 300.0)  # the last 2 s: 200 tokens, 300 J
    assert np.isnan(series["tok_j_rolling"][last_full + 1])
    assert live.live_figures().power_w == pytest.approx(150.0)


def test_while_a_prompt_is_evaluated_the_speed_is_the_last_prompts_rate():
    live = LiveSeries([("meter", "counter")], origin_ns=0)
    live.feed([CallStarted("pp512", "pp", 0, 0, 512, 1 * S)])
    first = live.live_figures()
    assert first.prompt_running and first.last_prompt_tok_s is None
    live.feed([PhaseEnded("pp512", 0, 0, "pp", S, 3 * S, 512, "pp"), CallStarted("pp512", "pp", 1, 0, 512, 3 * S)])
    second = live.live_figures()
    assert second.prompt_running and second.last_prompt_tok_s == 256.0  # 512 tokens in 2 s
    live.feed([PhaseEnded("pp512", 1, 0, "pp", 3 * S, 4 * S, 512, "pp")])
    assert not live.live_figures().prompt_running and live.live_figures().last_prompt_tok_s == 512.0


def test_each_answer_gets_its_own_heading_in_the_output():
    live = LiveSeries([("meter", "counter")], origin_ns=0)
    text = "".join(
        live.feed(
            [
                CallStarted("chat", "workload", -1, 0, 20, 1 * S),
                TokenEvent(2 * S, 0, 5, "The"),
                CallStarted("chat", "workload", 0, 0, 20, 3 * S),
                TokenEvent(4 * S, 0, 5, "The"),
                CallStarted("chat", "workload", 0, 1, 20, 5 * S),
                TokenEvent(6 * S, 0, 5, "Once"),
            ]
        )
    )
    assert text == (
        "── chat · warm-up · call 1 ──\nThe"
        "\n\n── chat · repetition 1 · call 1 ──\nThe"
        "\n\n── chat · repetition 1 · call 2 ──\nOnce"
    )
