"""The dashboard view: tiles, the three charts, the streamed text and the last run's table.

It is fed: one ``DashboardFigures`` snapshot for the tiles (computed in
``metrics.dashboard``), text as it streams, a finished report for the
table. It does no arithmetic on figures of its own.
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import (
    QPlainTextEdit,
    QSplitter,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from ..analysis.tables import figure, header, speed
from ..run.results import RunReport
from ..view.dashboard import DashboardFigures, live_dashboard
from ..view.live import LiveSeries
from .charts import LiveCharts
from .form import plain_label
from .theme import Theme
from .tiles import TileBoard

_TILES = (
    ("tok_s", "speed_tok_s"),
    ("power_w", "power_w"),
    ("tok_j", "tokens_per_j"),
    ("j_tok", "j_per_token"),
    ("wh_1k", "wh_per_1k_tokens"),
    ("cost_1m", "cost_per_1m_tokens"),
    ("ttft", "first_token_s"),
)


class DashboardView(QWidget):
    def __init__(self, theme: Theme, parent=None):
        super().__init__(parent)
        self.setFocusPolicy(Qt.ClickFocus)  # where focus rests while a run disables the controls
        self.header = plain_label()  # presentation mode: which model, and whether a run is on
        self.header.setAlignment(Qt.AlignCenter)
        self.header.hide()
        self.tiles = TileBoard()
        self.charts = LiveCharts(theme)
        self.output = QPlainTextEdit()
        self.output.setReadOnly(True)
        self.output.setPlaceholderText("Generated text streams here.")
        self.output.document().setMaximumBlockCount(5000)
        self.summary = QTextBrowser()
        self.summary.setPlaceholderText("The last run's figures appear here when it ends.")
        self.tabs = QTabWidget()
        self.tabs.addTab(self.output, "Output")
        self.tabs.addTab(self.summary, "Last run")
        self.tabs.setMinimumHeight(140)  # room for the last run's table, not one row of it
        self.split = QSplitter(Qt.Vertical)
        self.split.addWidget(self.charts)
        self.split.addWidget(self.tabs)
        self.split.setStretchFactor(0, 3)
        self.split.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.header)
        layout.addWidget(self.tiles)
        layout.addWidget(self.split, 1)

    def show_figures(self, figures: DashboardFigures) -> None:
        for key, name in _TILES:
            figure = getattr(figures, name)
            unit = f"{figures.currency} / 1M tok" if key == "cost_1m" else None
            self.tiles[key].set(figure.value, figure.basis, unit=unit, why=figure.why)

    def show_live(self, live: LiveSeries, price_per_kwh: float | None, currency: str) -> None:
        """The tiles during a run: the live series' latest figures, through ``view.dashboard``."""
        self.show_figures(live_dashboard(live.live_figures(price_per_kwh), method=live.method, currency=currency))

    def append_text(self, text: str) -> None:
        cursor = self.output.textCursor()
        cursor.movePosition(cursor.MoveOperation.End)
        cursor.insertText(text)
        self.output.setTextCursor(cursor)
        self.output.ensureCursorVisible()

    def show_output(self) -> None:
        self.tabs.setCurrentWidget(self.output)

    def show_report(self, report: RunReport, db_path: Path | None) -> None:
        self.summary.setHtml(summary_html(report, db_path))
        self.tabs.setCurrentWidget(self.summary)

    def set_header(self, text: str) -> None:
        self.header.setText(text)

    def set_presentation(self, on: bool) -> None:
        self.tabs.setVisible(not on)
        self.header.setVisible(on)
        self.header.setStyleSheet(f"font-size: {22 if on else 10}pt; font-weight: 600;")
        self.tiles.set_presentation(on)
        self.charts.set_presentation(on)

    def apply_theme(self, theme: Theme) -> None:
        self.charts.apply_theme(theme)
        self.tiles.setStyleSheet(
            f"QFrame#tile {{ background: {theme.colors['panel']}; border: 1px solid {theme.colors['axis']}; "
            f"border-radius: 6px; }}"
        )

    def save(self, s: QSettings) -> None:
        s.setValue("window/dashboard_split", self.split.saveState())

    def restore(self, s: QSettings) -> None:
        state = s.value("window/dashboard_split")
        if state is not None:
            self.split.restoreState(state)


def summary_html(report: RunReport, db_path: Path | None) -> str:
    """The run's summary rows, each missing figure footnoted with why; headers from the record's field list."""
    model = report.meta.model
    currency = report.meta.options.currency
    rows, notes = [], {}
    names = (
        "average_w",
        "tokens_per_j",
        "tokens_per_j_above_idle",
        "j_per_token",
        "wh_per_1k_tokens",
        "cost_per_1m_tokens",
    )
    for s in report.summaries:
        rows.append(
            f"<tr><td>{html.escape(s.test)}/{s.phase}</td><td align=right>{s.tokens_per_repetition}</td>"
            f"<td align=right>{html.escape(speed(s))}</td>"
            + "".join(f"<td align=right>{html.escape(figure(s, n, notes))}</td>" for n in names)
            + f"<td>{html.escape(s.method_text)}</td></tr>"
        )
    idle = report.idle
    idle_text = (
        f"{idle.power_w:.1f} W over {idle.seconds:.1f} s ({idle.method})"
        if idle
        else html.escape(report.idle_reason or "not measured")
    )
    if report.save_error:
        saved = f"<b>Not saved: {html.escape(report.save_error)}</b> (File ▸ Save results as…)."
    elif report.session_id:
        saved = f"Saved as session {report.session_id} in {html.escape(str(db_path))}."
    else:
        saved = "Not saved."
    footnotes = "".join(f"<br>[{n}] {html.escape(reason)}" for reason, n in notes.items())
    headers = "".join(f"<th>{html.escape(header(n))}</th>" for n in names[:-1])
    table = (
        "<table cellspacing=0 cellpadding=3 border=1><tr><th>test/phase</th><th>tokens</th><th>tok/s</th>"
        f"{headers}<th>{html.escape(header(names[-1]))} ({html.escape(currency)})</th><th>method</th></tr>"
        f"{''.join(rows)}</table>"
        if rows
        else "<p>No repetition finished.</p>"
    )
    return (
        f"<p><b>{html.escape(model.file_name)}</b> ({html.escape(model.quantization)}) · run {report.status} · "
        f"idle baseline {idle_text} · {saved}</p>{table}"
        "<p>Speed is the mean of repetitions (as llama-bench); energy figures are pooled: all repetitions' tokens "
        "over all their joules." + footnotes + "</p>"
    )
