"""Images in the engineer views: OpenCV-layout arrays as QImage / QPixmap,
and a grid of small images (sample reconstructions, generated samples)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QGridLayout, QLabel, QSizePolicy, QWidget

from app.widgets import theme


def to_qimage(img: np.ndarray) -> QImage:
    """An OpenCV-layout array (gray, BGR, BGRA; uint8 or uint16) as a QImage (a copy)."""
    a = np.asarray(img)
    if a.dtype == np.uint16:
        a = (a >> 8).astype(np.uint8)
    elif a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    a = np.ascontiguousarray(a)
    h, w = a.shape[:2]
    if a.ndim == 2:
        return QImage(a.data, w, h, a.strides[0], QImage.Format.Format_Grayscale8).copy()
    if a.shape[2] == 3:
        return QImage(a.data, w, h, a.strides[0], QImage.Format.Format_BGR888).copy()
    if a.shape[2] == 4:
        rgba = np.ascontiguousarray(a[:, :, [2, 1, 0, 3]])
        return QImage(rgba.data, w, h, rgba.strides[0], QImage.Format.Format_RGBA8888).copy()
    raise ValueError(f"cannot show an image of shape {a.shape}")


def to_pixmap(img: np.ndarray, size: int | None = None) -> QPixmap:
    pm = QPixmap.fromImage(to_qimage(img))
    if size is not None:
        pm = pm.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
    return pm


class ImageGrid(QWidget):
    """Rows of small images with a caption per row (inputs, reconstructions,
    generated samples of one epoch). Labels are reused between updates."""

    def __init__(self, cell: int = 64, max_columns: int = 8, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._cell = cell
        self._max_columns = max_columns
        self._layout = QGridLayout(self)
        self._layout.setContentsMargins(4, 4, 4, 4)
        self._layout.setSpacing(3)
        self._title = QLabel("")
        theme.set_tone(self._title, "hint")
        self._layout.addWidget(self._title, 0, 0, 1, max_columns + 1)
        self._layout.setColumnStretch(max_columns + 1, 1)  # keep the images left-aligned
        self._captions: list[QLabel] = []
        self._cells: dict[tuple[int, int], QLabel] = {}
        self._rows: list[str] = []
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)

    def _caption(self, r: int) -> QLabel:
        while len(self._captions) <= r:
            cap = QLabel()
            cap.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            theme.set_tone(cap, "hint")
            self._layout.addWidget(cap, len(self._captions) + 1, 0)
            self._captions.append(cap)
        return self._captions[r]

    def _cell_label(self, r: int, c: int) -> QLabel:
        lbl = self._cells.get((r, c))
        if lbl is None:
            lbl = QLabel()
            lbl.setFixedSize(self._cell, self._cell)
            lbl.setAlignment(Qt.AlignmentFlag.AlignCenter)
            lbl.setStyleSheet(f"background: {theme.PLOT_BACKGROUND}; border: 1px solid {theme.AXIS};")
            self._layout.addWidget(lbl, r + 1, c + 1)
            self._cells[(r, c)] = lbl
        return lbl

    def set_rows(self, rows: Sequence[tuple[str, np.ndarray]], title: str = "") -> None:
        """``rows``: (caption, uint8 array (N, H, W, C)) pairs, drawn top to bottom."""
        self._title.setText(title)
        self._title.setVisible(bool(title))
        self._rows = []
        shown: set[tuple[int, int]] = set()
        r = 0
        for caption, batch in rows:
            if batch is None or len(batch) == 0:
                continue
            cap = self._caption(r)
            cap.setText(caption)
            cap.setVisible(True)
            for c, img in enumerate(list(batch)[: self._max_columns]):
                lbl = self._cell_label(r, c)
                lbl.setPixmap(to_pixmap(img, self._cell))
                lbl.setVisible(True)
                shown.add((r, c))
            self._rows.append(caption)
            r += 1
        for i, cap in enumerate(self._captions):
            cap.setVisible(i < r)
        for key, lbl in self._cells.items():
            lbl.setVisible(key in shown)

    def row_captions(self) -> list[str]:
        return list(self._rows)
