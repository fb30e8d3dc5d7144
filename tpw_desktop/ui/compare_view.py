"""The compare view: sessions or a sweep side by side, as a table, bar charts, the frontier and a report.

The numbers come from the core's ``compare`` (the same as ``tpw sessions
compare``): mean ± sd per figure and phase, ratios against a chosen
baseline, and a warning when the sessions ran on different machines,
builds or power-measuring methods. A power-limit sweep also gets its
efficiency curve, with the best cap marked.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..analysis.compare import ComparedRow, Comparison, compare, plus_minus, ratio_text
from ..analysis.labels import short_labels, wrapped
from ..analysis.report import write_report
from ..errors import TpwError
from ..store import Store
from .form import plain_label, plain_tip
from .svg_export import export_svg
from .theme import Theme

HEADERS = ("variant", "test/phase", "runs", "tok/s", "tok/J", "J/token", "W", "tok/s ×", "tok/J ×", "method")


class CompareView(QWidget):
    problem = Signal(str)
    saved = Signal(str)

    def __init__(self, db_path: Path | None, theme: Theme, parent=None):
        super().__init__(parent)
        self.db_path = db_path
        self.theme = theme
        self.comparison: Comparison | None = None
        self._session_ids: list[int] | None = None
        self._sweep_id: int | None = None
        self.sweep_box = QComboBox()
        self.sweep_box.setToolTip("Compare every run of a sweep (pick sessions in History to compare those instead)")
        self.sweep_box.activated.connect(self._sweep_chosen)
        self.baseline_box = QComboBox()
        self.baseline_box.setToolTip("The variant the ratios are taken against")
        self.baseline_box.activated.connect(lambda _: self._recompare(self.baseline_box.currentText()))
        self.report_button = QPushButton("Export report…")
        self.report_button.setToolTip("The comparison as one HTML file (charts inline), or CSV/JSON of every figure")
        self.report_button.clicked.connect(self.ask_export_report)
        self.charts_button = QPushButton("Export charts…")
        self.charts_button.setToolTip("The charts as a PNG picture or an SVG drawing")
        self.charts_button.clicked.connect(self.ask_export_charts)
        self.title = QLabel("Pick sessions in History and press 'Compare selected', or choose a sweep.")
        self.title.setWordWrap(True)
        self.warnings = plain_label()
        self.warnings.setWordWrap(True)
        self.warnings.hide()
        self.table = QTableWidget(0, len(HEADERS))
        self.table.setHorizontalHeaderLabels(HEADERS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.plots = pg.GraphicsLayoutWidget()
        self.eff_plot = self.plots.addPlot(row=0, col=0, title="Efficiency, mean ± sd")
        self.speed_plot = self.plots.addPlot(row=0, col=1, title="Speed, mean ± sd")
        self.frontier_plot = self.plots.addPlot(row=1, col=0, title="Speed against efficiency (up and right is better)")
        self.limit_plot = self.plots.addPlot(row=1, col=1, title="Efficiency against the GPU power limit")
        self.eff_plot.setLabel("left", "tokens per joule (tok/J)")
        self.speed_plot.setLabel("left", "tokens per second (tok/s)")
        self.frontier_plot.setLabel("bottom", "tokens per second (tok/s)")
        self.frontier_plot.setLabel("left", "tokens per joule (tok/J)")
        self.limit_plot.setLabel("bottom", "GPU power limit (W)")
        self.limit_plot.setLabel("left", "tokens per joule (tok/J)")
        for plot in (self.eff_plot, self.speed_plot, self.frontier_plot, self.limit_plot):
            plot.setMenuEnabled(False)
            plot.showGrid(x=False, y=True, alpha=0.25)
            for axis in ("left", "bottom"):
                plot.getAxis(axis).enableAutoSIPrefix(False)
        self.bars: dict[str, pg.BarGraphItem] = {}
        self._compose()
        self._set_enabled()
        self.apply_theme(theme)

    def _compose(self) -> None:
        top = QHBoxLayout()
        for label, widget in (("sweep", self.sweep_box), ("baseline", self.baseline_box)):
            top.addWidget(plain_label(label))
            top.addWidget(widget, 1)
        top.addWidget(self.report_button)
        top.addWidget(self.charts_button)
        upper = QWidget()
        upper_layout = QVBoxLayout(upper)
        upper_layout.setContentsMargins(0, 0, 0, 0)
        upper_layout.addLayout(top)
        upper_layout.addWidget(self.title)
        upper_layout.addWidget(self.warnings)
        upper_layout.addWidget(self.table, 1)
        self.split = QSplitter(Qt.Vertical)
        self.split.addWidget(upper)
        self.split.addWidget(self.plots)
        self.split.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.split)

    def _set_enabled(self) -> None:
        for widget in (self.report_button, self.charts_button, self.baseline_box):
            widget.setEnabled(self.comparison is not None)

    # --- what to compare -----------------------------------------------------------------------

    def refresh_sweeps(self) -> None:
        """The sweeps in the database, the one being compared still chosen."""
        self.sweep_box.clear()
        self.sweep_box.addItem("choose a sweep…", None)
        if self.db_path is None or not Path(self.db_path).exists():
            return
        try:
            with Store.for_reading(self.db_path) as store:
                sweeps = store.sweeps()
        except TpwError as exc:
            self.problem.emit(f"compare: {exc}")
            return
        for s in sweeps:
            self.sweep_box.addItem(f"sweep {s.id}: {s.kind}, {s.status}, {s.started_at[:16]}", s.id)
        if self.comparison is None and sweeps:  # nothing picked yet: the newest sweep
            self.show_sweep(sweeps[0].id)
        elif self._sweep_id is not None:
            self.sweep_box.setCurrentIndex(max(self.sweep_box.findData(self._sweep_id), 0))

    def _sweep_chosen(self, index: int) -> None:
        sweep_id = self.sweep_box.itemData(index)
        if sweep_id is not None:
            self.show_sweep(int(sweep_id))

    def show_sessions(self, session_ids: list[int]) -> None:
        self._session_ids, self._sweep_id = list(session_ids), None
        self._recompare(None)

    def show_sweep(self, sweep_id: int) -> None:
        self._session_ids, self._sweep_id = None, sweep_id
        index = self.sweep_box.findData(sweep_id)
        if index >= 0:
            self.sweep_box.setCurrentIndex(index)
        self._recompare(None)

    def _recompare(self, baseline: str | None) -> None:
        try:
            with Store.for_reading(self.db_path) as store:
                comparison = compare(store, self._session_ids, sweep_id=self._sweep_id, baseline=baseline)
        except TpwError as exc:
            self.problem.emit(f"compare: {exc}")
            return
        self.show_comparison(comparison)

    # --- drawing -----------------------------------------------------------------------------

    def show_comparison(self, comparison: Comparison) -> None:
        self.comparison = comparison
        what = (
            f"sweep {comparison.sweep.id} ({comparison.sweep.kind})"
            if comparison.sweep
            else f"{len(comparison.sessions)} sessions"
        )
        self.title.setText(
            f"<b>{html.escape(what)}</b>: {len(comparison.variants)} variants, ratios against "
            f"<b>{html.escape(comparison.baseline)}</b>. Speeds are means of runs ± sd; energy pools every run's "
            "tokens over its joules."
        )
        self.warnings.setText("\n".join(f"⚠ {w}" for w in comparison.differences))
        self.warnings.setStyleSheet(f"background: {self.theme.colors['warning']}; padding: 4px")
        self.warnings.setVisible(bool(comparison.differences))
        self.baseline_box.clear()
        self.baseline_box.addItems(comparison.variants)
        self.baseline_box.setCurrentText(comparison.baseline)
        self._fill_table(comparison.rows)
        main = comparison.main_rows()
        what = ", ".join(sorted({f"{r.test}/{r.phase}" for r in main}))
        self.eff_plot.setTitle(f"Efficiency ({what}), mean ± sd", color=self.theme.colors["foreground"])
        self.speed_plot.setTitle(f"Speed ({what}), mean ± sd", color=self.theme.colors["foreground"])
        labels = short_labels([r.variant for r in main])
        legend = "\n".join(f"{label}: {r.variant}" for label, r in zip(labels, main) if label != r.variant)
        self.plots.setToolTip(plain_tip(legend) if legend else "")
        self._bars(self.eff_plot, "tokens_per_j", main, labels)
        self._bars(self.speed_plot, "tokens_per_s", main, labels)
        self._frontier(main, labels)
        self._limit_curve(main, comparison.best_power_limit())
        self._set_enabled()

    def _fill_table(self, rows: list[ComparedRow]) -> None:
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            cells = (
                r.variant,
                f"{r.test}/{r.phase}",
                str(r.runs),
                plus_minus(r.tokens_per_s, 2),
                plus_minus(r.tokens_per_j, 3),
                plus_minus(r.j_per_token, 4),
                plus_minus(r.average_w, 1),
                ratio_text(r.ratio_tokens_per_s),
                ratio_text(r.ratio_tokens_per_j),
                r.method + ("" if r.confident else " (low confidence)"),
            )
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if text == "unknown" and r.unknown:
                    item.setToolTip("; ".join(f"{k}: {v}" for k, v in r.unknown.items()))
                if j >= 2:
                    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                self.table.setItem(i, j, item)

    def _bars(self, plot, figure: str, rows: list[ComparedRow], labels: list[str]) -> None:
        """One bar per variant (its headline row), the sd as error bars; 'unknown' where there's no figure.

        Under each bar what tells its variant apart (``analysis.labels``), wrapped to its slot; the
        full names are in the charts' tooltip and the table.
        """
        plot.clear()
        x = np.arange(len(rows), dtype=float)
        stats = [getattr(r, figure) for r in rows]
        heights = np.array([s.mean if s.mean is not None else 0.0 for s in stats])
        color = self.theme.colors["eff_run" if figure == "tokens_per_j" else "rate_rolling"]
        bars = pg.BarGraphItem(x=x, height=heights, width=0.6, brush=pg.mkBrush(color), pen=pg.mkPen(color))
        plot.addItem(bars)
        self.bars[figure] = bars
        sds = np.array([s.sd or 0.0 for s in stats])
        plot.addItem(
            pg.ErrorBarItem(
                x=x, y=heights, top=sds, bottom=sds, beam=0.2, pen=pg.mkPen(self.theme.colors["foreground"], width=1.5)
            )
        )
        for xi, s in zip(x, stats):
            if s.mean is None:
                label = pg.TextItem("unknown", color=self.theme.colors["foreground"], anchor=(0.5, 1))
                label.setPos(xi, 0)
                plot.addItem(label)
        width = max(int(self.plots.width() / 2 / max(len(rows), 1) / 7), 6)  # characters a slot holds
        lines = [wrapped(label, width)[:2] for label in labels]
        axis = plot.getAxis("bottom")
        axis.setTicks([[(xi, "\n".join(text)) for xi, text in zip(x, lines)]])
        axis.setHeight(14 * max((len(text) for text in lines), default=1) + 12)
        top = float(np.max(heights + sds)) if len(rows) else 1.0
        plot.setYRange(0, top * 1.15 or 1.0, padding=0)
        plot.setXRange(-0.6, len(rows) - 0.4, padding=0)

    def _frontier(self, rows: list[ComparedRow], labels: list[str]) -> None:
        plot = self.frontier_plot
        plot.clear()
        label_of = {r.variant: label for r, label in zip(rows, labels)}
        known = [r for r in rows if r.tokens_per_s.mean is not None and r.tokens_per_j.mean is not None]
        if not known:
            return
        plot.addItem(
            pg.ScatterPlotItem(
                [r.tokens_per_s.mean for r in known],
                [r.tokens_per_j.mean for r in known],
                size=10,
                brush=pg.mkBrush(self.theme.colors["eff_run"]),
            )
        )
        right = max(r.tokens_per_s.mean for r in known) * 1.25
        for i, r in enumerate(sorted(known, key=lambda r: r.tokens_per_j.mean)):
            # left of the point in the right half, and alternately below and above, so close points stay legible
            anchor = (1.05 if r.tokens_per_s.mean > right / 2 else -0.05, 1.0 if i % 2 else 0.0)
            label = pg.TextItem(label_of[r.variant], color=self.theme.colors["foreground"], anchor=anchor)
            label.setPos(r.tokens_per_s.mean, r.tokens_per_j.mean)
            plot.addItem(label)
        plot.setXRange(0, right, padding=0)
        plot.setYRange(0, max(r.tokens_per_j.mean for r in known) * 1.2, padding=0)

    def _limit_curve(self, rows: list[ComparedRow], best: ComparedRow | None) -> None:
        plot = self.limit_plot
        plot.clear()
        limited = sorted(
            (r for r in rows if r.power_limit_w is not None and r.tokens_per_j.mean is not None),
            key=lambda r: r.power_limit_w,
        )
        plot.setVisible(bool(limited))
        if not limited:
            return
        pen = pg.mkPen(self.theme.colors["eff_run"], width=2)
        plot.plot(
            [r.power_limit_w for r in limited],
            [r.tokens_per_j.mean for r in limited],
            pen=pen,
            symbol="o",
            symbolBrush=pg.mkBrush(self.theme.colors["eff_run"]),
        )
        if best is not None:
            plot.addItem(
                pg.ScatterPlotItem(
                    [best.power_limit_w],
                    [best.tokens_per_j.mean],
                    symbol="star",
                    size=18,
                    brush=pg.mkBrush(self.theme.colors["eff_above"]),
                )
            )
            label = pg.TextItem(
                f"best: {best.power_limit_w:g} W, {best.tokens_per_j.mean:.3f} tok/J, "
                f"{best.tokens_per_s.mean:.1f} tok/s",
                color=self.theme.colors["foreground"],
                anchor=(0.5, 1.2),
            )
            label.setPos(best.power_limit_w, best.tokens_per_j.mean)
            plot.addItem(label)

    def apply_theme(self, theme: Theme) -> None:
        self.theme = theme
        self.plots.setBackground(theme.colors["background"])
        for plot in (self.eff_plot, self.speed_plot, self.frontier_plot, self.limit_plot):
            plot.setTitle(plot.titleLabel.text, color=theme.colors["foreground"])
            for axis in ("left", "bottom"):
                plot.getAxis(axis).setPen(theme.colors["axis"])
                plot.getAxis(axis).setTextPen(theme.colors["foreground"])
        if self.comparison is not None:
            self.show_comparison(self.comparison)

    # --- export --------------------------------------------------------------------------------

    def ask_export_report(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self,
            "Export the comparison",
            str(Path.home() / "tpw-comparison.html"),
            "HTML report (*.html);;CSV (*.csv);;JSON (*.json)",
        )
        if path:
            self.export_report(path)

    def ask_export_charts(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self,
            "Export the charts",
            str(Path.home() / "tpw-comparison.png"),
            "PNG image (*.png);;SVG drawing (*.svg)",
        )
        if path:
            self.export_charts(path)

    def export_report(self, path: str) -> None:
        if self.comparison is None:
            return
        try:
            write_report(self.comparison, path)
        except TpwError as exc:
            self.problem.emit(str(exc))
            return
        self.saved.emit(str(path))

    def export_charts(self, path: str) -> None:
        if self.comparison is None:
            return
        target = Path(path)
        if target.suffix.lower() not in (".png", ".svg") or not target.parent.is_dir():
            self.problem.emit(f"{target}: choose a .png or .svg file in a folder that exists")
            return
        partial = target.with_name(f".{target.name}.part{target.suffix}")
        if target.suffix.lower() == ".svg":
            export_svg(self.plots.scene(), str(partial))
        else:
            import pyqtgraph.exporters as exporters

            exporters.ImageExporter(self.plots.scene()).export(str(partial))
        partial.replace(target)
        self.saved.emit(str(target))
