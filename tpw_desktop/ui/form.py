"""Form helpers every panel and dialog shares.

Labels are plain text unless made otherwise on purpose: a message may quote
a server's error, a model's name or a file's, and none of them is ever
rendered as rich text. Spin boxes and combo boxes ignore the mouse wheel
unless they have focus: scrolling a panel must not change a setting under
the pointer.
"""

from __future__ import annotations

import html

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QAbstractSpinBox, QComboBox, QLabel, QLineEdit


class _WheelGuard(QObject):
    """Lets the wheel scroll the panel instead of changing an unfocused spin box or combo box."""

    def eventFilter(self, watched, event) -> bool:
        if event.type() == QEvent.Wheel and not watched.hasFocus():
            event.ignore()
            return True
        return False


def guard_wheel(*widgets) -> None:
    guard = _WheelGuard(widgets[0])
    for widget in widgets:
        widget.setFocusPolicy(Qt.StrongFocus)
        widget.installEventFilter(guard)


def set_combo_value(combo: QComboBox, value) -> None:
    index = combo.findData(value)
    if index >= 0:
        combo.setCurrentIndex(index)


def spin_box(cls, low, high, value, *, suffix: str = "", step=None, special: str = "", tip: str = ""):
    """A QSpinBox or QDoubleSpinBox with its range, value, suffix and tooltip in one call."""
    spin = cls()
    spin.setRange(low, high)
    if step is not None:
        spin.setSingleStep(step)
    spin.setValue(value)
    spin.setSuffix(suffix)
    spin.setSpecialValueText(special)
    spin.setToolTip(tip)
    return spin


def plain_label(text: str = "") -> QLabel:
    """A label that shows its text as it is: never as HTML (it may hold a peer's text)."""
    label = QLabel(text)
    label.setTextFormat(Qt.PlainText)
    return label


def plain_tip(text: str) -> str:
    """A tooltip that shows ``text`` as it is (Qt would take text that looks like HTML for rich text)."""
    return "<p style='white-space:pre-wrap'>" + html.escape(text) + "</p>"


def save_choices(settings, prefix: str, fields: dict) -> None:
    """A dialog's choices by value (``prefix/name``), so it opens as the user left it."""
    for name, widget in fields.items():
        if isinstance(widget, QLineEdit):
            value = widget.text()
        elif isinstance(widget, QComboBox):
            value = widget.currentText()
        else:
            value = widget.value()
        settings.setValue(f"{prefix}/{name}", value)


def restore_choices(settings, prefix: str, fields: dict) -> None:
    """What ``save_choices`` kept; a value the widget can't take now is left at its default."""
    for name, widget in fields.items():
        value = settings.value(f"{prefix}/{name}")
        if value is None:
            continue
        if isinstance(widget, QLineEdit):
            widget.setText(str(value))
        elif isinstance(widget, QComboBox):
            index = widget.findText(str(value))
            if index >= 0:
                widget.setCurrentIndex(index)
            elif widget.isEditable():
                widget.setEditText(str(value))
        elif isinstance(widget, QAbstractSpinBox):
            try:
                widget.setValue(type(widget.value())(value))
            except (TypeError, ValueError):
                pass
