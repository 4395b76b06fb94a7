"""A layout that wraps its widgets onto more lines when the width runs out.

Control bars use it so a narrow window (a 1280-pixel screen with a dock open) gets two lines
of whole buttons instead of one line of "…" buttons. Within a line, widgets that can grow
(an expanding horizontal size policy) share the spare width; the others keep their size hint.
"""

from __future__ import annotations

from PySide6.QtCore import QMargins, QPoint, QRect, QSize, Qt
from PySide6.QtWidgets import QLayout, QLayoutItem, QSizePolicy, QWidget

__all__ = ["FlowLayout"]


class FlowLayout(QLayout):
    """Left to right, then onto the next line; its height follows its width."""

    def __init__(self, parent: QWidget | None = None, spacing: int = 6) -> None:
        super().__init__(parent)
        self._items: list[QLayoutItem] = []
        self._spacing = spacing
        self.setContentsMargins(0, 0, 0, 0)

    # -- QLayout ------------------------------------------------------------------------------

    def addItem(self, item: QLayoutItem) -> None:
        self._items.append(item)

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, index: int) -> QLayoutItem | None:
        return self._items[index] if 0 <= index < len(self._items) else None

    def takeAt(self, index: int) -> QLayoutItem | None:
        return self._items.pop(index) if 0 <= index < len(self._items) else None

    def spacing(self) -> int:
        return self._spacing

    def expandingDirections(self) -> Qt.Orientation:
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        return self._arrange(QRect(0, 0, width, 0), apply=False)

    def setGeometry(self, rect: QRect) -> None:
        super().setGeometry(rect)
        self._arrange(rect, apply=True)

    def sizeHint(self) -> QSize:
        """Everything on one line."""
        shown = self._shown()
        margins = self.contentsMargins()
        width = sum(i.sizeHint().width() for i in shown) + self._spacing * max(len(shown) - 1, 0)
        height = max((i.sizeHint().height() for i in shown), default=0)
        return QSize(width, height) + _extent(margins)

    def minimumSize(self) -> QSize:
        """The widest widget: anything narrower than that would cut it."""
        size = QSize()
        for item in self._shown():
            size = size.expandedTo(item.minimumSize())
        return size + _extent(self.contentsMargins())

    # -- placing ----------------------------------------------------------------------------

    def _shown(self) -> list[QLayoutItem]:
        return [i for i in self._items if not i.isEmpty()]

    def lines(self, width: int) -> list[list[QLayoutItem]]:
        """The items of each line at this width (margins included)."""
        margins = self.contentsMargins()
        room = max(width - margins.left() - margins.right(), 0)
        out: list[list[QLayoutItem]] = []
        line: list[QLayoutItem] = []
        used = 0
        for item in self._shown():
            w = item.sizeHint().width()
            if line and used + self._spacing + w > room:
                out.append(line)
                line, used = [], 0
            used += (self._spacing if line else 0) + w
            line.append(item)
        if line:
            out.append(line)
        return out

    def _arrange(self, rect: QRect, apply: bool) -> int:
        margins = self.contentsMargins()
        left, top = rect.x() + margins.left(), rect.y() + margins.top()
        room = max(rect.width() - margins.left() - margins.right(), 0)
        y = top
        for line in self.lines(rect.width()):
            height = max(i.sizeHint().height() for i in line)
            hints = [min(i.sizeHint().width(), room) for i in line]
            spare = room - sum(hints) - self._spacing * (len(line) - 1)
            growing = [k for k, i in enumerate(line) if _grows(i)]
            if spare > 0 and growing:
                share, extra = divmod(spare, len(growing))
                for n, k in enumerate(growing):
                    hints[k] += share + (1 if n < extra else 0)
            if apply:
                x = left
                for item, w in zip(line, hints, strict=True):
                    h = item.sizeHint().height()
                    item.setGeometry(QRect(QPoint(x, y + (height - h) // 2), QSize(w, h)))
                    x += w + self._spacing
            y += height + self._spacing
        return max(y - self._spacing - top, 0) + margins.top() + margins.bottom()


def _grows(item: QLayoutItem) -> bool:
    widget = item.widget()
    if widget is None:
        return False
    policy = widget.sizePolicy().horizontalPolicy()
    return bool(policy.value & QSizePolicy.PolicyFlag.ExpandFlag.value)


def _extent(margins: QMargins) -> QSize:
    return QSize(margins.left() + margins.right(), margins.top() + margins.bottom())
