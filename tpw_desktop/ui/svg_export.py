"""SVG export through Qt's own QSvgGenerator.

pyqtgraph's SVGExporter rewrites the paths Qt generates and fails on the
format current Qt writes ("ValueError: not enough values to unpack",
pyqtgraph issue #3485). Qt can draw a scene straight into an SVG, so that
is what the charts' right-click export dialog offers instead.
"""
from __future__ import annotations

from pyqtgraph.exporters import Exporter, SVGExporter
from pyqtgraph.parametertree import Parameter
from PySide6.QtCore import QRectF
from PySide6.QtGui import QPainter
from PySide6.QtSvg import QSvgGenerator
from PySide6.QtWidgets import QGraphicsItem


class QtSvgExporter(Exporter):
    Name = "Scalable Vector Graphics (SVG)"

    def __init__(self, item):
        super().__init__(item)
        self.params = Parameter.create(name="params", type="group", children=[])

    def parameters(self):
        return self.params

    def export(self, fileName=None, toBytes=False, copy=False):
        if fileName is None:
            self.fileSaveDialog(filter="Scalable Vector Graphics (*.svg)")
            return None
        if isinstance(self.item, QGraphicsItem):
            scene, source = self.item.scene(), self.item.sceneBoundingRect()
        else:
            scene = self.item
            source = scene.views()[0].mapToScene(scene.views()[0].viewport().rect()).boundingRect()
        target = QRectF(0, 0, source.width(), source.height())
        generator = QSvgGenerator()
        generator.setFileName(str(fileName))
        generator.setSize(target.size().toSize())
        generator.setViewBox(target)
        generator.setTitle("tpw-desktop chart")
        painter = QPainter(generator)
        try:
            scene.render(painter, target, source)
        finally:
            painter.end()
        return None


def install() -> None:
    """Offer the Qt SVG exporter in pyqtgraph's export dialog instead of the broken one."""
    registry = Exporter.Exporters
    if SVGExporter in registry:
        registry.remove(SVGExporter)
    if QtSvgExporter not in registry:
        registry.append(QtSvgExporter)

