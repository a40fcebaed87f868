"""A word-wrapped label that is never cut.

A wrapped QLabel in a box layout whose height the layout decides without
asking ``heightForWidth`` (under a scroll area in a splitter, in a bar of
fixed parts) gets the height of its first line or two, and the rest of a
long message is cut. This label asks for the height its text needs at its
present width whenever the text or the width changes.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QLabel, QWidget


class WrapLabel(QLabel):
    """See the module docstring."""

    def __init__(self, text: str = "", parent: QWidget | None = None, **kwargs: Any) -> None:
        super().__init__(text, parent, **kwargs)
        self.setWordWrap(True)
        self.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self._fit()

    def setText(self, text: str) -> None:  # noqa: N802 - Qt override
        super().setText(text)
        self._fit()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        if event.oldSize().width() != event.size().width():
            self._fit()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        """At the present width, the height the text needs (QLabel guesses a
        width of its own for wrapped text, and with it a height)."""
        hint = super().sizeHint()
        if self.text() and self.width() > 1:
            hint.setHeight(self._need())
        return hint

    def _need(self) -> int:
        """The text's height at the present width (QLabel's own answer never
        goes below the minimum height, which this label sets: measured
        without it)."""
        if not self.text():
            return 0
        kept = self.minimumHeight()
        self.blockSignals(True)
        self.setMinimumHeight(0)
        need = self.heightForWidth(max(1, self.width()))
        self.setMinimumHeight(kept)
        self.blockSignals(False)
        return need

    def _fit(self) -> None:
        need = self._need()
        if need != self.minimumHeight():
            self.setMinimumHeight(max(0, need))
            self.updateGeometry()

    def fits(self) -> bool:
        """Whether all of the text shows at the label's present size."""
        return not self.text() or self.height() >= self._need()


__all__ = ["WrapLabel"]
