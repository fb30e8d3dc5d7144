"""The fleet view: tokens/s, watts and tokens per joule per node and for the fleet, read from Prometheus.

The figures come from the core's ``fleet_figures`` (the same as ``tpw
fleet``), fetched on a worker thread so a slow server never stalls the
window, every few seconds while the view is watching. Each figure shows
its method and the scrape interval it is resolved to; a node that stopped
reporting is marked, and left out of the fleet's sums.
"""

from __future__ import annotations

import html
import time
from concurrent.futures import Future, ThreadPoolExecutor

import pyqtgraph as pg
from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..errors import TpwError
from ..peers.prometheus_server import PrometheusApi
from ..peers.text import plain
from ..peers.urls import redact
from ..prometheus.fleet import FleetFigures, fleet_figures
from .form import plain_label, spin_box
from .theme import Theme

HEADERS = ("node", "engine", "tok/s", "W", "tok/J", "method", "resolution", "status")
POLL_S = 5.0
TOP_NODES = 50  # table rows: a fleet of 10,000 series shows its busiest nodes, and counts the rest
PLOTTED_NODES = 8  # curves beside the fleet's


def _fig(value: float | None, digits: int) -> str:
    return "unknown" if value is None else f"{value:.{digits}f}"


class FleetView(QWidget):
    def __init__(self, theme: Theme, parent=None, *, poll_s: float = POLL_S):
        super().__init__(parent)
        self.theme = theme
        self.poll_s = poll_s
        self.url = QLineEdit("http://127.0.0.1:9090")
        self.url.setToolTip("The Prometheus server that scrapes dcgm-exporter and llama-server, vLLM or tpw")
        self.window_s = spin_box(QDoubleSpinBox, 5, 3600, 60, suffix=" s", tip="How much history each figure covers")
        self.watch_button = QPushButton("Watch")
        self.watch_button.setCheckable(True)
        self.watch_button.toggled.connect(self.watch)
        self.url.returnPressed.connect(lambda: self.watch_button.setChecked(True))  # Enter watches, as a user types
        self.state = plain_label("Not watching. Enter your Prometheus server and press Enter or Watch.")
        self.state.setWordWrap(True)
        self.table = QTableWidget(0, len(HEADERS))
        self.table.setHorizontalHeaderLabels(HEADERS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.plot = pg.PlotWidget()
        self.plot.setLabel("left", "tokens per joule (tok/J)")
        self.plot.setLabel("bottom", "time since watching began (s)")
        self.plot.addLegend(offset=(10, 5))
        self.plot.showGrid(y=True, alpha=0.25)
        for axis in ("left", "bottom"):
            self.plot.getAxis(axis).enableAutoSIPrefix(False)
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.history: dict[str, tuple[list[float], list[float]]] = {}
        self.figures: FleetFigures | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tpw-fleet")
        self._api: PrometheusApi | None = None
        self._api_for = ""
        self._pending: Future | None = None
        self._started = time.monotonic()
        self.timer = QTimer(self)
        self.timer.setInterval(250)
        self.timer.timeout.connect(self._tick)
        self._next_poll = 0.0
        top = QHBoxLayout()
        top.addWidget(plain_label("Prometheus"))
        top.addWidget(self.url, 1)
        top.addWidget(plain_label("window"))
        top.addWidget(self.window_s)
        top.addWidget(self.watch_button)
        split = QSplitter(Qt.Vertical)
        split.addWidget(self.table)
        split.addWidget(self.plot)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.state)
        layout.addWidget(split, 1)
        self.apply_theme(theme)

    def watch(self, on: bool) -> None:
        self.watch_button.setChecked(on)
        if on:
            self._started, self._next_poll = time.monotonic(), 0.0
            self.history.clear()
            for curve in self.curves.values():
                self.plot.removeItem(curve)
            self.curves.clear()
            self.timer.start()
        else:
            self.timer.stop()
            self.state.setText("Not watching.")

    def _tick(self) -> None:
        if self._pending is not None and self._pending.done():
            future, self._pending = self._pending, None
            try:
                self.show_figures(future.result())
            except TpwError as exc:
                self.state.setText(f"⚠ {exc} (trying again every {self.poll_s:g} s)")
        if self._pending is None and time.monotonic() >= self._next_poll:
            self._next_poll = time.monotonic() + self.poll_s
            url, window_s = self.url.text().strip(), self.window_s.value()
            self._pending = self._pool.submit(self._poll, url, window_s)

    def _poll(self, url: str, window_s: float) -> FleetFigures:
        """On the pool's thread: one client per URL, kept between polls (and closed with the view)."""
        if self._api is None or self._api_for != url:
            if self._api is not None:
                self._api.close()
            self._api, self._api_for = PrometheusApi(url), url
        return fleet_figures(self._api, window_s)

    def show_figures(self, figures: FleetFigures) -> None:
        self.figures = figures
        top, hidden = figures.top(TOP_NODES)
        rows = [*top, figures.fleet]
        self.table.setRowCount(len(rows))
        bold = QFont()
        bold.setBold(True)
        for i, n in enumerate(rows):
            status = "reporting" if n.reporting else "stopped reporting"
            if n.reporting and n.tokens_per_j is None:
                status = n.unknown.get("tokens_per_j", "unknown")
            elif not n.reporting:
                status = n.unknown.get("tokens_per_j", status)
            cells = (
                n.node,
                ", ".join(n.engines) or "-",
                _fig(n.tokens_per_s, 1),
                _fig(n.watts, 1),
                _fig(n.tokens_per_j, 3),
                n.method_text,
                f"{n.resolution_s:g} s scrapes" if n.resolution_s else "?",
                status,
            )
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if n is figures.fleet:
                    item.setFont(bold)
                if j in (2, 3, 4):
                    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                self.table.setItem(i, j, item)
            if n is figures.fleet or i < PLOTTED_NODES:
                self._plot_point(n.node if n is not figures.fleet else "fleet", n.tokens_per_j)
        down = [n.node for n in figures.nodes if not n.reporting]
        more = f" (the busiest {len(top)} shown, {hidden} more counted in the fleet row)" if hidden else ""
        self.state.setText(
            f"{len(figures.nodes)} nodes{more}, {figures.window_s:g} s windows, every {self.poll_s:g} s"
            + (f" · stopped reporting: {plain(', '.join(down))}" if down else "")
        )

    def _plot_point(self, name: str, tok_j: float | None) -> None:
        xs, ys = self.history.setdefault(name, ([], []))
        xs.append(time.monotonic() - self._started)
        ys.append(float("nan") if tok_j is None else tok_j)  # a gap, never a zero
        if name not in self.curves:
            color = (
                self.theme.colors["eff_run"] if name == "fleet" else self.theme.colors[f"source{len(self.curves) % 4}"]
            )
            self.curves[name] = self.plot.plot(
                [], [], name=html.escape(name), pen=pg.mkPen(color, width=3 if name == "fleet" else 1), connect="finite"
            )
        self.curves[name].setData(xs, ys)

    def apply_theme(self, theme: Theme) -> None:
        self.theme = theme
        self.plot.setBackground(theme.colors["background"])
        for axis in ("left", "bottom"):
            self.plot.getAxis(axis).setPen(theme.colors["axis"])
            self.plot.getAxis(axis).setTextPen(theme.colors["foreground"])

    def save(self, s: QSettings) -> None:
        s.setValue("fleet/url", redact(self.url.text()))  # never a password in the settings file
        s.setValue("fleet/window_s", self.window_s.value())

    def restore(self, s: QSettings) -> None:
        self.url.setText(str(s.value("fleet/url", self.url.text())))
        self.window_s.setValue(float(s.value("fleet/window_s", self.window_s.value())))

    def close_pool(self) -> None:
        self.timer.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)
        api, self._api = self._api, None
        if api is not None:
            api.close()
