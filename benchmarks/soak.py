"""A long run: continuous generation with the sampler at 50 Hz and the store writing, the window open.

Reports, for the report in docs/reliability.md (30 minutes) and the test
suite's smoke run (2 minutes):
- memory growth of the window's process and of the measuring process,
  from the end of the warm-up (the first 10% of the run) to the end
  (goal: < 50 MB over 30 minutes);
- power samples stored against those the sampler took (goal: none lost),
  and taken against those expected from the sampling rate (within 1% on a
  machine that isn't starved);
- the window's longest stall (a 10 ms timer on its thread);
- PRAGMA integrity_check of the database afterwards.

    .venv/bin/python benchmarks/soak.py [--minutes 30] [--json OUT] [--no-window]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

RATE_HZ = 50.0
TRACE = "traces/demo-gpu.csv"  # a replayed source: 50 Hz sampling on a machine without a sensor


def rss_mb(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


def soak(minutes: float, window_open: bool, model: Path | None = None, n_gen: int = 512) -> dict:
    """``model``: the bundled one by default (the suite's smoke run passes a tiny generated one, whose
    short repetitions keep the context's clear-and-reuse in the run even on a loaded machine)."""
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from tpw_desktop.engine.workloads import TestSpec
    from tpw_desktop.paths import bundled_model_path, resources_dir
    from tpw_desktop.record.meta import RunOptions
    from tpw_desktop.ui.controller import RunController
    from tpw_desktop.ui.main_window import MainWindow

    tmp = Path(tempfile.mkdtemp())
    db = tmp / "soak.db"
    app = QApplication.instance() or QApplication(sys.argv[:1])
    controller = RunController(db)
    window = None
    if window_open:
        window = MainWindow(
            controller=controller,
            settings=QSettings(str(tmp / "s.ini"), QSettings.IniFormat),
            power_choices=[(f"replay:{resources_dir() / TRACE}", "demo")],
            bundled_model=model or bundled_model_path(),
        )
        window.resize(1600, 1000)
        window.show()
    else:
        controller.select_power(f"replay:{resources_dir() / TRACE}", rate_hz=RATE_HZ)
    controller.load(model or bundled_model_path(), _settings())

    def spin(until) -> None:
        while not until():
            app.processEvents()
            time.sleep(0.005)

    spin(lambda: controller.state == "idle" and controller.live is not None)
    stalls: list[float] = []
    last_tick = [time.monotonic()]

    def tick() -> None:
        now = time.monotonic()
        stalls.append(now - last_tick[0])
        last_tick[0] = now

    probe = QTimer()
    probe.timeout.connect(tick)
    probe.start(10)
    seconds = minutes * 60
    warmup_s = seconds * 0.1
    # One long test: generation that never ends before it is stopped (the tokens run into tg's
    # context only, as llama-bench's tg does; the context is cleared every repetition).
    controller.start([TestSpec.tg(n_gen)], RunOptions(repetitions=1_000_000, idle_s=0, warmup=False))
    started = time.monotonic()
    spin(lambda: time.monotonic() - started >= warmup_s)
    memory_start = {"window": rss_mb(os.getpid()), "measuring": rss_mb(controller.client.pid)}
    spin(lambda: time.monotonic() - started >= seconds)
    memory_end = {"window": rss_mb(os.getpid()), "measuring": rss_mb(controller.client.pid)}
    finished = []
    controller.job_finished.connect(lambda f: finished.append(f.result) if f.job == "run" else None)
    controller.stop()
    spin(lambda: finished)
    probe.stop()
    report = finished[0]
    session_id = report.session_id
    if window is not None:
        window.shutdown()
    else:
        controller.close()
    conn = sqlite3.connect(db)
    t0, t1, stored = conn.execute(
        "SELECT min(t_ns), max(t_ns), count(*) FROM samples WHERE session_id = ?", [session_id]
    ).fetchone()
    integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    conn.close()
    expected = (t1 - t0) / 1e9 * RATE_HZ + 1
    taken_ns = controller.live.sample_times_ns(0)  # what the sampler took and sent to the window
    taken = int(((taken_ns >= t0) & (taken_ns <= t1)).sum())
    tokens = sum(r.row.figures.tokens for r in report.results)
    result = {
        "minutes": minutes,
        "window_open": window_open,
        "status": report.status,
        "repetitions": len(report.results),
        "tokens": tokens,
        "memory_growth_mb": {k: memory_end[k] - memory_start[k] for k in memory_start},
        "memory_mb": memory_end,
        "samples_stored": stored,
        "samples_taken": taken,
        "samples_expected": round(expected),
        "samples_stored_share": stored / taken,  # loss: the store against what was sampled
        "samples_taken_share": taken / expected,  # the sampler's rate kept (a starved machine lowers it)
        "longest_stall_ms": (max(stalls) * 1000 - 10) if stalls else None,
        "integrity_check": integrity,
    }
    print(
        f"soak: {minutes:g} min of generation ({len(report.results)} repetitions of tg{n_gen}, {tokens} tokens), "
        f"window {'open' if window_open else 'closed'}, status {report.status}"
    )
    print(
        f"  memory growth after warm-up: window {result['memory_growth_mb']['window']:+.1f} MB, "
        f"measuring process {result['memory_growth_mb']['measuring']:+.1f} MB (goal < 50 MB over 30 min)"
    )
    print(
        f"  samples stored {stored} of {taken} taken ({result['samples_stored_share']:.2%}; goal: none lost); "
        f"taken {taken} of {expected:.0f} expected at {RATE_HZ:g} Hz ({result['samples_taken_share']:.2%})"
    )
    print(f"  window's longest stall {result['longest_stall_ms']:.0f} ms; integrity_check: {integrity}")
    return result


def _settings():
    from tpw_desktop.record.meta import EngineSettings

    return EngineSettings(n_ctx=1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--no-window", action="store_true", help="the measuring process alone, no window")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = soak(args.minutes, not args.no_window)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
