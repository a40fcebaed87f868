"""The large PASS / REVIEW / FAIL banner an operator reads from across the cell."""

from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPaintEvent
from PySide6.QtWidgets import QFrame, QSizePolicy, QWidget

from app.widgets.palette import BANNER


def format_threshold(high: float, low: float | None) -> str:
    return f"{high:.4g}" if low is None else f"{low:.4g} / {high:.4g}"


class VerdictBanner(QFrame):
    """A coloured block with the verdict in large letters and the score vs threshold below.

    Painted by itself (no child labels, no style sheet): a verdict change is one
    repaint of this block, never a re-style or a re-layout of the window, which
    matters when parts arrive 30 times a second.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("verdictBanner")
        self.setMinimumHeight(150)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self._text = "—"
        self._detail_text = ""
        self.verdict = "IDLE"
        self.verdict_pt = 54
        self.set_idle("WAITING", "no part inspected yet")

    def sizeHint(self) -> QSize:
        return QSize(420, 170)

    def _apply(self, key: str) -> None:
        self.setAccessibleName(f"{self._text}. {self._detail_text}")  # what the labels gave screen readers
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        bg, fg = BANNER.get(self.verdict, BANNER["IDLE"])
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(bg))
        p.drawRoundedRect(QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5), 10, 10)
        p.setPen(QColor(fg))
        big = QFont(self.font())
        big.setPointSizeF(self.verdict_pt)
        big.setWeight(QFont.Weight.ExtraBold)
        big.setLetterSpacing(QFont.SpacingType.AbsoluteSpacing, 2)
        inner = QRectF(self.rect()).adjusted(16, 12, -16, -12)
        small = QFont(self.font())
        small.setPointSizeF(13)
        while small.pointSizeF() > 8 and QFontMetrics(small).horizontalAdvance(self._detail_text) > inner.width():
            small.setPointSizeF(small.pointSizeF() - 1)  # shrink to fit: the threshold must stay readable
        big_h = QFontMetrics(big).height()
        small_h = QFontMetrics(small).height() if self._detail_text else 0
        top = inner.y() + max(0.0, (inner.height() - big_h - small_h) / 2)
        p.setFont(big)
        p.drawText(QRectF(inner.x(), top, inner.width(), big_h), Qt.AlignmentFlag.AlignCenter, self._text)
        if self._detail_text:
            p.setFont(small)
            detail = QFontMetrics(small).elidedText(self._detail_text, Qt.TextElideMode.ElideRight, int(inner.width()))
            p.drawText(QRectF(inner.x(), top + big_h, inner.width(), small_h), Qt.AlignmentFlag.AlignCenter, detail)

    def set_verdict(self, verdict: str, score: float, high: float, low: float | None = None) -> None:
        """Show a verdict ("PASS", "REVIEW", "FAIL") with its score against the threshold."""
        verdict = str(getattr(verdict, "value", verdict)).upper()
        self.verdict = verdict
        self.verdict_pt = 54
        self._text = verdict
        rel = ">" if score > high else ("≤" if low is None or score <= low else "in")
        if low is not None and low < score <= high:
            detail = f"score {score:.4g} in review band {format_threshold(high, low)}"
        else:
            detail = f"score {score:.4g} {rel} threshold {format_threshold(high, low) if rel == '>' or low is None else f'{low:.4g}'}"
        self._detail_text = detail
        self._apply(verdict)

    def set_idle(self, text: str, detail: str = "", lost: bool = False) -> None:
        """A neutral (or, with ``lost``, a warning) state without a verdict."""
        self.verdict = "LOST" if lost else "IDLE"
        self.verdict_pt = 30  # states are words, verdicts are one short word in big letters
        self._text = text
        self._detail_text = detail
        self._apply(self.verdict)

    @property
    def text(self) -> str:
        return self._text

    @property
    def detail(self) -> str:
        return self._detail_text
