"""Confusion matrix widget: actual good/defective against the verdict.

Shows counts it is given (from ``inspection_core.calibration.operating_point``);
the correct cells are tinted green, the costly mistakes red (dark tints of the
application's theme), so a glance tells how many good parts are scrapped and
how many defects escape.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QGridLayout, QLabel, QVBoxLayout, QWidget

from app.widgets import theme


class _Cell(QFrame):
    def __init__(self, caption: str, tint: tuple[str, str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        background, ink = tint
        self.setObjectName("cell")
        self.setStyleSheet(f"QFrame#cell {{ background: {background}; border: 1px solid {theme.AXIS}; border-radius: 4px; }}")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 6, 8, 6)
        lay.setSpacing(0)
        self.count = QLabel("–")
        self.count.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.count.setStyleSheet(f"font-size: 18pt; font-weight: 600; color: {ink}; background: transparent;")
        self.caption = QLabel(caption)
        self.caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.caption.setStyleSheet(f"font-size: 8pt; color: {theme.TEXT_DIM}; background: transparent;")
        lay.addWidget(self.count)
        lay.addWidget(self.caption)
        self.setMinimumWidth(96)


class ConfusionMatrix(QWidget):
    """Actual good/defective x verdict PASS/FAIL, plus a REVIEW column in
    two-threshold mode.

    Counts follow ``OperatingPoint``: tn/fp/fn/tp are the automatic
    decisions; a part in the REVIEW band is held for a person, neither an
    escape nor a false reject (``review_good``/``review_defect``)."""

    CELLS = ("tn", "fp", "fn", "tp", "review_good", "review_defect")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(6)
        self._pred_pass = self._header("PASS")
        self._pred_review = self._header("REVIEW")
        self._pred_fail = self._header("FAIL")
        grid.addWidget(self._pred_pass, 0, 1)
        grid.addWidget(self._pred_review, 0, 2)
        grid.addWidget(self._pred_fail, 0, 3)
        grid.addWidget(self._header("actual good", Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter), 1, 0)
        grid.addWidget(self._header("actual defective", Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter), 2, 0)
        self.cells = {
            "tn": _Cell("true pass", theme.CELL_CORRECT),
            "fp": _Cell("false reject", theme.CELL_WRONG),
            "fn": _Cell("escape", theme.CELL_WRONG),
            "tp": _Cell("caught", theme.CELL_CORRECT),
            "review_good": _Cell("to review", theme.CELL_NEUTRAL),
            "review_defect": _Cell("to review", theme.CELL_NEUTRAL),
        }
        grid.addWidget(self.cells["tn"], 1, 1)
        grid.addWidget(self.cells["review_good"], 1, 2)
        grid.addWidget(self.cells["fp"], 1, 3)
        grid.addWidget(self.cells["fn"], 2, 1)
        grid.addWidget(self.cells["review_defect"], 2, 2)
        grid.addWidget(self.cells["tp"], 2, 3)
        self.set_review_mode(False)

    @staticmethod
    def _header(text: str, align: Qt.AlignmentFlag = Qt.AlignmentFlag.AlignCenter) -> QLabel:
        lbl = QLabel(text)
        lbl.setAlignment(align)
        lbl.setStyleSheet(f"color: {theme.TEXT}; font-weight: 600;")
        return lbl

    def set_review_mode(self, review: bool) -> None:
        """Show or hide the REVIEW column (two-threshold mode)."""
        for w in (self._pred_review, self.cells["review_good"], self.cells["review_defect"]):
            w.setVisible(review)

    def review_mode(self) -> bool:
        return not self._pred_review.isHidden()

    def set_counts(self, tn: int, fp: int, fn: int, tp: int, review_good: int = 0, review_defect: int = 0) -> None:
        values = {"tn": tn, "fp": fp, "fn": fn, "tp": tp, "review_good": review_good, "review_defect": review_defect}
        for key, cell in self.cells.items():
            cell.count.setText(str(int(values[key])))

    def clear(self) -> None:
        for cell in self.cells.values():
            cell.count.setText("–")

    def counts(self) -> dict[str, int | None]:
        """The counts as shown (None where nothing is shown)."""
        out: dict[str, int | None] = {}
        for key, cell in self.cells.items():
            text = cell.count.text()
            out[key] = int(text) if text.isdigit() else None
        return out
