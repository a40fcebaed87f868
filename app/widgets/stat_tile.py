"""A caption over a large number (the shift counters)."""

from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QFrame, QSizePolicy, QWidget

BACKGROUND, BORDER, CAPTION = "#171c22", "#2c353f", "#8393a3"


class StatTile(QFrame):
    """A caption over a large number, painted by the tile itself.

    The counters change with every part; a tile of child labels re-laid-out
    the window on each change (~3 ms of GUI-thread time per part at 30 parts/s).
    Here a new number is one repaint of the tile and its size never depends on it.
    """

    def __init__(self, caption: str, accent: str = "#c9d1d9", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.caption = caption.upper()
        self.accent = accent
        self._text = "0"
        self._caption_font = QFont(self.font())
        self._caption_font.setPointSizeF(8.5)
        self._caption_font.setWeight(QFont.Weight.DemiBold)
        self._value_font = QFont(self.font())
        self._value_font.setPointSizeF(20)
        self._value_font.setWeight(QFont.Weight.Bold)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.setAccessibleName(f"{self.caption}: {self._text}")

    def sizeHint(self) -> QSize:
        cap, val = QFontMetrics(self._caption_font), QFontMetrics(self._value_font)
        width = max(cap.horizontalAdvance(self.caption), val.horizontalAdvance("88.8 %")) + 20
        return QSize(width, cap.height() + val.height() + 12)

    def minimumSizeHint(self) -> QSize:
        return self.sizeHint()

    def text(self) -> str:
        return self._text

    def set(self, text: str) -> None:
        if text != self._text:
            self._text = text
            self.setAccessibleName(f"{self.caption}: {text}")
            self.update()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        p.setPen(QPen(QColor(BORDER), 1))
        p.setBrush(QColor(BACKGROUND))
        p.drawRoundedRect(QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5), 7, 7)
        cap_h = QFontMetrics(self._caption_font).height()
        inner = QRectF(self.rect()).adjusted(10, 6, -10, -6)
        p.setFont(self._caption_font)
        p.setPen(QColor(CAPTION))
        p.drawText(QRectF(inner.x(), inner.y(), inner.width(), cap_h),
                   Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, self.caption)
        p.setFont(self._value_font)
        p.setPen(QColor(self.accent))
        p.drawText(QRectF(inner.x(), inner.y() + cap_h, inner.width(), inner.height() - cap_h),
                   Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, self._text)
