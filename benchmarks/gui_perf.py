"""The dashboard's frame budget: chart refresh, GUI stalls, launch time.

a. Chart refresh with 1 hour of 50 Hz history on the three charts (180,000
   power samples, 360 calls' tokens and phases), while data keeps arriving:
   p50/p99 of one refresh (setData and paint), following the last 2 minutes
   and showing the whole hour.
b. The longest stall of the GUI thread during a real run on the bundled
   model (a 5 ms timer on the GUI thread; a stall is a late tick).
c. Launch to first painted window, from process start (a subprocess).

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/gui_perf.py
(or under Xvfb with a real DISPLAY, which paints through xcb as users see it)
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

from PySide6.QtCore import QElapsedTimer, QSettings, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def hour_of_history(origin_ns: int, rate_hz: float = 50.0):
    import numpy as np

    from tpw_desktop.live import LiveSeries

    live = LiveSeries([("nvml:0", "counter")], origin_ns)
    n = int(3600 * rate_hz)
    t = origin_ns + (np.arange(n) * (1e9 / rate_hz)).astype(np.int64)
    power = 80 + 150 * ((np.arange(n) // 250) % 2) + np.random.default_rng(0).normal(0, 5, n)
    live.add_samples(0, t, power)
    from tpw_desktop.engine.types import TokenEvent
    from tpw_desktop.events import CallStarted, PhaseEnded

    live.run_started(origin_ns)
    for call in range(360):  # a call every 10 s: 0.5 s of prompt, 3 s of generation at 100 tok/s
        start = origin_ns + call * 10_000_000_000
        first = start + 500_000_000
        tokens = [TokenEvent(first + k * 10_000_000, k, 5, "x") for k in range(300)]
        live.feed([CallStarted("chat", "workload", 0, call, 400, start), *tokens,
                   PhaseEnded("chat", 0, call, "pp", start, first, 400),
                   PhaseEnded("chat", 0, call, "tg", first, tokens[-1].t_ns, 299)])
    live.idle_w = 80.0
    return live


def chart_refresh(app, iterations: int) -> None:
    import numpy as np

    from tpw_desktop.engine.types import TokenEvent
    from tpw_desktop.ui.charts import LiveCharts
    from tpw_desktop.ui.theme import DARK

    origin = 1_000_000_000
    live = hour_of_history(origin)
    charts = LiveCharts(DARK)
    charts.resize(1400, 800)
    charts.show()
    charts.set_series(live)
    charts.refresh()
    app.processEvents()
    t_next = live.latest_ns
    for mode in ("follow (last 2 min)", "whole hour"):
        if mode == "whole hour":
            charts.show_all()
        times = []
        for _ in range(iterations):
            t_next += 33_000_000  # a 30 Hz frame's worth of new samples and tokens
            live.add_samples(0, np.array([t_next - 13_000_000, t_next], dtype=np.int64), np.array([230.0, 231.0]))
            live.feed([TokenEvent(t, 0, 5, "x") for t in (t_next - 20_000_000, t_next - 10_000_000, t_next)])
            timer = QElapsedTimer()
            timer.start()
            charts.refresh()
            charts.repaint()  # paint now, inside the measurement
            times.append(timer.nsecsElapsed() / 1e6)
        print(f"a. chart refresh, 1 h of 50 Hz history, {mode}: p50 {statistics.median(times):.1f} ms, "
              f"p99 {percentile(times, 99):.1f} ms, max {max(times):.1f} ms ({iterations} refreshes)")
    charts.close()


def stall_during_run(app, reps: int) -> None:
    """The GUI thread's longest stall while a run streams in from the measuring process."""
    import numpy as np

    from tpw_desktop.paths import bundled_model_path, resources_dir
    from tpw_desktop.ui.controller import RunController
    from tpw_desktop.ui.main_window import MainWindow

    tmp = Path(tempfile.mkdtemp())
    spec = f"replay:{resources_dir() / 'traces' / 'demo-gpu.csv'}"
    window = MainWindow(controller=RunController(tmp / "s.db"), power_choices=[(spec, "demo")],
                        settings=QSettings(str(tmp / "s.ini"), QSettings.IniFormat), bundled_model=bundled_model_path())
    window.resize(1400, 900)
    window.show()
    loaded = []
    window.controller.loaded.connect(loaded.append)
    window.load_model(bundled_model_path())
    while not loaded:
        app.processEvents()
        time.sleep(0.005)
    window.workload_panel.select("chat")
    window.workload_panel.repetitions.setValue(reps)
    window.power_panel.idle_s.setValue(1.0)
    ticks = []
    probe = QTimer()
    probe.setInterval(5)
    probe.timeout.connect(lambda: ticks.append(time.monotonic_ns()))
    done = []
    window.run_ended.connect(done.append)
    probe.start()
    window.start()
    while not done:
        app.processEvents()
        time.sleep(0.001)
    probe.stop()
    gaps = np.diff(np.array(ticks)) / 1e6
    report = window.controller.last_report
    tokens = sum(s.pooled.tokens for s in report.summaries if s.phase == "tg")
    print(f"b. GUI thread during a run ({report.meta['tests'][0]} x{reps}, {tokens} generated tokens, "
          f"{len(gaps)} probe ticks): longest gap between 5 ms ticks {gaps.max():.1f} ms "
          f"(stall {gaps.max() - 5:.1f} ms), p99 {np.percentile(gaps, 99):.1f} ms")
    window.shutdown()


STARTUP_DRIVER = textwrap.dedent("""
    import sys, time, psutil
    from PySide6.QtCore import QEvent, QObject, QTimer
    from PySide6.QtWidgets import QApplication
    app = QApplication(sys.argv[:1])
    created = psutil.Process().create_time()
    first_paint = []
    class FirstPaint(QObject):
        def eventFilter(self, obj, event):
            if not first_paint and event.type() == QEvent.Paint and obj.isWidgetType():
                if type(obj.window()).__name__ == "MainWindow":
                    first_paint.append(time.time() - created)
                    QTimer.singleShot(0, app.quit)
            return False
    probe = FirstPaint()
    app.installEventFilter(probe)
    from tpw_desktop.ui.app import main
    main(sys.argv[1:])
    print(f"{first_paint[0]:.3f}" if first_paint else "no paint", flush=True)
""")


def launch_to_first_paint(runs: int) -> None:
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            done = subprocess.run([sys.executable, "-c", STARTUP_DRIVER, "--no-save", "--settings", f"{tmp}/s.ini"],
                                  capture_output=True, text=True, timeout=120)
            if done.returncode != 0:
                print(done.stderr[-2000:])
                raise SystemExit("the app did not start")
            times.append(float(done.stdout.strip().splitlines()[-1]))
    print(f"c. launch to first painted window (process start -> first paint, {runs} launches): "
          f"median {statistics.median(times):.2f} s, max {max(times):.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--launches", type=int, default=3)
    args = parser.parse_args()
    print(f"Qt platform: {os.environ.get('QT_QPA_PLATFORM') or 'default'}")
    app = QApplication.instance() or QApplication([])
    chart_refresh(app, args.iterations)
    stall_during_run(app, args.reps)
    launch_to_first_paint(args.launches)


if __name__ == "__main__":
    main()
