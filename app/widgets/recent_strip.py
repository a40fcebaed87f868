"""A strip of the last parts inspected: thumbnails framed in their verdict's colour,
so an operator sees a run of failures at a glance; under each, its score as a
share of the threshold (the banner's measure), or, for a frame that carries
no part (INVALID, grey frame), its reason."""

from __future__ import annotations

from collections import deque

import cv2
import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from app.widgets.image_pane import to_display, to_qimage
from app.widgets.palette import verdict_frame


class RecentStrip(QWidget):
    """The newest ``capacity`` parts, newest on the left."""

    THUMB = 72

    def __init__(self, capacity: int = 16, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._items: deque = deque(maxlen=capacity)
        self.setFixedHeight(self.THUMB + 34)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, True)

    def sizeHint(self) -> QSize:
        return QSize(600, self.THUMB + 34)

    def add(self, image: np.ndarray, verdict: str, score: float, threshold: float | None = None,
            reason: str = "") -> None:
        """Add a part (newest first); with ``threshold`` (the FAIL line) its label is the score's share of it.
        An INVALID frame's label is its ``reason`` ("blank frame"): its score measures no part."""
        img = to_display(image)
        h, w = img.shape[:2]
        s = self.THUMB / max(h, w)
        thumb = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        # Converted once (an owned copy), drawn unscaled on every repaint.
        label = f"{score:.3g}"
        if threshold is not None and threshold > 0:
            share = 100.0 * score / threshold
            label = "> 999 %" if share > 999 else f"{share:.0f} %"
        if verdict == "INVALID":
            label = reason or "no part"
        self._items.appendleft((to_qimage(np.ascontiguousarray(thumb)).copy(), verdict, label))
        self.update()

    def clear(self) -> None:
        self._items.clear()
        self.update()

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[tuple[str, str]]:
        """(verdict, label) of each part shown, newest first."""
        return [(verdict, label) for _thumb, verdict, label in self._items]

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        p.fillRect(self.rect(), QColor("#15191e"))
        f = QFont(self.font())
        f.setPointSizeF(8.5)
        f.setBold(True)
        p.setFont(f)
        p.setPen(QColor("#aab4be"))
        p.drawText(QRectF(10, 0, 300, 22), Qt.AlignmentFlag.AlignVCenter, "LAST PARTS")
        x, y, t = 10.0, 24.0, self.THUMB
        for thumb, verdict, label in self._items:
            if x + t > self.width() - 6:
                break
            color = QColor(verdict_frame(verdict))
            p.fillRect(QRectF(x - 3, y - 3, t + 6, t + 6), color)
            p.fillRect(QRectF(x, y, t, t), QColor("#15191e"))
            p.drawImage(QPointF(x + (t - thumb.width()) / 2, y + (t - thumb.height()) / 2), thumb)
            p.setPen(QPen(QColor("#ffffff")))
            p.fillRect(QRectF(x, y + t - 14, t, 14), QColor(0, 0, 0, 150))
            lf = QFont(f)
            while lf.pointSizeF() > 6.5 and QFontMetrics(lf).horizontalAdvance(label) > t - 4:
                lf.setPointSizeF(lf.pointSizeF() - 0.5)  # a reason ("blank frame") shrinks before it is cut
            p.setFont(lf)
            shown = QFontMetrics(lf).elidedText(label, Qt.TextElideMode.ElideRight, t - 2)
            p.drawText(QRectF(x, y + t - 14, t, 14), Qt.AlignmentFlag.AlignCenter, shown)
            p.setFont(f)
            x += t + 12
