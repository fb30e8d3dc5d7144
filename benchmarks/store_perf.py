"""How fast the session store writes samples and loads a long session for display.

1. Raw insert rate: the writer's own INSERT, in transactions the size of
   one 250 ms commit, into a fresh file (WAL, synchronous=NORMAL).
2. The real writer thread pulling from sampler ring buffers fed at a fixed
   rate: does it keep up with no loss, and how much of a core does it use?
3. Loading a 1-hour, 50 Hz session (180,000 samples) downsampled to 2,000
   points, as a chart of a past session would.

    .venv/bin/python benchmarks/store_perf.py [--rows-per-s 20000] [--seconds 10]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).parent))

from sampler_rate import thread_cpu_s  # noqa: E402
from store_meta import meta_for  # noqa: E402

from tpw_desktop.paths import bundled_model_path  # noqa: E402
from tpw_desktop.power import PowerTrace, ReplaySource, Sampler  # noqa: E402
from tpw_desktop.store import SessionWriter, Store, connect  # noqa: E402
from tpw_desktop.store.writer import _SAMPLE_INSERT  # noqa: E402


def raw_insert_rate(folder: Path, n_rows: int = 1_000_000, batch: int = 5_000) -> float:
    db = connect(folder / "raw.db")
    db["sessions"].insert({"id": 1, "started_at": "2026-01-01", "status": "running"})
    rows = [(1, "nvml:0", i * 20_000_000, 250.0 + (i % 7), i * 5.0) for i in range(n_rows)]
    t0 = time.perf_counter()
    for i in range(0, n_rows, batch):
        db.conn.execute("BEGIN IMMEDIATE")
        db.conn.executemany(_SAMPLE_INSERT, rows[i : i + batch])
        db.conn.execute("COMMIT")
    return n_rows / (time.perf_counter() - t0)


def writer_throughput(folder: Path, rows_per_s: int, seconds: float, n_sources: int = 4) -> None:
    trace = PowerTrace(np.array([0.0, 1.0]), np.array([1.0, 1.0]), None, "t.csv")
    sources = [ReplaySource(trace, time.monotonic_ns) for _ in range(n_sources)]
    for i, s in enumerate(sources):
        s.name = f"gpu{i}"
    sampler = Sampler(sources)  # not started: this benchmark feeds its rings itself
    path = folder / "writer.db"
    writer = SessionWriter(path)
    session_id = writer.begin(meta_for(bundled_model_path(), sources), sampler)
    per_tick = max(1, rows_per_s // n_sources // 100)
    produced = 0
    t_end = time.monotonic() + seconds
    native = writer._thread.native_id
    cpu0, wall0 = thread_cpu_s(native), time.monotonic()
    next_tick = time.monotonic()
    t = 0
    while time.monotonic() < t_end:
        for i in range(n_sources):
            ring = sampler.ring(i)
            for _ in range(per_tick):
                ring.append(t_ns=t, power_w=300.0, energy_j=t / 1e7)
                t += 1
        produced += per_tick * n_sources
        next_tick += 0.01
        time.sleep(max(0.0, next_tick - time.monotonic()))
    writer.finish(session_id, "completed", {"summary": [], "sampler": None})
    cpu1, wall1 = thread_cpu_s(native), time.monotonic()
    writer.close()
    with Store(path) as store:
        stored = store.sample_count(session_id)
    rate = produced / seconds
    print(f"2. writer thread fed {rate:,.0f} samples/s from {n_sources} ring buffers for {seconds:g} s: "
          f"{stored:,} of {produced:,} stored ({'no loss' if stored == produced else 'LOST ' + str(produced - stored)}); "
          f"writer thread CPU {(cpu1 - cpu0) / (wall1 - wall0) * 100:.1f}% of one core")


def long_session_load(folder: Path, hours: float = 1.0, rate_hz: float = 50.0, max_points: int = 2000) -> None:
    path = folder / "long.db"
    db = connect(path)
    n = int(hours * 3600 * rate_hz)
    t0 = 1_000_000_000
    db["sessions"].insert({"id": 1, "started_at": "2026-01-01", "status": "completed", "t0_ns": t0})
    db["session_sources"].insert({"session_id": 1, "name": "nvml:0", "method": "counter", "measures": "GPU 0"})
    step = int(1e9 / rate_hz)
    rng = np.random.default_rng(0)
    power = 200 + 50 * rng.standard_normal(n)
    rows = [(1, "nvml:0", t0 + i * step, float(power[i]), i * 4.0) for i in range(n)]
    db.conn.execute("BEGIN")
    db.conn.executemany(_SAMPLE_INSERT, rows)
    db.conn.execute("COMMIT")
    db.close()
    times = []
    with Store(path) as store:
        for _ in range(10):
            t = time.perf_counter()
            series = store.samples(1, max_points=max_points)
            times.append((time.perf_counter() - t) * 1e3)
        points = len(series["nvml:0"]["t_s"])
        t = time.perf_counter()
        full = store.samples(1)
        full_ms = (time.perf_counter() - t) * 1e3
    print(f"3. load a {hours:g} h, {rate_hz:g} Hz session ({n:,} samples) downsampled to {points} points: "
          f"median {statistics.median(times):.0f} ms, max {max(times):.0f} ms "
          f"(all {len(full['nvml:0']['t_s']):,} points: {full_ms:.0f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows-per-s", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(f"1. raw insert rate (the writer's statement, 5,000-row transactions): {raw_insert_rate(folder):,.0f} samples/s")
        writer_throughput(folder, args.rows_per_s, args.seconds)
        long_session_load(folder)


if __name__ == "__main__":
    main()
