"""Fast display of numpy images.

``to_qimage`` wraps the array's memory without copying (the QImage keeps a
reference to the array through ``ImagePane``), and ``ImagePane`` paints it
scaled to fit, so a live view costs one paint per refresh and no pixmap
conversion. ``heat_overlay`` builds the heat map shown over the image; a pane
given a ``legend`` draws the colour scale under it. A pane's height follows its
width and its image's aspect (``heightForWidth``), so an image fills its pane
instead of floating in empty space.
"""

from __future__ import annotations

import cv2
import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPaintEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

#: what the reconstruction pane says for a model that rebuilds no image (PatchCore, the classifier)
NO_RECONSTRUCTION = "no reconstruction for this model"
#: the heat pane's colour scale: what its two ends mean (``Prediction.heat``: the anomaly map over a
#: scale fixed at training, 1.5 x the 99.9th percentile of held-out good pixels)
HEAT_LEGEND = ("as in good parts", "far beyond good parts")
HEAT_LEGEND_TIP = ("Heat map colours: blue where the part looks like the good parts the model learned, red where "
                   "it differs as much as 1.5 x the strongest 0.1 % of good pixels or more. The scale is fixed when "
                   "the model is trained, so colours mean the same on every part.")
TITLE_H = 28
LEGEND_H = 34


def colour_bar(colormap: int = cv2.COLORMAP_JET) -> QImage:
    """A 256 x 1 image of ``colormap`` from 0 to 1, drawn stretched as the heat pane's scale."""
    bar = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[None, :], colormap)
    return to_qimage(np.ascontiguousarray(bar)).copy()


def to_display(image: np.ndarray) -> np.ndarray:
    """An 8-bit gray, BGR or BGRA C-contiguous view/copy of an OpenCV-style image."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        if img.dtype == np.uint16:
            img = (img >> 8).astype(np.uint8)
        else:  # float maps: scale to the full range
            f = img.astype(np.float32)
            lo, hi = float(np.nanmin(f)), float(np.nanmax(f))
            img = np.zeros_like(f, dtype=np.uint8) if hi <= lo else ((f - lo) * (255.0 / (hi - lo))).astype(np.uint8)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    return np.ascontiguousarray(img)


def to_qimage(image: np.ndarray) -> QImage:
    """A QImage over the array's buffer (no copy). The caller must keep the
    array alive while the QImage is used (``ImagePane`` does)."""
    img = to_display(image)
    h, w = img.shape[:2]
    if img.ndim == 2:
        fmt = QImage.Format.Format_Grayscale8
    elif img.shape[2] == 3:
        fmt = QImage.Format.Format_BGR888
    elif img.shape[2] == 4:
        fmt = QImage.Format.Format_ARGB32  # little-endian BGRA in memory
    else:
        raise ValueError(f"cannot display an image with {img.shape[2]} channels")
    qimg = QImage(img.data, w, h, int(img.strides[0]), fmt)
    qimg._keepalive = img  # type: ignore[attr-defined]  # ties the buffer's life to the QImage wrapper
    return qimg


def fit_for_display(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` shrunk (area averaging, aspect kept) to fit ``width`` x ``height``;
    unchanged when it already fits. A 5-megapixel camera frame is reduced once,
    so the overlay and the panes cost the same as for a small frame."""
    h, w = image.shape[:2]
    s = min(width / w, height / h)
    if s >= 1.0 or width <= 0 or height <= 0:
        return image
    return cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def heat_overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.6,
                 colormap: int = cv2.COLORMAP_JET) -> np.ndarray:
    """The image (as BGR) with the [0, 1] heat map blended over it in a colour map."""
    base = to_display(image)
    if base.ndim == 2:
        base = cv2.cvtColor(base, cv2.COLOR_GRAY2BGR)
    elif base.shape[2] == 4:
        base = cv2.cvtColor(base, cv2.COLOR_BGRA2BGR)
    h, w = base.shape[:2]
    hm = np.asarray(heat, dtype=np.float32)
    if hm.shape[:2] != (h, w):
        hm = cv2.resize(hm, (w, h), interpolation=cv2.INTER_LINEAR)
    hm = np.clip(np.nan_to_num(hm), 0.0, 1.0)
    colored = cv2.applyColorMap(cv2.convertScaleAbs(hm, alpha=255.0), colormap)
    # Blend more where the heat is higher so a clean part stays readable
    # (one OpenCV pass: a live view draws this for every part).
    a = np.clip(0.1 + 1.2 * hm, 0.0, 1.0)
    a *= alpha
    return cv2.blendLinear(base, colored, 1.0 - a, a)


