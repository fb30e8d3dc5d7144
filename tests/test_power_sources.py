"""The estimate and replay sources, and the --power spec."""

import json
import time

import numpy as np
import pytest

from tpw_desktop.errors import TpwError
from tpw_desktop.power import (
    EstimateSource,
    PowerEnvironment,
    PowerTrace,
    ReplaySource,
    open_sources,
)
from tpw_desktop.power.base import PowerSource


class BusyCpu:
    """Cumulative busy CPU-seconds, moved by hand."""

    def __init__(self):
        self.seconds = 0.0

    def __call__(self):
        return self.seconds


def test_the_estimate_is_a_counter_of_busy_cpu_time_times_tdp(clock):
    busy = BusyCpu()
    source = EstimateSource(clock, tdp_w=120, busy_cpu_s=busy, n_cpus=4)
    assert isinstance(source, PowerSource)
    assert source.method == "estimated"
    first = source.read()
    assert (first.counter_uj, first.t_ns) == (0, clock.now) and np.isnan(first.power_w)
    clock.advance(0.5)
    busy.seconds = 1.0  # one CPU-second in half a second on 4 CPUs: half the machine busy
    second = source.read()
    assert second.counter_uj == 30_000_000  # 1 / 4 x 120 W = 30 J
    assert second.power_w == 60.0  # 30 J in 0.5 s
    assert "estimated" in source.measures and "120 W TDP" in source.measures
    assert source.info()["scope"] == "machine"


def test_the_estimate_counts_every_tick_between_reads(clock):
    """No refresh interval to miss: whatever the kernel counted between two reads is in their difference."""
    busy = BusyCpu()
    source = EstimateSource(clock, tdp_w=100, busy_cpu_s=busy, n_cpus=1)
    source.read()
    for _ in range(3):  # 30 ms steps, shorter than the old 100 ms refresh
        clock.advance(0.03)
        busy.seconds += 0.03
        reading = source.read()
        assert reading.power_w == pytest.approx(100.0, rel=1e-9)
    assert reading.counter_uj == 9_000_000


def test_the_machine_estimate_counts_only_busy_cpu_time(monkeypatch):
    """Idle, iowait and steal are time no CPU of ours spent working (guest is already inside user)."""
    import collections

    import psutil

    from tpw_desktop.power.estimate import machine_busy_cpu_s

    fields = "user nice system idle iowait irq softirq steal guest guest_nice"
    times = collections.namedtuple("scputimes", fields)(1.0, 2.0, 4.0, 1000.0, 300.0, 8.0, 16.0, 500.0, 0.5, 0.25)
    monkeypatch.setattr(psutil, "cpu_times", lambda: times)
    assert machine_busy_cpu_s() == 31.0  # 1 + 2 + 4 + 8 + 16


def test_the_process_estimate_counts_only_this_process(clock):
    [source] = open_sources("estimate-process:50", PowerEnvironment(clock_ns=clock))
    assert source.name == "estimate-process" and source.info()["scope"] == "process"
    assert "CPU time of process" in source.measures
    before = source.read().counter_uj
    end = time.process_time() + 0.2
    while time.process_time() < end:  # 0.2 CPU-seconds of our own
        pass
    after = source.read().counter_uj
    assert after - before >= 0.15 / source.n_cpus * 50 * 1e6


def test_estimate_refuses_a_silly_tdp(clock):
    with pytest.raises(ValueError):
        EstimateSource(clock, tdp_w=0, busy_cpu_s=BusyCpu())


def test_estimate_spec_takes_a_tdp(clock):
    [source] = open_sources("estimate:95", PowerEnvironment(clock_ns=clock))
    assert source.tdp_w == 95.0
    with pytest.raises(TpwError, match="expected a TDP"):
        open_sources("estimate:lots", PowerEnvironment(clock_ns=clock))


@pytest.mark.parametrize(
    "spec, message",
    [
        ("gpu", "unknown source"),
        ("replay", "name the trace file"),
        ("estimate,estimate", "named twice"),
        ("nvml:x", "expected GPU indices"),
        (",", "no source named"),
    ],
)
def test_bad_specs(clock, spec, message):
    with pytest.raises(TpwError, match=message):
        open_sources(spec, PowerEnvironment(clock_ns=clock))


