"""A caption over a large number (the shift counters)."""

from __future__ import annotations

from PySide6.QtWidgets import QFrame, QLabel, QVBoxLayout, QWidget


class StatTile(QFrame):
    """A caption over a large number."""

    def __init__(self, caption: str, accent: str = "#c9d1d9", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("statTile")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(10, 6, 10, 6)
        lay.setSpacing(0)
        cap = QLabel(caption.upper())
        cap.setObjectName("statCaption")
        self.value = QLabel("0")
        self.value.setObjectName("statValue")
        self.value.setStyleSheet(f"color: {accent};")
        lay.addWidget(cap)
        lay.addWidget(self.value)

    def set(self, text: str) -> None:
        if text != self.value.text():  # an unchanged tile must not trigger a re-layout
            self.value.setText(text)
