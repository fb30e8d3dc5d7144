"""Answering the window's real modal dialogs in tests, as a user would: type a file name, press a button.

A test clicks a button or triggers a menu action; the dialog that opens runs
its own event loop, where a timer finds it and answers it. Nothing is
monkeypatched, so a button whose dialog never opens, or whose handler
breaks on the path it gets, fails the test.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox, QWidget


@dataclass
class Asked:
    """The dialogs that opened while answering: their kinds and titles, in order."""

    titles: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)


def choose_file(path: Path | str):
    """Type ``path`` into a file dialog and accept it."""

    def answer(dialog: QWidget) -> None:
        assert isinstance(dialog, QFileDialog), f"expected a file dialog, got {type(dialog).__name__}"
        dialog.selectFile(str(path))
        dialog.accept()

    return answer


def cancel(dialog: QWidget) -> None:
    dialog.reject()


def press(button: QMessageBox.StandardButton):
    """Press one of a message box's buttons."""

    def answer(dialog: QWidget) -> None:
        assert isinstance(dialog, QMessageBox), f"expected a message box, got {type(dialog).__name__}"
        dialog.button(button).click()

    return answer


@contextmanager
def answering(*answers, timeout_s: float = 10.0):
    """Answer the next modal dialogs in turn; the block must open every one of them."""
    asked = Asked()
    pending = list(answers)
    deadline = time.monotonic() + timeout_s
    stopped = False

    def look() -> None:
        if stopped or not pending:
            return
        dialog = QApplication.activeModalWidget()
        if dialog is None or not dialog.isVisible():
            if time.monotonic() < deadline:
                QTimer.singleShot(20, look)
            return
        asked.titles.append(dialog.windowTitle())
        asked.kinds.append(type(dialog).__name__)
        pending.pop(0)(dialog)
        if pending:
            QTimer.singleShot(20, look)

    QTimer.singleShot(0, look)
    try:
        yield asked
    finally:
        stopped = True
    assert not pending, f"{len(pending)} dialog(s) never opened (answered: {asked.titles})"