class ImagePane(QWidget):
    """Paints one image scaled to fit (aspect ratio kept) under a caption."""

    def __init__(self, title: str = "", parent: QWidget | None = None,
                 legend: tuple[str, str] | None = None) -> None:
        super().__init__(parent)
        self.title = title
        self.placeholder = "No image"
        self.legend = legend  # (low end, high end): a colour bar under the image
        self._bar: QImage | None = colour_bar() if legend else None
        self._qimage: QImage | None = None
        self._array: np.ndarray | None = None
        self._scaled: QImage | None = None  # the image scaled to the pane, made once per image and size
        self._aspect = 1.0  # height / width of the image shown (square until one is)
        self.setMinimumSize(160, 160)
        policy = QSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        policy.setHeightForWidth(True)
        self.setSizePolicy(policy)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, True)

    def _chrome_h(self) -> int:
        """Height of what is not the image: the title, the margins, the colour bar."""
        return (TITLE_H if self.title else 0) + 8 + (LEGEND_H if self.legend else 0)

    def hasHeightForWidth(self) -> bool:  # noqa: N802 - Qt override
        return True

    def heightForWidth(self, width: int) -> int:  # noqa: N802 - Qt override
        return max(self.minimumHeight(), round((width - 12) * self._aspect) + self._chrome_h())

    def sizeHint(self) -> QSize:
        return QSize(320, self.heightForWidth(320))

    def set_image(self, image: np.ndarray | None) -> None:
        """Show ``image`` (None clears the pane)."""
        if image is None:
            self._array, self._qimage, self._scaled = None, None, None
        else:
            self._array = to_display(image)
            self._qimage = to_qimage(self._array)
            self._scaled = self._fitted(self._array)
            h, w = self._array.shape[:2]
            if abs(h / max(w, 1) - self._aspect) > 1e-3:  # another shape of image: another height for the width
                self._aspect = h / max(w, 1)
                self.updateGeometry()
        self.update()

    def _image_area(self) -> QRectF:
        title_h = TITLE_H if self.title else 0
        return QRectF(6, title_h + 2, self.width() - 12, self.height() - self._chrome_h())

    def _target_size(self, iw: int, ih: int) -> tuple[int, int]:
        area = self._image_area()
        scale = min(area.width() / iw, area.height() / ih)
        return max(1, round(iw * scale)), max(1, round(ih * scale))

    def _fitted(self, array: np.ndarray) -> QImage | None:
        """The image resized with OpenCV to exactly the size it is painted at (several
        times cheaper than Qt's smooth scaling, which a live view would pay per part)."""
        if not self.isVisible() or self._image_area().width() <= 0 or self._image_area().height() <= 0:
            return None  # sized at the first paint
        h, w = array.shape[:2]
        pw, ph = self._pixel_size(w, h)
        if (pw, ph) == (w, h) and self.devicePixelRatioF() == 1.0:
            return self._qimage
        interp = cv2.INTER_AREA if pw < w else cv2.INTER_LINEAR
        qimg = to_qimage(cv2.resize(array, (pw, ph), interpolation=interp))
        qimg.setDevicePixelRatio(self.devicePixelRatioF())  # drawn at its logical size, sharp on HiDPI
        return qimg

    def _pixel_size(self, iw: int, ih: int) -> tuple[int, int]:
        tw, th = self._target_size(iw, ih)
        dpr = self.devicePixelRatioF()
        return max(1, round(tw * dpr)), max(1, round(th * dpr))

    def clear(self, placeholder: str | None = None) -> None:
        if placeholder is not None:
            self.placeholder = placeholder
        self.set_image(None)

    @property
    def has_image(self) -> bool:
        return self._qimage is not None

    def image_array(self) -> np.ndarray | None:
        return self._array

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        p.fillRect(self.rect(), QColor("#15191e"))
        title_h = TITLE_H if self.title else 0
        if self.title:
            f = QFont(self.font())
            f.setPointSizeF(max(9.0, f.pointSizeF()))
            f.setBold(True)
            p.setFont(f)
            p.setPen(QColor("#aab4be"))
            p.drawText(QRectF(10, 0, self.width() - 20, title_h), Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                       self.title.upper())
        area = self._image_area()
        if self.legend and self._bar is not None:
            self._paint_legend(p, area)
        if self._qimage is None or area.width() <= 0 or area.height() <= 0:
            p.setPen(QColor("#5c6670"))
            p.drawText(area, Qt.AlignmentFlag.AlignCenter, self.placeholder)
            return
        iw, ih = self._qimage.width(), self._qimage.height()
        tw, th = self._target_size(iw, ih)
        if self._scaled is None or (self._scaled.width(), self._scaled.height()) != self._pixel_size(iw, ih):
            self._scaled = self._fitted(self._array)  # first paint, or the pane was resized
        # centred across, at the top: images side by side start on one line under their titles
        p.drawImage(QPointF(area.x() + (area.width() - tw) / 2, area.y()), self._scaled)

    def _paint_legend(self, p: QPainter, area: QRectF) -> None:
        """The colour scale under the image: the bar, its two ends' meaning."""
        top = area.bottom() + 6
        bar = QRectF(10, top, self.width() - 20, 9)
        p.drawImage(bar, self._bar)
        f = QFont(self.font())
        f.setPointSizeF(max(8.0, f.pointSizeF() - 1.5))
        p.setFont(f)
        p.setPen(QColor("#aab4be"))
        text = QRectF(10, top + 11, self.width() - 20, LEGEND_H - 17)
        low, high = self.legend or ("", "")
        p.drawText(text, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, low)
        p.drawText(text, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, high)
