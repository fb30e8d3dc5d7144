"""The history view: every stored session in a sortable, filterable table; one opened redraws its run.

An opened session is drawn by the live view's own chart widget from its
stored samples (downsampled per bucket by the store), next to its summary
and what it ran on. Sessions picked here (or a whole sweep) go to the
compare view.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

from PySide6.QtCore import QSettings, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QPushButton,
    QSplitter,
    QTableView,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from ..analysis.history import HistoryRow, history_rows, session_details, stored_series
from ..errors import TpwError
from ..record import fields
from ..record.stored import StoredSession
from ..store import Store
from .charts import LiveCharts
from .form import plain_label
from .theme import Theme

# (header, HistoryRow field, digits for a number or None for text): HistoryRow's field list, its id aside
COLUMNS = tuple((c.header, c.name, c.digits) for c in fields.columns(HistoryRow) if c.name != "session_id")
SORT_ROLE = Qt.UserRole + 1
ID_ROLE = Qt.UserRole + 2
ANY = "any"


def _item(row: HistoryRow, attr: str, digits: int | None) -> QStandardItem:
    value = getattr(row, attr)
    if digits is None:
        item = QStandardItem(str(value))
        item.setData(str(value).lower(), SORT_ROLE)
    else:
        item = QStandardItem("unknown" if value is None else f"{value:.{digits}f}")
        item.setData(-math.inf if value is None else float(value), SORT_ROLE)
        item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
        if value is None:
            item.setToolTip("unknown: open the session to see why")
    item.setEditable(False)
    return item


class SessionFilter(QSortFilterProxyModel):
    """Rows whose text holds every word typed, with the chosen status and method."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.words: list[str] = []
        self.status = ANY
        self.method = ANY
        self.setSortRole(SORT_ROLE)

    def set_filters(self, text: str, status: str, method: str) -> None:
        self.beginFilterChange()
        self.words, self.status, self.method = text.lower().split(), status, method
        self.endFilterChange()

    def filterAcceptsRow(self, source_row: int, parent) -> bool:
        model = self.sourceModel()
        cells = [str(model.index(source_row, c, parent).data() or "").lower() for c in range(model.columnCount())]
        status, method = cells[_column("status")], cells[_column("method")]
        return (
            (self.status == ANY or status == self.status)
            and (self.method == ANY or method == self.method)
            and all(any(w in cell for cell in cells) for w in self.words)
        )


def _column(attr: str) -> int:
    return next(i for i, (_, a, _) in enumerate(COLUMNS) if a == attr)


