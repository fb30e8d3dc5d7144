"""A dismissable message across the top of the window: never a modal dialog mid-demo."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QToolButton, QWidget


class Banner(QWidget):
    """One message at a time, with its kind (so a later success can clear the right one) and an optional action."""

    action_clicked = Signal(str)  # the kind of the message whose button was pressed

    def __init__(self, parent=None):
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.action = QPushButton()
        self.action.hide()
        self.action.clicked.connect(lambda: self.action_clicked.emit(self.kind))
        close = QToolButton()
        close.setText("✕")
        close.setToolTip("Dismiss")
        close.clicked.connect(self.hide)
        self.kind = ""
        layout.addWidget(self.label, 1)
        layout.addWidget(self.action)
        layout.addWidget(close)
        self.setAutoFillBackground(True)
        self.hide()

    def show_message(self, text: str, color: str, kind: str, action: str | None = None) -> None:
        self.kind = kind
        self.label.setText(text)
        self.action.setText(action or "")
        self.action.setVisible(action is not None)
        self.setStyleSheet(f"background: {color};")
        self.show()

    def clear(self, kind: str) -> None:
        if self.kind == kind:
            self.hide()

    def text(self) -> str:
        return self.label.text() if self.isVisible() else ""
