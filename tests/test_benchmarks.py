"""Every benchmark runs (a smoke run of seconds, so none rots); their figures are measured by `make bench`."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.mark.slow
def test_every_benchmark_runs_and_writes_its_report(tmp_path):
    out = tmp_path / "performance.md"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run_all.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report = out.read_text()
    raw = json.loads(out.with_suffix(".json").read_text())
    assert raw["failures"] == {}
    assert [r["name"] for r in raw["results"]] == ["engine", "sampler", "store", "gui", "dashboard", "fleet"]
    for result in raw["results"]:
        assert result["figures"], result["name"]
        for figure in result["figures"]:
            assert figure["measured"] and figure["name"] in report
    assert "| figure | goal | measured | met | command |" in report
    assert "time outside llama_decode per token" in report.replace("Time", "time")
    assert "### sampler: Sampling rate" in report and "### gui: One chart frame against history length" in report
    assert "### fleet: Fleet refresh by number of series" in report


@pytest.mark.slow
def test_a_short_soak_keeps_everything(tiny_model):
    """Half a minute of continuous generation with the window open: no sample lost, no leak, a sound database.

    Counts and states only: how fast a loaded machine samples or generates is the benchmark's to report."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import soak

    result = soak.soak(0.5, window_open=True, model=tiny_model, n_gen=64)
    assert result["status"] == "cancelled"  # stopped by the soak at the end, as a user's Stop
    assert result["repetitions"] >= 2  # the context cleared and reused (a tg64 of the tiny model takes ~0.1 s)
    assert result["samples_taken"] > 0
    assert result["samples_stored_share"] == 1  # every sample taken during the run is in the database
    assert result["integrity_check"] == "ok"
    assert all(growth < 50 for growth in result["memory_growth_mb"].values())