class HistoryView(QWidget):
    compare_requested = Signal(object)  # list of session ids
    sweep_requested = Signal(int)  # a sweep's id
    problem = Signal(str)

    def __init__(self, db_path: Path | None, theme: Theme, parent=None):
        super().__init__(parent)
        self.db_path = db_path
        self.rows: list[HistoryRow] = []
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter: words in any column (model, quant, workload…)")
        self.filter_edit.setClearButtonEnabled(True)
        self.status_box, self.method_box = QComboBox(), QComboBox()
        for box, tip in (
            (self.status_box, "Only sessions with this status"),
            (self.method_box, "Only sessions whose power was measured this way"),
        ):
            box.setToolTip(tip)
            box.currentTextChanged.connect(self._refilter)
        self.filter_edit.textChanged.connect(self._refilter)
        self.refresh_button = QPushButton("Refresh")
        self.open_button = QPushButton("Open")
        self.open_button.setToolTip("Redraw the selected session's run, with its summary (double-click a row)")
        self.compare_button = QPushButton("Compare selected")
        self.compare_button.setToolTip("Compare the selected sessions (Ctrl+click to pick several)")
        self.sweep_button = QPushButton("Compare its sweep")
        self.sweep_button.setToolTip("Compare every run of the selected session's sweep")
        self.model = QStandardItemModel(0, len(COLUMNS), self)
        self.model.setHorizontalHeaderLabels([c[0] for c in COLUMNS])
        self.proxy = SessionFilter(self)
        self.proxy.setSourceModel(self.model)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.DescendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.activated.connect(lambda _: self.open_selected())  # Enter, or a double-click
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._update_buttons())
        self.count_label = plain_label()
        self.charts = LiveCharts(theme)
        self.details = QTextBrowser()
        self.details.setOpenLinks(False)
        self.details.setHtml("<p>Open a session to see its run again, its summary and what it ran on.</p>")
        self.refresh_button.clicked.connect(self.refresh)
        self.open_button.clicked.connect(self.open_selected)
        self.compare_button.clicked.connect(lambda: self.compare_requested.emit(self.selected_ids()))
        self.sweep_button.clicked.connect(self._compare_sweep)
        self._compose()
        self._update_buttons()

    def _compose(self) -> None:
        top = QHBoxLayout()
        top.addWidget(self.filter_edit, 1)
        for label, box in (("status", self.status_box), ("method", self.method_box)):
            top.addWidget(plain_label(label))
            top.addWidget(box)
        for button in (self.refresh_button, self.open_button, self.compare_button, self.sweep_button):
            top.addWidget(button)
        upper = QWidget()
        upper_layout = QVBoxLayout(upper)
        upper_layout.setContentsMargins(0, 0, 0, 0)
        upper_layout.addLayout(top)
        upper_layout.addWidget(self.table, 1)
        upper_layout.addWidget(self.count_label)
        lower = QSplitter(Qt.Horizontal)
        lower.addWidget(self.charts)
        lower.addWidget(self.details)
        lower.setStretchFactor(0, 3)
        lower.setStretchFactor(1, 2)
        lower.setSizes([900, 600])  # the summary table needs room to be read
        self.split = QSplitter(Qt.Vertical)
        self.split.addWidget(upper)
        self.split.addWidget(lower)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.split)

    # --- data ------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read the session list again (a read-only connection: the measuring process may be writing)."""
        if self.db_path is None or not Path(self.db_path).exists():
            self.rows = []
        else:
            try:
                with Store.for_reading(self.db_path) as store:
                    self.rows = history_rows(store)
            except TpwError as exc:
                self.problem.emit(f"history: {exc}")
                return
        self.model.removeRows(0, self.model.rowCount())
        for row in self.rows:
            items = [_item(row, attr, digits) for _, attr, digits in COLUMNS]
            items[0].setData(row.session_id, ID_ROLE)
            items[0].setToolTip(f"session {row.session_id}")
            self.model.appendRow(items)
        for box, attr in ((self.status_box, "status"), (self.method_box, "method")):
            chosen = box.currentText() or ANY
            box.blockSignals(True)
            box.clear()
            box.addItems([ANY, *sorted({getattr(r, attr) for r in self.rows})])
            box.setCurrentText(chosen if box.findText(chosen) >= 0 else ANY)
            box.blockSignals(False)
        self._refilter()
        self.table.resizeColumnsToContents()
        if self.proxy.rowCount() and not self.table.selectionModel().hasSelection():
            self.table.selectRow(0)  # the newest: Enter opens it

    def _refilter(self) -> None:
        self.proxy.set_filters(
            self.filter_edit.text(), self.status_box.currentText() or ANY, self.method_box.currentText() or ANY
        )
        shown, total = self.proxy.rowCount(), self.model.rowCount()
        self.count_label.setText(f"{shown} of {total} sessions" + ("" if self.db_path else " (sessions aren't saved)"))

    def selected_ids(self) -> list[int]:
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        return [self.proxy.index(r, 0).data(ID_ROLE) for r in rows]

    def _selected_row(self) -> HistoryRow | None:
        ids = self.selected_ids()
        return next((r for r in self.rows if ids and r.session_id == ids[0]), None)

    def _update_buttons(self) -> None:
        ids = self.selected_ids()
        self.open_button.setEnabled(len(ids) == 1)
        self.compare_button.setEnabled(len(ids) >= 2)
        row = self._selected_row()
        self.sweep_button.setEnabled(row is not None and bool(row.sweep))

    def _compare_sweep(self) -> None:
        ids = self.selected_ids()
        if ids:
            with Store.for_reading(self.db_path) as store:
                sweep = store.session(ids[0]).meta.sweep
            if sweep is not None and sweep.id is not None:
                self.sweep_requested.emit(sweep.id)

    # --- one session ------------------------------------------------------------------------

    def open_selected(self) -> None:
        ids = self.selected_ids()
        if len(ids) == 1:
            self.open_session(ids[0])

    def open_session(self, session_id: int) -> None:
        try:
            with Store.for_reading(self.db_path) as store:
                series = stored_series(store, session_id)
                session = store.session(session_id)
        except TpwError as exc:
            self.problem.emit(f"session {session_id}: {exc}")
            return
        self.opened_id = session_id
        self.charts.set_series(series)
        self.charts.show_all()
        self.charts.refresh()
        self.details.setHtml(_details_html(session))

    def apply_theme(self, theme: Theme) -> None:
        self.charts.apply_theme(theme)

    # --- settings ------------------------------------------------------------------------------

    def save(self, s: QSettings) -> None:
        s.setValue("history/filter", self.filter_edit.text())
        s.setValue("history/split", self.split.saveState())
        s.setValue("history/header", self.table.horizontalHeader().saveState())

    def restore(self, s: QSettings) -> None:
        self.filter_edit.setText(str(s.value("history/filter", "")))
        for key, restore in (
            ("history/split", self.split.restoreState),
            ("history/header", self.table.horizontalHeader().restoreState),
        ):
            value = s.value(key)
            if value is not None:
                restore(value)


def _details_html(session: StoredSession) -> str:
    summary, facts = session_details(session)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in summary[0]) if summary else ""
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in summary[1:])
    meta = "".join(f"<tr><th align=left>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts)
    return (
        f"<h3>Session {session.id}: {html.escape(session.meta.model.file_name)}</h3>"
        f"<table cellspacing=0 cellpadding=3 border=1>{head and '<tr>' + head + '</tr>'}{body}</table>"
        f"<h4>Ran on</h4><table cellpadding=2>{meta}</table>"
    )
