"""The large PASS / REVIEW / FAIL banner an operator reads from across the cell.

Under the verdict, a measure an operator can read without knowing the model's
units: the score as a share of the FAIL threshold (100 % is the line; a good
part sits well below it), and under that the raw score and threshold for the
engineer.

A frame that carries no part (blank, overexposed, far too dark or bright) is
INVALID, on grey: under it the reason ("blank frame") and what it means; its
score is not a measure of any part, so no share of the threshold is shown."""

from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPaintEvent
from PySide6.QtWidgets import QFrame, QSizePolicy, QWidget

from app.widgets.palette import BANNER
from inspection_core.frame_check import REASONS


def format_threshold(high: float, low: float | None) -> str:
    return f"{high:.4g}" if low is None else f"{low:.4g} / {high:.4g}"


def share_of_threshold(score: float, high: float) -> str:
    """The score as a share of the FAIL threshold, e.g. "148 % of the threshold"
    ("" when that share means nothing: a threshold at or below zero)."""
    if not (high > 0) or score != score:
        return ""
    share = 100.0 * score / high
    text = "> 999 %" if share > 999 else f"{share:.0f} %"
    return f"{text} of the threshold"


class VerdictBanner(QFrame):
    """A coloured block with the verdict in large letters and the score vs threshold below.

    Painted by itself (no child labels, no style sheet): a verdict change is one
    repaint of this block, never a re-style or a re-layout of the window, which
    matters when parts arrive 30 times a second.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("verdictBanner")
        self.setMinimumHeight(160)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self._text = "—"
        self._detail_text = ""
        self._note_text = ""   # why, when the whole part's texture decided the verdict
        self._share_text = ""  # "148 % of the threshold": the operator's measure
        self._reason = ""      # why a frame is INVALID ("blank frame"), shown where the measure goes
        self.verdict = "IDLE"
        self.verdict_pt = 54
        self.painted_verdict_pt = 0.0  # the verdict's size as last painted (shrunk to fit the width)
        self.set_idle("WAITING", "no part inspected yet")

    def sizeHint(self) -> QSize:
        return QSize(420, 170)

    def _apply(self, key: str) -> None:
        said = ". ".join(t for t in (self._text, self._mid_text, self._detail_text, self._note_text) if t)
        self.setAccessibleName(said)  # what the labels gave screen readers
        self.setToolTip(said)  # the whole text where a narrow column elides a line
        self.update()

    @property
    def _mid_text(self) -> str:
        """The bold line under the verdict: the share of the threshold, or an INVALID frame's reason."""
        return self._share_text or self._reason

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        mid_text = self._mid_text
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
        mid = QFont(self.font())
        mid.setPointSizeF(17)
        mid.setWeight(QFont.Weight.Bold)
        small = QFont(self.font())
        small.setPointSizeF(11 if mid_text else 13)
        while big.pointSizeF() > 20 and QFontMetrics(big).horizontalAdvance(self._text) > inner.width():
            big.setPointSizeF(big.pointSizeF() - 2)  # "INVALID" in a narrow column: whole, never cut
        self.painted_verdict_pt = big.pointSizeF()
        for font, text in ((mid, mid_text), (small, self._detail_text), (small, self._note_text)):
            while font.pointSizeF() > 8 and QFontMetrics(font).horizontalAdvance(text) > inner.width():
                font.setPointSizeF(font.pointSizeF() - 1)  # shrink to fit: the figures must stay readable
        big_h = QFontMetrics(big).height()
        mid_h = QFontMetrics(mid).height() if mid_text else 0
        small_h = QFontMetrics(small).height() if self._detail_text else 0
        note_h = QFontMetrics(small).height() if self._note_text else 0
        top = inner.y() + max(0.0, (inner.height() - big_h - mid_h - small_h - note_h) / 2)
        p.setFont(big)
        p.drawText(QRectF(inner.x(), top, inner.width(), big_h), Qt.AlignmentFlag.AlignCenter, self._text)
        y = top + big_h
        for font, text, h in ((mid, mid_text, mid_h), (small, self._detail_text, small_h),
                              (small, self._note_text, note_h)):
            if text:
                p.setFont(font)
                shown = QFontMetrics(font).elidedText(text, Qt.TextElideMode.ElideRight, int(inner.width()))
                p.drawText(QRectF(inner.x(), y, inner.width(), h), Qt.AlignmentFlag.AlignCenter, shown)
                y += h

    def set_verdict(self, verdict: str, score: float, high: float, low: float | None = None,
                    texture_part: float = 0.0, reason: str = "", defect_type: str = "") -> None:
        """Show a verdict ("PASS", "REVIEW", "FAIL") with its score as a share of
        the FAIL threshold and, smaller, the raw score against the threshold.
        ``texture_part``: the part of the score from the texture of the whole
        part (no spot on the heat map shows it); named, with what the hottest
        spot alone scores, when it decides the verdict. An INVALID frame shows
        its ``reason`` ("blank frame") and what it means instead. A FAIL whose
        type the bundle's classifier named reads "FAIL: scratch (0.82)"
        (``defect_type``: the type with its probability, as
        :func:`inspection_core.defect_types.describe_answer` gives it)."""
        verdict = str(getattr(verdict, "value", verdict)).upper()
        self.verdict = verdict
        self.verdict_pt = 54
        self._text = f"FAIL: {defect_type}" if verdict == "FAIL" and defect_type else verdict
        self._reason = ""
        if verdict == "INVALID":
            self._reason = reason or "no part in the frame"
            self._share_text = ""
            self._detail_text = REASONS.get(reason, "the frame carries no part to judge")
            self._note_text = f"not a part: its score {score:.4g} is not used"
            self._apply(verdict)
            return
        rel = ">" if score > high else ("≤" if low is None or score <= low else "in")
        if low is not None and low < score <= high:
            detail = f"score {score:.4g} in review band {format_threshold(high, low)}"
        else:
            shown = format_threshold(high, low) if rel == ">" or low is None else f"{low:.4g}"
            detail = f"score {score:.4g} {rel} threshold {shown}"
        spot = score - max(0.0, texture_part)
        limit = high if low is None else low
        self._note_text = (f"whole-part texture +{texture_part:.3g}; spot alone {spot:.4g}"
                           if texture_part > 0 and score > limit >= spot else "")
        self._share_text = share_of_threshold(score, high)
        self._detail_text = detail
        self._apply(verdict)

    def set_idle(self, text: str, detail: str = "", lost: bool = False) -> None:
        """A neutral (or, with ``lost``, a warning) state without a verdict."""
        self.verdict = "LOST" if lost else "IDLE"
        self.verdict_pt = 30  # states are words, verdicts are one short word in big letters
        self._text = text
        self._share_text = ""
        self._reason = ""
        self._detail_text = detail
        self._note_text = ""
        self._apply(self.verdict)

    @property
    def text(self) -> str:
        return self._text

    @property
    def detail(self) -> str:
        return self._detail_text

    @property
    def note(self) -> str:
        """Why the verdict, when the texture of the whole part decided it ("" otherwise)."""
        return self._note_text

    @property
    def reason(self) -> str:
        """Why the frame is INVALID, as shown ("" for a verdict on a part)."""
        return self._reason

    @property
    def headline(self) -> str:
        """The verdict with an INVALID frame's reason, e.g. "INVALID — blank frame"."""
        return f"{self._text} — {self._reason}" if self._reason else self._text

    @property
    def share(self) -> str:
        """The score as a share of the threshold, as shown ("" without a verdict)."""
        return self._share_text
