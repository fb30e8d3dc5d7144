"""Three live charts on one time axis: tokens/s, watts, tokens per joule.

Each refresh hands pyqtgraph only the visible range, decimated to a couple
of points per pixel column (one in presentation mode, where the charts are
large); phase regions are added as they appear and only the open one is
moved. Right-click any chart for tpw's menu: export (PNG, SVG, CSV), follow
live, whole history.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QFont
from PySide6.QtWidgets import QGraphicsItem, QMenu

from ..errors import TpwError
from ..files import atomic_writer
from ..serialize import SafeCsvWriter
from ..view.live import LiveSeries
from .chart_items import PHASE_KINDS, GridLines, PhaseBands, opaque
from .svg_export import export_svg
from .theme import Theme

FOLLOW_WINDOW_S = 120.0
# Axes re-render their tick text whenever a range changes, and that text is
# the costliest thing on screen. So the view scrolls in one-second steps
# (a step ahead of now) and the y ranges only move when the data outgrows
# them or falls well below, to round numbers.
FOLLOW_STEP_S = 1.0
Y_SHRINK_BELOW = 0.4


def nice_ceiling(value: float) -> float:
    """The next of 1, 2, 2.5, 5 x 10^k at or above ``value`` (with 5% headroom)."""
    if not math.isfinite(value) or value <= 0:
        return 1.0
    value *= 1.05
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * 10**exponent >= value:
            return step * 10**exponent
    return 10 ** (exponent + 1)


class LiveCharts(pg.GraphicsLayoutWidget):
    export_requested = Signal()

    def __init__(self, theme: Theme, parent=None):
        super().__init__(parent)
        self.theme = theme
        self.follow = True
        self.auto_y = True
        self._x_range: tuple[float, float] | None = None
        self._presentation = False
        self._series: LiveSeries | None = None
        self._power_curves: list[pg.PlotDataItem] = []
        self.rate_plot = self.addPlot(row=0, col=0)
        self.power_plot = self.addPlot(row=1, col=0)
        self.eff_plot = self.addPlot(row=2, col=0)
        self.plots = [self.rate_plot, self.power_plot, self.eff_plot]
        # A y-axis's top label is centred on the plot's top edge: without a gap it printed over the
        # "0" of the chart above.
        self.ci.layout.setVerticalSpacing(14)
        for plot in self.plots[1:]:
            plot.setXLink(self.rate_plot)
        for plot in self.plots:
            plot.setMenuEnabled(False)  # tpw's own menu (contextMenuEvent), not pyqtgraph's raw one
            plot.hideButtons()
            plot.setClipToView(True)
            plot.setDownsampling(auto=False)
            plot.addLegend(offset=(10, 5))
            plot.getViewBox().sigRangeChangedManually.connect(self._user_moved_view)
            plot.disableAutoRange()
            plot.setYRange(0, 1, padding=0)
        self.eff_plot.setLabel("bottom", "time since start (s)")  # one shared axis: label it once
        self.eff_plot.getAxis("bottom").enableAutoSIPrefix(False)  # seconds stay seconds, never "ks"
        for plot in self.plots[:2]:
            plot.getAxis("bottom").setStyle(showValues=False)
        for plot in self.plots:
            for axis in ("left", "bottom"):
                # Replaying an axis's text costs ~2 ms a frame; as a cached pixmap it's a
                # blit until the axis itself changes.
                plot.getAxis(axis).setCacheMode(QGraphicsItem.DeviceCoordinateCache)
            plot.legend.setCacheMode(QGraphicsItem.DeviceCoordinateCache)
        self.bands = [PhaseBands(self._phase_brushes(theme)) for _ in self.plots]
        self.grids = [GridLines(plot, self._grid_color(theme)) for plot in self.plots]
        for plot, bands, grid in zip(self.plots, self.bands, self.grids):
            bands.setZValue(-10)
            grid.setZValue(-9)
            plot.addItem(bands, ignoreBounds=True)
            plot.addItem(grid, ignoreBounds=True)
        self._span_x = (np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int8))
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
        self.idle_line = pg.InfiniteLine(
            angle=0,
            movable=False,
            pen=pg.mkPen(theme.colors["idle"], width=1, style=Qt.DashLine),
            label="idle {value:.1f} W",
            labelOpts={"position": 0.05, "color": theme.colors["idle"]},
        )
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
            curve = self.power_plot.plot(
                [],
                [],
                name=html.escape(f"{name} ({method})"),
                pen=pg.mkPen(self.theme.colors[key], width=1),
                connect="finite",
            )
            curve.color_key, curve.base_width, curve.dash = key, 1, False
            self._power_curves.append(curve)
        self._span_x = (np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int8))
        for bands in self.bands:
            bands.set_spans(*self._span_x)
        self.set_idle(series.idle_w)
        self.follow_live()

    def set_idle(self, idle_w: float | None) -> None:
        self.idle_line.setVisible(idle_w is not None)
        if idle_w is not None:
            self.idle_line.setValue(idle_w)

    def apply_theme(self, theme: Theme) -> None:
        self.theme = theme
        self.setBackground(theme.colors["background"])
        font = QFont()
        font.setPointSize(theme.font_pt * (2 if self._presentation else 1))
        for plot in self.plots:
            plot.legend.setLabelTextSize(f"{theme.font_pt * (2 if self._presentation else 1) - 1}pt")
            for _, label in plot.legend.items:
                label.setText(label.text)  # a LabelItem re-renders only on setText
            for axis in ("left", "bottom"):
                ax = plot.getAxis(axis)
                ax.setPen(theme.colors["axis"])
                ax.setTextPen(theme.colors["foreground"])
                ax.setTickFont(font)
                ax.label.setFont(font)
        self.idle_line.label.setFont(font)
        for curve in [
            self.rate_instant,
            self.rate_rolling,
            self.eff_rolling,
            self.eff_run,
            self.eff_run_above,
            *self._power_curves,
        ]:
            curve.setPen(
                pg.mkPen(
                    theme.colors[curve.color_key],
                    width=curve.base_width,
                    style=Qt.DashLine if curve.dash else Qt.SolidLine,
                )
            )
        for bands in getattr(self, "bands", []):
            bands.brushes = self._phase_brushes(theme)
            bands.update()
        for grid in getattr(self, "grids", []):
            grid.set_color(self._grid_color(theme))

    @staticmethod
    def _phase_brushes(theme: Theme) -> dict[str, QBrush]:
        background = theme.colors["background"]
        return {kind: QBrush(opaque(theme.colors[f"phase_{kind}"], background)) for kind in PHASE_KINDS}

    @staticmethod
    def _grid_color(theme: Theme):
        return opaque(theme.colors["axis"] + "26", theme.colors["background"])  # the axis colour at 15%

    def set_presentation(self, on: bool) -> None:
        self._presentation = on
        self.ci.layout.setVerticalSpacing(30 if on else 14)  # room for the larger axis labels
        self.apply_theme(self.theme)

    def _user_moved_view(self, *_) -> None:
        self.follow = False
        self.auto_y = False

    def follow_live(self) -> None:
        self.follow = self.auto_y = True
        self._x_range = None

    def show_all(self) -> None:
        """Zoom out to the whole history (and stop following)."""
        if self._series is not None:
            self.follow, self.auto_y = False, True
            self.rate_plot.setXRange(0, max(self._series.now_s, 1), padding=0.01)

    def _follow_range(self, now_s: float) -> tuple[float, float]:
        right = max(10.0, (math.floor(now_s / FOLLOW_STEP_S) + 2) * FOLLOW_STEP_S)
        return max(0.0, right - FOLLOW_WINDOW_S), right

    @staticmethod
    def _fit_y(plot, *arrays: np.ndarray) -> None:
        finite = [a[np.isfinite(a)] for a in arrays]
        peak = max((float(a.max()) for a in finite if a.size), default=0.0)
        top = plot.getViewBox().viewRange()[1][1]
        if peak > top or peak < Y_SHRINK_BELOW * top:
            plot.setYRange(0, nice_ceiling(peak), padding=0)

    # --- drawing -------------------------------------------------------------------------------

    def refresh(self) -> None:
        series = self._series
        if series is None:
            return
        if self.follow:
            x0, x1 = self._follow_range(series.now_s)
            if (x0, x1) != self._x_range:
                self._x_range = (x0, x1)
                self.rate_plot.setXRange(x0, x1, padding=0)
        else:
            x0, x1 = self.rate_plot.getViewBox().viewRange()[0]
        # Two points per pixel column keep every peak; full screen has more columns than it needs them.
        max_points = max(200, int(self.width()) * (1 if self._presentation else 2))
        power = [series.power_series(i, x0, x1, max_points) for i in range(len(self._power_curves))]
        for curve, data in zip(self._power_curves, power):
            curve.setData(*data)
        bins = series.bin_series(x0, x1)
        x = bins["x"]
        self.rate_instant.setData(x, bins["tok_s"])
        self.rate_rolling.setData(x, bins["tok_s_rolling"])
        self.eff_rolling.setData(x, bins["tok_j_rolling"])
        run_x, run_tok_j, run_above = series.run_series()
        self.eff_run.setData(run_x, run_tok_j)
        self.eff_run_above.setData(run_x, run_above)
        if self.auto_y:
            idle = [np.array([self.idle_line.value()])] if self.idle_line.isVisible() else []
            self._fit_y(self.power_plot, *(y for _, y in power), *idle)
            self._fit_y(self.rate_plot, bins["tok_s"], bins["tok_s_rolling"])
            self._fit_y(self.eff_plot, bins["tok_j_rolling"], run_tok_j, run_above)
        self._refresh_regions(series)

    def _refresh_regions(self, series: LiveSeries) -> None:
        """Append the spans that appeared since last time; only the newest two can still move."""
        x0, x1, kind = self._span_x
        keep = max(0, min(len(x0), len(series.phases) - 2))
        fresh = series.phases[keep:]
        if not fresh and keep == len(x0):
            return
        new_x0 = np.array([series.seconds(p.t0_ns) for p in fresh])
        new_x1 = np.array([series.seconds(p.t1_ns if p.t1_ns is not None else series.latest_ns) for p in fresh])
        new_kind = np.array([PHASE_KINDS.index(p.kind) for p in fresh], dtype=np.int8)
        self._span_x = (
            np.concatenate((x0[:keep], new_x0)),
            np.concatenate((x1[:keep], new_x1)),
            np.concatenate((kind[:keep], new_kind)),
        )
        for bands in self.bands:
            bands.set_spans(*self._span_x)

    def contextMenuEvent(self, event) -> None:
        menu = QMenu(self)
        menu.addAction("Export charts… (PNG, SVG, CSV)", self.export_requested.emit)
        menu.addSeparator()
        menu.addAction("Follow live (last 2 min)", self.follow_live)
        menu.addAction("Show whole history", self.show_all)
        menu.exec(event.globalPos())

    def export(self, path: str) -> None:
        """The three charts as one picture (.png/.svg) or their data (.csv); a TpwError if it can't be written."""
        import pyqtgraph.exporters as exporters

        target = Path(path)
        if not target.parent.is_dir():
            raise TpwError(f"{target}: the folder {target.parent} does not exist")
        suffix = target.suffix.lower()
        if suffix == ".csv":
            with atomic_writer(target, newline="") as f:
                _write_csv(self, f)
            return
        if suffix not in (".png", ".svg"):
            raise TpwError(f"{target}: choose a .png, .svg or .csv file name")
        partial = target.with_name(f".{target.name}.part{suffix}")
        if suffix == ".svg":
            export_svg(self.scene(), str(partial))
        else:
            exporters.ImageExporter(self.scene()).export(str(partial))
        if not partial.exists():
            raise TpwError(f"{target}: could not be written")
        partial.replace(target)


def _write_csv(charts: LiveCharts, f) -> None:
    """Every visible curve as columns (x, y per curve), named by chart and legend (spreadsheet-safe: a
    source's name can't run as a formula)."""
    columns: list[tuple[str, np.ndarray]] = []
    for plot, chart in zip(charts.plots, ("tokens_per_s", "power_w", "tokens_per_j")):
        for item in plot.listDataItems():
            x, y = item.getData()
            if x is None:
                continue
            label = f"{chart}:{item.name()}"
            columns += [(f"{label}:time_s", x), (f"{label}:value", y)]
    length = max((len(c) for _, c in columns), default=0)
    writer = SafeCsvWriter(f)
    writer.writerow([name for name, _ in columns])
    for i in range(length):
        writer.writerow(["" if i >= len(c) or not np.isfinite(c[i]) else f"{c[i]:.6g}" for _, c in columns])
