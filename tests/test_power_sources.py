"""The estimate and replay sources, and the --power spec."""
import json

import numpy as np
import pytest

from tpw_desktop.errors import TpwError
from tpw_desktop.power import EstimateSource, PowerEnvironment, PowerTrace, ReplaySource, open_sources
from tpw_desktop.power.base import PowerSource


def test_estimate_is_tdp_times_utilisation_and_says_so(clock):
    source = EstimateSource(clock, tdp_w=120, utilisation=lambda: 0.25)
    assert isinstance(source, PowerSource)
    assert source.method == "estimated"
    reading = source.read()
    assert (reading.power_w, reading.counter_uj, reading.t_ns) == (30.0, None, clock.now)
    assert "estimated" in source.measures and "120 W TDP" in source.measures


def test_estimate_refuses_a_silly_tdp(clock):
    with pytest.raises(ValueError):
        EstimateSource(clock, tdp_w=0, utilisation=lambda: 0.5)


def test_estimate_spec_takes_a_tdp(clock):
    [source] = open_sources("estimate:95", PowerEnvironment(clock_ns=clock))
    assert source.tdp_w == 95.0
    with pytest.raises(TpwError, match="expected a TDP"):
        open_sources("estimate:lots", PowerEnvironment(clock_ns=clock))


@pytest.mark.parametrize("spec, message", [
    ("gpu", "unknown source"),
    ("replay", "name the trace file"),
    ("estimate,estimate", "named twice"),
    ("nvml:x", "expected GPU indices"),
    (",", "no source named"),
])
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
    path.write_text(json.dumps({"samples": [
        {"t_s": 10, "power_w": 50, "energy_j": 1000},
        {"t_s": 11, "power_w": 70, "energy_j": 1060},
    ]}))
    trace = PowerTrace.load(path)
    assert trace.t_s.tolist() == [0.0, 1.0]
    assert trace.energy_j.tolist() == [0.0, 60.0]  # the recorded counter, not the integral (60 not 60)
    assert trace.energy_at(0.5) == 30.0


@pytest.mark.parametrize("content, message", [
    ("t_s,power_w\n0,1\n", "at least two samples"),
    ("t_s,power_w\n0,1\n0,2\n", "strictly increasing"),
    ("t_s,watts\n0,1\n1,2\n", "numeric t_s and power_w"),
])
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
