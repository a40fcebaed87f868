"""The large PASS / REVIEW / FAIL banner an operator reads from across the cell."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QLabel, QVBoxLayout, QWidget

COLORS = {
    "PASS": ("#1b7f3b", "#ffffff"),
    "REVIEW": ("#e0a100", "#1a1a1a"),
    "FAIL": ("#c62828", "#ffffff"),
    "IDLE": ("#2b3238", "#c9d1d9"),
    "LOST": ("#8a4b00", "#ffffff"),
}


def format_threshold(high: float, low: float | None) -> str:
    return f"{high:.4g}" if low is None else f"{low:.4g} / {high:.4g}"


class VerdictBanner(QFrame):
    """A coloured block with the verdict in large letters and the score vs threshold below."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("verdictBanner")
        self.setMinimumHeight(150)
        self._verdict_label = QLabel("—")
        self._verdict_label.setObjectName("verdictText")
        self._verdict_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._detail = QLabel("")
        self._detail.setObjectName("verdictDetail")
        self._detail.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._detail.setWordWrap(False)  # one line: a wrapping label re-lays-out the window on every part
        lay = QVBoxLayout(self)
        lay.setContentsMargins(16, 12, 16, 12)
        lay.addStretch(1)
        lay.addWidget(self._verdict_label)
        lay.addWidget(self._detail)
        lay.addStretch(1)
        self.verdict = "IDLE"
        self.verdict_pt = 54
        self.set_idle("WAITING", "no part inspected yet")

    def _apply(self, key: str) -> None:
        bg, fg = COLORS.get(key, COLORS["IDLE"])
        if getattr(self, "_applied", None) == (bg, fg, self.verdict_pt):
            return  # restyling is the costliest part of a verdict change; a run of PASS parts needs none
        self._applied = (bg, fg, self.verdict_pt)
        # Font sizes live here (not in setFont) so an application style sheet cannot shrink them.
        self.setStyleSheet(
            f"QFrame#verdictBanner {{ background: {bg}; border-radius: 10px; }}"
            f" QFrame#verdictBanner QLabel {{ color: {fg}; background: transparent; }}"
            f" QLabel#verdictText {{ font-size: {self.verdict_pt}pt; font-weight: 800; letter-spacing: 2px; }}"
            f" QLabel#verdictDetail {{ font-size: 13pt; }}"
        )

    def set_verdict(self, verdict: str, score: float, high: float, low: float | None = None) -> None:
        """Show a verdict ("PASS", "REVIEW", "FAIL") with its score against the threshold."""
        verdict = str(getattr(verdict, "value", verdict)).upper()
        self.verdict = verdict
        self.verdict_pt = 54
        self._apply(verdict)
        self._verdict_label.setText(verdict)
        rel = ">" if score > high else ("≤" if low is None or score <= low else "in")
        if low is not None and low < score <= high:
            detail = f"score {score:.4g} in review band {format_threshold(high, low)}"
        else:
            detail = f"score {score:.4g} {rel} threshold {format_threshold(high, low) if rel == '>' or low is None else f'{low:.4g}'}"
        self._detail.setText(detail)

    def set_idle(self, text: str, detail: str = "", lost: bool = False) -> None:
        """A neutral (or, with ``lost``, a warning) state without a verdict."""
        self.verdict = "LOST" if lost else "IDLE"
        self.verdict_pt = 30  # states are words, verdicts are one short word in big letters
        self._apply(self.verdict)
        self._verdict_label.setText(text)
        self._detail.setText(detail)

    @property
    def text(self) -> str:
        return self._verdict_label.text()

    @property
    def detail(self) -> str:
        return self._detail.text()
