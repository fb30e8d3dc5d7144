"""SVG export through Qt's own QSvgGenerator.

pyqtgraph's SVGExporter rewrites the paths Qt generates and fails on the
format current Qt writes ("ValueError: not enough values to unpack",
pyqtgraph issue #3485). Qt can draw a scene straight into an SVG, so that
is what the charts' export uses instead.
"""

from __future__ import annotations

from PySide6.QtCore import QRectF
from PySide6.QtGui import QPainter
from PySide6.QtSvg import QSvgGenerator
from PySide6.QtWidgets import QGraphicsScene


def export_svg(scene: QGraphicsScene, path: str) -> None:
    """What the scene's first view shows, as an SVG file."""
    view = scene.views()[0]
    source = view.mapToScene(view.viewport().rect()).boundingRect()
    target = QRectF(0, 0, source.width(), source.height())
    generator = QSvgGenerator()
    generator.setFileName(path)
    generator.setSize(target.size().toSize())
    generator.setViewBox(target)
    generator.setTitle("tpw-desktop chart")
    painter = QPainter(generator)
    try:
        scene.render(painter, target, source)
    finally:
        painter.end()