TRACE_CSV = """# a step: 100 W for 2 s then 300 W
t_s,power_w
0,100
1,100
2,100
2.001,300
4,300
"""


@pytest.fixture
def trace_csv(tmp_path):
    path = tmp_path / "step.csv"
    path.write_text(TRACE_CSV)
    return path


def test_trace_from_csv_with_comments(trace_csv):
    trace = PowerTrace.load(trace_csv)
    assert trace.duration_s == 4.0
    assert trace.energy_j is None
    assert trace.energy_at(2.0) == 200.0  # integral of 100 W over 2 s


def test_trace_from_json_with_energy(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(
        json.dumps(
            {
                "samples": [
                    {"t_s": 10, "power_w": 50, "energy_j": 1000},
                    {"t_s": 11, "power_w": 70, "energy_j": 1060},
                ]
            }
        )
    )
    trace = PowerTrace.load(path)
    assert trace.t_s.tolist() == [0.0, 1.0]
    assert trace.energy_j.tolist() == [0.0, 60.0]  # the recorded counter, not the integral (60 not 60)
    assert trace.energy_at(0.5) == 30.0


@pytest.mark.parametrize(
    "content, message",
    [
        ("t_s,power_w\n0,1\n", "at least two samples"),
        ("t_s,power_w\n0,1\n0,2\n", "strictly increasing"),
        ("t_s,watts\n0,1\n1,2\n", "numeric t_s and power_w"),
    ],
)
def test_bad_traces(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(TpwError, match=message):
        PowerTrace.load(path)


def test_missing_trace(tmp_path):
    with pytest.raises(TpwError, match="cannot read the power trace"):
        PowerTrace.load(tmp_path / "absent.csv")


def test_replay_in_real_time(clock, trace_csv):
    source = ReplaySource(PowerTrace.load(trace_csv), clock)
    assert source.method == "replayed"
    assert source.read().power_w == 100.0
    clock.advance(1.0)
    first = source.read()
    assert (first.power_w, first.counter_uj) == (100.0, 100_000_000)
    clock.advance(2.0)  # 3 s into the trace
    assert source.read().power_w == 300.0


def test_replay_loops_and_keeps_counting(clock, trace_csv):
    trace = PowerTrace.load(trace_csv)
    source = ReplaySource(trace, clock)
    total_uj = round(trace.energy_at(4.0) * 1e6)
    clock.advance(5.0)  # one loop and one second
    reading = source.read()
    assert reading.power_w == 100.0
    assert reading.counter_uj == total_uj + 100_000_000


def test_replay_without_loop_holds_the_end(clock, trace_csv):
    source = ReplaySource(PowerTrace.load(trace_csv), clock, loop=False)
    clock.advance(100.0)
    assert source.read().power_w == 300.0


def test_replay_faster_keeps_joules_equal_to_watts_times_wall_seconds(clock, trace_csv):
    source = ReplaySource(PowerTrace.load(trace_csv), clock, speed=2.0)
    clock.advance(0.5)  # 1 s into the trace, 0.5 s of wall time at 100 W
    reading = source.read()
    assert reading.power_w == 100.0
    assert reading.counter_uj == 50_000_000


def test_replay_as_fast_as_possible(clock, trace_csv):
    source = ReplaySource(PowerTrace.load(trace_csv), clock)
    readings = list(source.iter_readings(t0_ns=5_000))
    assert [r.t_ns for r in readings] == [5_000, 1_000_005_000, 2_000_005_000, 2_001_005_000, 4_000_005_000]
    assert [r.power_w for r in readings] == [100, 100, 100, 300, 300]
    assert readings[-1].counter_uj == round(PowerTrace.load(trace_csv).energy_at(4.0) * 1e6)


def test_shipped_demo_trace_plays(clock):
    from tpw_desktop.paths import resources_dir

    [source] = open_sources(f"replay:{resources_dir() / 'traces' / 'demo-gpu.csv'}", PowerEnvironment(clock_ns=clock))
    assert source.name == "replay:demo-gpu.csv"
    powers = [source.read().power_w for _ in range(3) if not clock.advance(1.0)]
    assert all(np.isfinite(powers)) and min(powers) > 0
