"""The fleet at scale: how long one refresh of `tpw fleet` and of the Fleet view takes, by number of series.

A Prometheus API server on loopback (``tests/hostile_prometheus.py``)
answers for a fleet of N/2 nodes, each with a GPU energy counter and a
token counter (N series), 5 samples per series. Measured per size:

- one ``fleet_figures`` call (HTTP, JSON, parsing, figures): on the Fleet
  view's pool thread, so it must fit its 5 s refresh, not a frame;
- one ``FleetView.show_figures`` (the table's 50 busiest rows, 8 curves):
  the only part on the GUI thread, so it is what a user could feel.

Medians of 5 calls; the costs are CPU-bound and compared with goals of a
different order of magnitude, so the machine's ±20% drift doesn't decide
them.

    .venv/bin/python benchmarks/fleet_scale.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from common import Figure, Result, Table

REFRESH_S = 5.0  # the Fleet view's poll interval
FRAME_MS = 100.0  # the GUI thread's budget per refresh


def measure(n_series: int, calls: int) -> dict:
    from hostile_prometheus import HostilePrometheus, Node

    from tpw_desktop.peers.prometheus_server import PrometheusApi
    from tpw_desktop.prometheus.fleet import fleet_figures
    from tpw_desktop.ui.fleet_view import FleetView
    from tpw_desktop.ui.theme import THEMES

    server = HostilePrometheus([Node(f"gpu-{i:05d}", 100.0 + i % 7, 10.0 + i % 13) for i in range(n_series // 2)])
    api = PrometheusApi(server.url, timeout_s=30)
    view = FleetView(THEMES["dark"])
    try:
        poll_s, show_ms = [], []
        for _ in range(calls):
            t0 = time.perf_counter()
            figures = fleet_figures(api, window_s=5)
            poll_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            view.show_figures(figures)
            show_ms.append((time.perf_counter() - t0) * 1e3)
        assert len(figures.nodes) == n_series // 2
    finally:
        view.close_pool()
        view.deleteLater()
        api.close()
        server.close()
    return {"series": n_series, "poll_s": statistics.median(poll_s), "show_ms": statistics.median(show_ms)}


def run(quick: bool = False) -> Result:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])  # noqa: F841 - widgets need it alive
    sizes, calls = ((200, 2_000), 2) if quick else ((1_000, 10_000, 20_000), 5)
    rows = [measure(n, calls) for n in sizes]
    at = next((r for r in rows if r["series"] == 10_000), rows[-1])
    res = Result("fleet", "benchmarks/fleet_scale.py", raw={"sizes": rows})
    res.figures.append(
        Figure(
            f"one fleet refresh at {at['series']:,} series (pool thread)",
            f"< {REFRESH_S:g} s, the view's refresh",
            f"{at['poll_s']:.2f} s (median of {calls})",
            at["poll_s"] < REFRESH_S,
            value=at["poll_s"],
        )
    )
    res.figures.append(
        Figure(
            f"the Fleet view's table and chart at {at['series']:,} series (GUI thread)",
            f"< {FRAME_MS:g} ms",
            f"{at['show_ms']:.1f} ms (median of {calls})",
            at["show_ms"] < FRAME_MS,
            value=at["show_ms"],
            note="the 50 busiest nodes in the table, 8 curves and the fleet's",
        )
    )
    res.tables.append(
        Table(
            "Fleet refresh by number of series",
            ["series", "fleet_figures (s)", "show_figures (ms)"],
            [[f"{r['series']:,}", f"{r['poll_s']:.3f}", f"{r['show_ms']:.1f}"] for r in rows],
        )
    )
    return res


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    result = run(parser.parse_args().quick)
    for figure in result.figures:
        print(f"{figure.name}: {figure.measured} (goal {figure.goal})")
    for row in result.tables[0].rows:
        print(*row, sep="\t")
