"""Big-number tiles: each figure with its unit and how it was obtained."""

from __future__ import annotations

import math

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QFontMetrics
from PySide6.QtWidgets import QFrame, QGridLayout, QSizePolicy, QVBoxLayout, QWidget

from .form import plain_label, plain_tip

# key, title, unit, decimals
TILES = (
    ("tok_s", "speed", "tok/s", 1),
    ("power_w", "power", "W", 1),
    ("tok_j", "efficiency", "tok/J", 3),
    ("j_tok", "energy", "J/token", 4),
    ("wh_1k", "energy", "Wh / 1k tok", 4),
    ("cost_1m", "cost", "/ 1M tok", 4),
    ("ttft", "first token", "s", 3),
)


def _format(value, decimals: int) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{decimals}f}"


class Tile(QFrame):
    def __init__(self, key: str, title: str, unit: str, decimals: int, parent=None):
        super().__init__(parent)
        self.key, self.unit, self.decimals = key, unit, decimals
        self.setObjectName("tile")
        self.setFrameShape(QFrame.StyledPanel)
        # The tiles share the width they get; their text never widens the window past the screen
        # (in presentation mode their 2.2x type would, and the window kept that width afterwards).
        self.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.setSpacing(0)
        self.title = plain_label(title)
        self.value = plain_label("–")
        self.value.setAlignment(Qt.AlignLeft | Qt.AlignVCenter)
        self.unit_label = plain_label(unit)
        self.method = plain_label("")
        self.method.setWordWrap(True)
        for w in (self.title, self.value, self.unit_label, self.method):
            layout.addWidget(w)
        self.basis = ""
        self._value_pt, self._shown_pt = 20, 0
        self.set_presentation(False)

    def set(self, value, basis: str, unit: str | None = None, why: str | None = None) -> None:
        """Show a figure and how it was obtained; a missing one shows "–" and ``why`` in its tooltip."""
        self.value.setText(_format(value, self.decimals))
        self._fit_value()
        if unit is not None:
            self.unit_label.setText(unit)
        self.basis = basis
        self.method.setText(basis)  # in every mode: what the figure covers is part of the figure
        tip = f"{self.title.text()}: {self.value.text()} {self.unit_label.text()} ({basis})"
        self.setToolTip(plain_tip(tip + (f"\nunknown: {why}" if value is None and why else "")))

    def text(self) -> str:
        return f"{self.value.text()} {self.unit_label.text()} [{self.method.text()}]"

    def set_presentation(self, on: bool) -> None:
        scale = 2.2 if on else 1.0
        self._value_pt = round(20 * scale)
        self.title.setStyleSheet(f"font-size: {round(9 * scale)}pt; color: palette(placeholder-text);")
        self.unit_label.setStyleSheet(f"font-size: {round(9 * scale)}pt;")
        # the basis stays on the tile from the back of the room, but smaller than the figure it explains
        self.method.setStyleSheet(
            f"font-size: {round(8 * (1.4 if on else 1.0))}pt; font-style: italic; color: palette(placeholder-text);"
        )
        self._fit_value()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit_value()

    def _fit_value(self) -> None:
        """The figure in the largest type that shows all of it: a number cut at the tile's edge
        ("0.267" for 0.2678) would be a wrong number, not a small one."""
        width = self.value.contentsRect().width()  # laid out already: the layout takes a resize first
        font = QFont(self.value.font())
        font.setPointSize(self._value_pt)
        font.setWeight(QFont.DemiBold)
        text_px = QFontMetrics(font).horizontalAdvance(self.value.text())
        points = self._value_pt if text_px <= width or text_px == 0 else max(6, int(self._value_pt * width / text_px))
        if points != self._shown_pt:  # a style sheet is re-applied only when the size changes: it costs a frame
            self._shown_pt = points
            self.value.setStyleSheet(f"font-size: {points}pt; font-weight: 600;")


class TileBoard(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        layout = QGridLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.tiles = {key: Tile(key, title, unit, decimals) for key, title, unit, decimals in TILES}
        for i, tile in enumerate(self.tiles.values()):
            layout.addWidget(tile, 0, i)

    def __getitem__(self, key: str) -> Tile:
        return self.tiles[key]

    def set_presentation(self, on: bool) -> None:
        for tile in self.tiles.values():
            tile.set_presentation(on)
