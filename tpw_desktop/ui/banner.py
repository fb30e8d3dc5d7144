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


class Banner(QWidget):
    action_clicked = Signal(str)  # the kind of the message whose button was pressed

    def __init__(self, parent=None):
        super().__init__(parent)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(1)
        self.rows: dict[str, _Row] = {}
        self.hide()

    def show_message(self, text: str, color: str, kind: str, action: str | None = None) -> None:
        row = self.rows.get(kind)
        if row is None:
            row = self.rows[kind] = _Row(self, kind)
            self._layout.addWidget(row)
            row.show()
        row.label.setText(text)
        row.action.setText(action or "")
        row.action.setVisible(action is not None)
        row.setStyleSheet(f"background: {color};")
        self.show()

    def clear(self, kind: str) -> None:
        row = self.rows.pop(kind, None)
        if row is not None:
            row.deleteLater()
        self.setVisible(bool(self.rows))

    def text(self, kind: str | None = None) -> str:
        """What a kind of message says (all of them, one per line, without a kind)."""
        if kind is not None:
            return self.rows[kind].label.text() if kind in self.rows else ""
        return "\n".join(row.label.text() for row in self.rows.values())

    def action(self, kind: str) -> QPushButton:
        return self.rows[kind].action
