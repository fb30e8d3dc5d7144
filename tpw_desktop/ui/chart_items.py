"""Two cheap chart items: phase bands and grid lines, each one item per chart painting only what is in view.

Both were the costliest part of a frame at full screen: pyqtgraph's grid
(drawn by the axes, with transparency, over the whole plot) took ~60 ms of an
~80 ms frame at 1920x1080 under Xvfb, and translucent bands most of the
rest. These draw a few opaque lines and rectangles instead (~5 ms), so a
presentation-mode frame no longer takes CPU from the model being measured.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QLineF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QPen

PHASE_KINDS = ("pp", "tg", "warmup", "settle", "idle", "cooldown")


def opaque(color: str, background: str) -> QColor:
    """A translucent theme colour (#RRGGBBAA) flattened onto the background: same look, no blending per pixel."""
    c, bg = pg.mkColor(color), pg.mkColor(background)
    a = c.alphaF()
    return QColor.fromRgbF(
        c.redF() * a + bg.redF() * (1 - a), c.greenF() * a + bg.greenF() * (1 - a), c.blueF() * a + bg.blueF() * (1 - a)
    )


class _InView(pg.GraphicsObject):
    """An item as large as the view it is in, repainted when the view moves."""

    def boundingRect(self) -> QRectF:
        rect = self.viewRect()
        return rect if rect is not None else QRectF()

    def viewRangeChanged(self) -> None:
        self.prepareGeometryChange()


class PhaseBands(_InView):
    """Shaded prompt-processing, generation, warm-up, settle and idle spans, as one item per chart.

    A LinearRegionItem per span meant thousands of items after an hour, each
    told about every scroll; this paints only the spans inside the view.
    """

    def __init__(self, brushes: dict[str, QBrush]):
        super().__init__()
        self.brushes = brushes
        self.x0 = np.zeros(0)
        self.x1 = np.zeros(0)
        self.kind = np.zeros(0, dtype=np.int8)

    def set_spans(self, x0: np.ndarray, x1: np.ndarray, kind: np.ndarray) -> None:
        self.x0, self.x1, self.kind = x0, x1, kind
        self.update()

    def paint(self, painter, *_args) -> None:
        view = self.viewRect()
        if view is None or not len(self.x0):
            return
        # spans are in time order: only those overlapping the view are drawn
        first = int(np.searchsorted(self.x1, view.left()))
        last = int(np.searchsorted(self.x0, view.right(), side="right"))
        painter.setPen(Qt.NoPen)
        for i in range(first, last):
            painter.setBrush(self.brushes[PHASE_KINDS[self.kind[i]]])
            painter.drawRect(QRectF(self.x0[i], view.top(), self.x1[i] - self.x0[i], view.height()))


class GridLines(_InView):
    """Faint lines at the axes' major ticks, one pixel wide and opaque."""

    def __init__(self, plot: pg.PlotItem, color: QColor):
        super().__init__()
        self.plot = plot
        self.pen = QPen(color, 0)  # width 0: cosmetic, one device pixel
        self._lines: tuple[tuple, list[QLineF]] = ((), [])  # the last view's lines, reused while it stands

    def set_color(self, color: QColor) -> None:
        self.pen = QPen(color, 0)
        self.update()

    def paint(self, painter, *_args) -> None:
        view = self.viewRect()
        if view is None:
            return
        key = (view.left(), view.right(), view.top(), view.bottom())
        if key != self._lines[0]:
            lines = [QLineF(x, view.top(), x, view.bottom()) for x in self._ticks("bottom", view.left(), view.right())]
            lines += [QLineF(view.left(), y, view.right(), y) for y in self._ticks("left", view.top(), view.bottom())]
            self._lines = (key, lines)
        painter.setPen(self.pen)
        painter.drawLines(self._lines[1])

    def _ticks(self, axis: str, low: float, high: float) -> list[float]:
        item = self.plot.getAxis(axis)
        levels = item.tickValues(
            min(low, high), max(low, high), item.geometry().width() if axis == "bottom" else item.geometry().height()
        )
        return list(levels[0][1]) if levels else []
