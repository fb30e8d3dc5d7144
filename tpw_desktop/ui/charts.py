"""Three live charts on one time axis: tokens/s, watts, tokens per joule.

Each refresh hands pyqtgraph only the visible range, decimated to a couple
of points per pixel column; phase regions are added as they appear and
only the open one is moved. Right-click any chart for pyqtgraph's export
dialog (PNG, SVG, CSV); the window's Chart menu exports them too.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QFont

from .live import LiveSeries
from .svg_export import QtSvgExporter, install
from .theme import Theme

install()

FOLLOW_WINDOW_S = 120.0


class LiveCharts(pg.GraphicsLayoutWidget):
    def __init__(self, theme: Theme, parent=None):
        super().__init__(parent)
        self.theme = theme
        self.follow = True
        self._presentation = False
        self._series: LiveSeries | None = None
        self._regions: list[list[pg.LinearRegionItem]] = []
        self._power_curves: list[pg.PlotDataItem] = []
        self.rate_plot = self.addPlot(row=0, col=0)
        self.power_plot = self.addPlot(row=1, col=0)
        self.eff_plot = self.addPlot(row=2, col=0)
        self.plots = [self.rate_plot, self.power_plot, self.eff_plot]
        for plot in self.plots[1:]:
            plot.setXLink(self.rate_plot)
        for plot in self.plots:
            plot.showGrid(x=True, y=True, alpha=0.15)
            plot.setClipToView(True)
            plot.setDownsampling(auto=False)
            plot.addLegend(offset=(10, 5))
            plot.getViewBox().sigRangeChangedManually.connect(self._user_moved_view)
        self.eff_plot.setLabel("bottom", "time since start", units="s")  # one shared axis: label it once
        self.rate_plot.setLabel("left", "tokens/s")
        self.power_plot.setLabel("left", "power", units="W")
        self.eff_plot.setLabel("left", "tokens/J")
        for plot in self.plots:
            plot.getAxis("left").enableAutoSIPrefix(False)
        self.rate_instant = self._curve(self.rate_plot, "per 250 ms", "rate_instant", width=1)
        self.rate_rolling = self._curve(self.rate_plot, "rolling 2 s", "rate_rolling", width=2)
        self.eff_rolling = self._curve(self.eff_plot, "rolling 2 s", "eff_rolling", width=1)
        self.eff_run = self._curve(self.eff_plot, "this run", "eff_run", width=2)
        self.eff_run_above = self._curve(self.eff_plot, "this run, above idle", "eff_above", width=2, dash=True)
        self.idle_line = pg.InfiniteLine(angle=0, movable=False, pen=pg.mkPen(theme.colors["idle"], width=1, style=Qt.DashLine),
                                         label="idle {value:.1f} W", labelOpts={"position": 0.05, "color": theme.colors["idle"]})
        self.idle_line.setVisible(False)
        self.power_plot.addItem(self.idle_line)
        self.apply_theme(theme)

    def _curve(self, plot, name, color_key, width=1, dash=False):
        pen = pg.mkPen(self.theme.colors[color_key], width=width, style=Qt.DashLine if dash else Qt.SolidLine)
        curve = plot.plot([], [], name=name, pen=pen, connect="finite", skipFiniteCheck=False)
        curve.color_key, curve.base_width, curve.dash = color_key, width, dash
        return curve

    # --- configuration ---------------------------------------------------------------------

    def set_series(self, series: LiveSeries) -> None:
        """Start charting a new series (new power sources): forget the old curves and regions."""
        self._series = series
        for curve in self._power_curves:
            self.power_plot.removeItem(curve)
        self._power_curves = []
        for i, (name, method) in enumerate(series.sources):
            key = f"source{i % 4}"
            curve = self.power_plot.plot([], [], name=f"{name} ({method})", pen=pg.mkPen(self.theme.colors[key], width=1),
                                         connect="finite")
            curve.color_key, curve.base_width, curve.dash = key, 1, False
            self._power_curves.append(curve)
        for items in self._regions:
            for plot, item in zip(self.plots, items):
                plot.removeItem(item)
        self._regions = []
        self.set_idle(series.idle_w)
        self.follow = True

    def set_idle(self, idle_w: float | None) -> None:
        self.idle_line.setVisible(idle_w is not None)
        if idle_w is not None:
            self.idle_line.setValue(idle_w)

    def apply_theme(self, theme: Theme) -> None:
        self.theme = theme
        self.setBackground(theme.colors["background"])
        scale = 2 if self._presentation else 1
        font = QFont()
        font.setPointSize(theme.font_pt * (2 if self._presentation else 1))
        for plot in self.plots:
            for axis in ("left", "bottom"):
                ax = plot.getAxis(axis)
                ax.setPen(theme.colors["axis"])
                ax.setTextPen(theme.colors["foreground"])
                ax.setTickFont(font)
                ax.label.setFont(font)
        for curve in [self.rate_instant, self.rate_rolling, self.eff_rolling, self.eff_run, self.eff_run_above,
                      *self._power_curves]:
            curve.setPen(pg.mkPen(theme.colors[curve.color_key], width=curve.base_width * scale,
                                  style=Qt.DashLine if curve.dash else Qt.SolidLine))
        for items in self._regions:
            for item in items:
                item.setBrush(pg.mkBrush(theme.colors[f"phase_{item.kind}"]))

    def set_presentation(self, on: bool) -> None:
        self._presentation = on
        self.apply_theme(self.theme)

    def _user_moved_view(self, *_) -> None:
        self.follow = False

    def follow_live(self) -> None:
        self.follow = True
        for plot in self.plots:
            plot.enableAutoRange(axis="y")

    def show_all(self) -> None:
        """Zoom out to the whole history (and stop following)."""
        if self._series is not None:
            self.follow = False
            self.rate_plot.setXRange(0, max(self._series.now_s, 1), padding=0.01)

    # --- drawing -------------------------------------------------------------------------------

    def refresh(self) -> None:
        series = self._series
        if series is None:
            return
        now = series.now_s
        if self.follow:
            x0, x1 = max(0.0, now - FOLLOW_WINDOW_S), max(now, 10.0)
            self.rate_plot.setXRange(x0, x1, padding=0)
        else:
            x0, x1 = self.rate_plot.getViewBox().viewRange()[0]
        max_points = max(200, 2 * int(self.width()))
        for i, curve in enumerate(self._power_curves):
            curve.setData(*series.power_series(i, x0, x1, max_points))
        bins = series.bin_series(x0, x1)
        x = bins["x"]
        self.rate_instant.setData(x, bins["tok_s"])
        self.rate_rolling.setData(x, bins["tok_s_rolling"])
        self.eff_rolling.setData(x, bins["tok_j_rolling"])
        self.eff_run.setData(x, bins["tok_j_run"])
        self.eff_run_above.setData(x, bins["tok_j_run_above_idle"])
        self._refresh_regions(series)

    def _refresh_regions(self, series: LiveSeries) -> None:
        for i, span in enumerate(series.phases):
            t1 = span.t1_ns if span.t1_ns is not None else series.latest_ns
            edges = (series.seconds(span.t0_ns), series.seconds(t1))
            if i < len(self._regions):
                if span.t1_ns is None or i >= len(series.phases) - 2:
                    for item in self._regions[i]:
                        item.setRegion(edges)
                continue
            items = []
            for plot in self.plots:
                item = pg.LinearRegionItem(edges, movable=False, brush=pg.mkBrush(self.theme.colors[f"phase_{span.kind}"]),
                                           pen=pg.mkPen(None))
                item.kind = span.kind
                item.setZValue(-10)
                plot.addItem(item, ignoreBounds=True)
                items.append(item)
            self._regions.append(items)

    def export(self, path: str) -> None:
        """The three charts as one picture (.png/.svg) or their data (.csv)."""
        import pyqtgraph.exporters as exporters

        if path.lower().endswith(".svg"):
            QtSvgExporter(self.scene()).export(path)
        elif path.lower().endswith(".csv"):
            _export_csv(self, path)
        else:
            exporters.ImageExporter(self.scene()).export(path)


def _export_csv(charts: LiveCharts, path: str) -> None:
    """Every visible curve as columns (x, y per curve), named by chart and legend."""
    import csv

    columns: list[tuple[str, np.ndarray]] = []
    for plot, chart in zip(charts.plots, ("tokens_per_s", "power_w", "tokens_per_j")):
        for item in plot.listDataItems():
            x, y = item.getData()
            if x is None:
                continue
            label = f"{chart}:{item.name()}"
            columns += [(f"{label}:time_s", x), (f"{label}:value", y)]
    length = max((len(c) for _, c in columns), default=0)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([name for name, _ in columns])
        for i in range(length):
            writer.writerow(["" if i >= len(c) or not np.isfinite(c[i]) else f"{c[i]:.6g}" for _, c in columns])
