"""The app icon (resources/icons, made by scripts/make_icons.py) and the status colours."""

from __future__ import annotations

import functools
import logging

from PySide6.QtCore import QPointF, QSize, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap

from trainer_gui.core.paths import resource_path
from trainer_gui.core.runners.events import JobStatus

log = logging.getLogger(__name__)

ICON_NAME = "trainer-gui"
PNG_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)

# Mid-tone colours: readable as text on both light and dark palettes.
OK_COLOR = "#2e9d4f"
WARN_COLOR = "#e8912d"
ERROR_COLOR = "#d64545"
MUTED_COLOR = "#8a8f98"
STATUS_COLORS: dict[str, str] = {
    JobStatus.PENDING.value: MUTED_COLOR,
    JobStatus.QUEUED.value: "#8e6bc9",  # waiting for the machine: neither idle grey nor running
    JobStatus.STARTING.value: "#4a90d9",
    JobStatus.TRAINING.value: "#2f80ed",
    JobStatus.UPLOADING.value: "#13a3a1",
    JobStatus.STOPPING.value: WARN_COLOR,
    JobStatus.COMPLETED.value: OK_COLOR,
    JobStatus.FAILED.value: ERROR_COLOR,
    JobStatus.STOPPED.value: "#a0785a",
}


@functools.lru_cache(maxsize=1)
def app_icon() -> QIcon:
    """Every rendered PNG size, plus the SVG for anything larger."""
    icon = QIcon()
    for size in PNG_SIZES:
        png = resource_path("icons", f"{ICON_NAME}-{size}.png")
        if png.is_file():
            icon.addFile(str(png), QSize(size, size))
    svg = resource_path("icons", f"{ICON_NAME}.svg")
    if svg.is_file():
        icon.addFile(str(svg))
    return icon


def status_color(status: str) -> QColor:
    return QColor(STATUS_COLORS.get(status, MUTED_COLOR))


@functools.lru_cache(maxsize=32)
def status_icon(status: str, size: int = 12) -> QIcon:
    """A filled dot in the status colour (a ring for states still in progress; a ring with
    clock hands for a job waiting in the queue)."""
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    color = status_color(status)
    painter.setPen(color)
    terminal = status in {s.value for s in JobStatus if s.is_terminal}
    if terminal or status == JobStatus.TRAINING.value:
        painter.setBrush(color)
    painter.drawEllipse(1, 1, size - 3, size - 3)
    if status == JobStatus.QUEUED.value:
        middle = (size - 1) / 2
        painter.drawLine(QPointF(middle, middle), QPointF(middle, 3))
        painter.drawLine(QPointF(middle, middle), QPointF(size - 4, middle))
    painter.end()
    return QIcon(pixmap)


CLOUD_COLOR = "#ff9900"  # reads as "AWS" to most users, on light and dark palettes alike


@functools.lru_cache(maxsize=4)
def cloud_icon(size: int = 16) -> QIcon:
    """The cloud badge of SageMaker jobs: three overlapping circles on a flat base."""
    from PySide6.QtCore import QRectF
    from PySide6.QtGui import QPainterPath

    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    s = float(size)
    path = QPainterPath()
    path.addEllipse(QRectF(s * 0.08, s * 0.42, s * 0.36, s * 0.36))
    path.addEllipse(QRectF(s * 0.26, s * 0.20, s * 0.46, s * 0.46))
    path.addEllipse(QRectF(s * 0.54, s * 0.38, s * 0.38, s * 0.38))
    path.addRoundedRect(QRectF(s * 0.18, s * 0.52, s * 0.64, s * 0.26), s * 0.1, s * 0.1)
    path.setFillRule(Qt.FillRule.WindingFill)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(CLOUD_COLOR))
    painter.drawPath(path.simplified())
    painter.end()
    return QIcon(pixmap)
