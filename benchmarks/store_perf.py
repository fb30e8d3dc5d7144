"""How fast the session store writes samples and opens a long session for display.

1. Raw insert rate: the writer's own INSERT, in transactions the size of
   one 250 ms commit, into a fresh file (WAL, synchronous=NORMAL).
2. The real writer thread pulling from sampler ring buffers fed at a fixed
   rate: does it keep up with no loss, and how much of a core does it use?
3. Opening a session of 10 minutes, 1 hour and 8 hours at 50 Hz,
   downsampled to 2,000 points, as a chart of a past session would (goal:
   under 200 ms for an hour).

    .venv/bin/python benchmarks/store_perf.py [--rows-per-s 20000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from common import Figure, Result, Table, thread_cpu_s
from store_meta import meta_for

GOAL_INSERTS = 10_000
GOAL_OPEN_HOUR_MS = 200


def raw_insert_rate(folder: Path, n_rows: int, batch: int = 5_000) -> float:
    from tpw_desktop.store import connect
    from tpw_desktop.store.writer import _SAMPLE_INSERT

    db = connect(folder / "raw.db")
    db["sessions"].insert({"id": 1, "started_at": "2026-01-01", "status": "running"})
    rows = [(1, "nvml:0", i * 20_000_000, 250.0 + (i % 7), i * 5.0) for i in range(n_rows)]
    t0 = time.perf_counter()
    for i in range(0, n_rows, batch):
        db.conn.execute("BEGIN IMMEDIATE")
        db.conn.executemany(_SAMPLE_INSERT, rows[i : i + batch])
        db.conn.execute("COMMIT")
    return n_rows / (time.perf_counter() - t0)


def writer_throughput(folder: Path, rows_per_s: int, seconds: float, n_sources: int = 4) -> dict:
    from tpw_desktop.paths import bundled_model_path
    from tpw_desktop.power import PowerTrace, ReplaySource
    from tpw_desktop.power.ring import RingBuffer
    from tpw_desktop.power.sampler import SAMPLE_COLUMNS
    from tpw_desktop.record.stored import RunOutcome
    from tpw_desktop.store import SessionWriter, Store

    trace = PowerTrace(np.array([0.0, 1.0]), np.array([1.0, 1.0]), None, "t.csv")
    sources = [ReplaySource(trace, time.monotonic_ns) for _ in range(n_sources)]
    for i, s in enumerate(sources):
        s.name = f"gpu{i}"
    rings = [RingBuffer(1 << 18, SAMPLE_COLUMNS) for _ in sources]

    class Feed:  # the writer's view of a sampler (store.writer.SampleFeed): this benchmark fills the rings
        def source_names(self):
            return [s.name for s in sources]

        def samples_written(self, i):
            return rings[i].total_written

        def samples_since(self, i, before):
            return rings[i].since(before)

    sampler = Feed()
    path = folder / "writer.db"
    writer = SessionWriter(path)
    session_id = writer.begin(meta_for(bundled_model_path(), sources), sampler)
    per_tick = max(1, rows_per_s // n_sources // 100)
    produced, t = 0, 0
    t_end = time.monotonic() + seconds
    native = writer._thread.native_id
    cpu0, wall0 = thread_cpu_s(native), time.monotonic()
    next_tick = time.monotonic()
    while time.monotonic() < t_end:
        for i in range(n_sources):
            ring = rings[i]
            for _ in range(per_tick):
                ring.append(t_ns=t, power_w=300.0, energy_j=t / 1e7)
                t += 1
        produced += per_tick * n_sources
        next_tick += 0.01
        time.sleep(max(0.0, next_tick - time.monotonic()))
    writer.finish(session_id, "completed", RunOutcome(None, None))
    cpu1, wall1 = thread_cpu_s(native), time.monotonic()
    writer.close()
    with Store(path) as store:
        stored = store.sample_count(session_id)
    return {
        "rate": produced / seconds,
        "produced": produced,
        "stored": stored,
        "cpu_share": (cpu1 - cpu0) / (wall1 - wall0),
    }


def session_open_ms(
    folder: Path, hours: float, rate_hz: float = 50.0, max_points: int = 2000, repeats: int = 5
) -> dict:
    from tpw_desktop.store import Store, connect
    from tpw_desktop.store.writer import _SAMPLE_INSERT

    path = folder / f"long-{hours:g}h.db"
    db = connect(path)
    n = int(hours * 3600 * rate_hz)
    t0 = 1_000_000_000
    db["sessions"].insert({"id": 1, "started_at": "2026-01-01", "status": "completed", "t0_ns": t0})
    db["session_sources"].insert({"session_id": 1, "name": "nvml:0", "method": "counter", "measures": "GPU 0"})
    step = int(1e9 / rate_hz)
    power = 200 + 50 * np.random.default_rng(0).standard_normal(n)
    db.conn.execute("BEGIN")
    for start in range(0, n, 500_000):
        db.conn.executemany(
            _SAMPLE_INSERT,
            ((1, "nvml:0", t0 + i * step, float(power[i]), i * 4.0) for i in range(start, min(n, start + 500_000))),
        )
    db.conn.execute("COMMIT")
    db.close()
    times = []
    with Store(path) as store:
        for _ in range(repeats):
            t = time.perf_counter()
            series = store.samples(1, max_points=max_points)
            times.append((time.perf_counter() - t) * 1e3)
    return {
        "hours": hours,
        "samples": n,
        "points": len(series["nvml:0"]["t_s"]),
        "median_ms": statistics.median(times),
        "max_ms": max(times),
    }


def run(quick: bool = False, rows_per_s: int = 20_000, seconds: float | None = None) -> Result:
    seconds = seconds or (0.5 if quick else 10.0)
    hours = (1 / 60, 0.05) if quick else (10 / 60, 1.0, 8.0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        inserts = raw_insert_rate(folder, 20_000 if quick else 1_000_000)
        writer = writer_throughput(folder, rows_per_s, seconds)
        opens = [session_open_ms(folder, h, repeats=1 if quick else 5) for h in hours]
    hour = next((o for o in opens if o["hours"] == 1.0), opens[-1])
    res = Result("store", "benchmarks/store_perf.py", raw={"insert_rate": inserts, "writer": writer, "open": opens})
    lost = writer["produced"] - writer["stored"]
    res.figures += [
        Figure(
            "sample inserts (the writer's statement, 5,000-row transactions)",
            f"≥ {GOAL_INSERTS:,} /s",
            f"{inserts:,.0f} /s",
            inserts >= GOAL_INSERTS,
            value=inserts,
        ),
        Figure(
            f"writer thread fed {writer['rate']:,.0f} samples/s from 4 ring buffers",
            "no loss",
            f"{'no loss' if not lost else f'{lost} lost'}; {writer['cpu_share']:.1%} of a core",
            lost == 0,
            value=writer["cpu_share"],
        ),
        Figure(
            f"open a {hour['hours']:g} h, 50 Hz session downsampled to {hour['points']} points",
            f"< {GOAL_OPEN_HOUR_MS} ms",
            f"median {hour['median_ms']:.0f} ms, max {hour['max_ms']:.0f} ms",
            hour["median_ms"] < GOAL_OPEN_HOUR_MS,
            value=hour["median_ms"],
        ),
    ]
    res.tables.append(
        Table(
            "Opening a session against its length (50 Hz, downsampled to 2,000 points)",
            ["length", "samples", "median", "max"],
            [
                [
                    f"{o['hours'] * 60:.0f} min" if o["hours"] < 1 else f"{o['hours']:g} h",
                    f"{o['samples']:,}",
                    f"{o['median_ms']:.0f} ms",
                    f"{o['max_ms']:.0f} ms",
                ]
                for o in opens
            ],
        )
    )
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows-per-s", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    for f in run(rows_per_s=args.rows_per_s, seconds=args.seconds).figures:
        print(f"{f.name}: {f.measured} (goal {f.goal})")


if __name__ == "__main__":
    main()
