"""Dismissable messages across the top of the window: never a modal dialog mid-demo.

One row per kind of message ("power", "load", "process", "database" ...): a
newer message of a kind replaces the older one, and a message of another
kind doesn't hide it (a database that can't be written stays said while the
power-sensor warning comes and goes).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from .form import plain_label


class _Row(QWidget):
    def __init__(self, banner: Banner, kind: str):
        super().__init__()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 3, 8, 3)
        self.label = plain_label()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.action = QPushButton()
        self.action.hide()
        self.action.clicked.connect(lambda: banner.action_clicked.emit(kind))
        close = QToolButton()
        close.setText("✕")
        close.setToolTip("Dismiss")
        close.clicked.connect(lambda: banner.clear(kind))
        layout.addWidget(self.label, 1)
        layout.addWidget(self.action)
        layout.addWidget(close)
        self.setAutoFillBackground(True)


SHOWN_ROWS = 3  # more messages than this fold behind a button: the charts keep their room


class Banner(QWidget):
    action_clicked = Signal(str)  # the kind of the message whose button was pressed

    def __init__(self, parent=None):
        super().__init__(parent)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(1)
        self.rows: dict[str, _Row] = {}  # oldest first
        self.more = QToolButton()
        self.more.setCheckable(True)
        self.more.toggled.connect(lambda _: self._fold())
        self._layout.addWidget(self.more)
        self.hide()

    def show_message(self, text: str, color: str, kind: str, action: str | None = None) -> None:
        row = self.rows.pop(kind, None)
        if row is None:
            row = _Row(self, kind)
            self._layout.insertWidget(0, row)
        else:
            self._layout.removeWidget(row)
            self._layout.insertWidget(0, row)  # the newest message on top
        self.rows[kind] = row
        row.label.setText(text)
        row.action.setText(action or "")
        row.action.setVisible(action is not None)
        row.setStyleSheet(f"background: {color};")
        self._fold()
        self.show()

    def clear(self, kind: str) -> None:
        row = self.rows.pop(kind, None)
        if row is not None:
            row.deleteLater()
        self._fold()
        self.setVisible(bool(self.rows))

    def _fold(self) -> None:
        """The newest messages shown; older ones behind "N more", which unfolds them."""
        folded = max(len(self.rows) - SHOWN_ROWS, 0)
        unfolded = self.more.isChecked()
        for age, row in enumerate(reversed(self.rows.values())):
            row.setVisible(unfolded or age < SHOWN_ROWS)
        self.more.setVisible(folded > 0)
        self.more.setText(f"{'hide' if unfolded else 'show'} {folded} older message{'s' if folded > 1 else ''}")

    def text(self, kind: str | None = None) -> str:
        """What a kind of message says (all of them, one per line, without a kind)."""
        if kind is not None:
            return self.rows[kind].label.text() if kind in self.rows else ""
        return "\n".join(row.label.text() for row in self.rows.values())

    def action(self, kind: str) -> QPushButton:
        return self.rows[kind].action
