"""The calibration view's images and dialogs: the gallery of misjudged images,
one of them side by side with the model's reconstruction and heat map, and the
confirmation before a new threshold is written into the bundle."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import (
    QDialog, QDialogButtonBox, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QListWidget, QListWidgetItem,
    QPlainTextEdit, QPushButton, QTabWidget, QVBoxLayout, QWidget,
)

from app.tasks import TaskSlot
from app.views.calibrate_panels import GALLERY_LIMIT, THUMB, pct
from app.widgets import theme
from app.widgets.image_pane import NO_RECONSTRUCTION, heat_overlay  # the same heat map the Inspect view shows
from app.widgets.plots import to_pixmap
from inspection_core.calibration import CalibrationResult
from inspection_core.types import Prediction, Threshold


def _pane(title: str) -> tuple[QWidget, QLabel]:
    box = QWidget()
    lay = QVBoxLayout(box)
    lay.setContentsMargins(0, 0, 0, 0)
    cap = QLabel(title)
    cap.setAlignment(Qt.AlignmentFlag.AlignCenter)
    theme.set_tone(cap, "strong")
    img = QLabel("…")
    img.setAlignment(Qt.AlignmentFlag.AlignCenter)
    img.setFixedSize(280, 280)
    img.setStyleSheet(f"background: {theme.PLOT_BACKGROUND}; color: {theme.TEXT_DIM}; border: 1px solid {theme.AXIS};")
    lay.addWidget(cap)
    lay.addWidget(img)
    return box, img


class PredictionDialog(QDialog):
    """Image, reconstruction and heat map of one calibration image; filled in
    when the prediction (run on a worker) arrives."""

    SIZE = 280

    def __init__(self, path: Path, label: int, score: float, threshold: Threshold,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"{Path(path).name} — calibration image")
        self.path = Path(path)
        lay = QVBoxLayout(self)
        truth = "defective" if label == 1 else "good"
        verdict = threshold.verdict(score).value
        self.header = QLabel(
            f"<b>{self.path.parent.name}/{self.path.name}</b> &nbsp; actual: <b>{truth}</b> &nbsp; score {score:.4g} &nbsp; "
            f"verdict at the current threshold: <b>{verdict}</b>")
        self.header.setTextFormat(Qt.TextFormat.RichText)
        lay.addWidget(self.header)
        row = QHBoxLayout()
        boxes = [_pane(t) for t in ("image", "reconstruction", "heat map")]
        for box, _ in boxes:
            row.addWidget(box)
        self.image_label, self.recon_label, self.heat_label = (lbl for _, lbl in boxes)
        lay.addLayout(row)
        self.status = QLabel("Scoring on the worker…")
        theme.set_tone(self.status, "hint")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        self.path_label = QLabel(str(self.path))
        theme.set_tone(self.path_label, "small")
        self.path_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.path_label)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.prediction: Prediction | None = None

    def set_prediction(self, pred: Prediction) -> None:
        self.prediction = pred
        self.image_label.setPixmap(to_pixmap(pred.image, self.SIZE))
        if pred.reconstruction is not None:
            self.recon_label.setPixmap(to_pixmap(pred.reconstruction, self.SIZE))
        else:
            self.recon_label.setText(NO_RECONSTRUCTION)
        self.heat_label.setPixmap(to_pixmap(heat_overlay(pred.image, pred.heat), self.SIZE))
        self.status.setText(
            f"score {pred.score:.4g} → {pred.verdict.value}{f' ({pred.reason})' if pred.reason else ''} "
            "with the bundle's saved threshold and frame check; "
            f"scored in {pred.latency_ms:.0f} ms")

    def predict(self, slot: TaskSlot, bundle: Path, inspector: Any, keep: Callable[[Any], None]) -> None:
        """Score the image on a worker (``slot``) with ``inspector`` (None: load ``bundle``
        there); ``keep(inspector)`` runs when done, so the next image needs no loading."""
        path = self.path

        def job(_progress: Any, _cancel: Any) -> tuple[Any, Any]:
            from inspection_core.data.images import read_image
            from inspection_core.inference import Inspector

            insp = inspector if inspector is not None else Inspector(bundle)
            return insp, insp.predict(read_image(path))

        def done(result: tuple[Any, Any]) -> None:
            keep(result[0])
            self.set_prediction(result[1])

        slot.finished.connect(done)
        slot.failed.connect(self.set_error)
        slot.start(job)

    def set_error(self, message: str) -> None:
        self.status.setText(f"Could not score this image: {message}")
        theme.set_tone(self.status, "error")


def _fmt_threshold(d: dict[str, Any] | None) -> str:
    if not d or d.get("high") is None:
        return "none"
    text = f"FAIL > {float(d['high']):.6g}"
    if d.get("low") is not None:
        text = f"PASS ≤ {float(d['low']):.6g}, REVIEW between, " + text
    strategy = d.get("strategy")
    if strategy:
        target = d.get("target")
        text += f"  ({strategy}{'' if target is None else f', target {target:g}'})"
    return text


class SaveCalibrationDialog(QDialog):
    """Shows the old and the new threshold(s) and asks for a note before saving."""

    def __init__(self, bundle: Path, old: dict[str, Any] | None, new: dict[str, Any], summary: str,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Save calibration to the bundle")
        self.setMinimumWidth(520)
        lay = QVBoxLayout(self)
        intro = QLabel(f"Write the threshold into <b>{Path(bundle).name}</b>? "
                       "The change is recorded in the bundle's calibration history.")
        intro.setWordWrap(True)
        lay.addWidget(intro)
        grid = QGridLayout()
        grid.addWidget(QLabel("Current:"), 0, 0)
        self.old_label = QLabel(_fmt_threshold(old))
        grid.addWidget(self.old_label, 0, 1)
        grid.addWidget(QLabel("New:"), 1, 0)
        self.new_label = QLabel(_fmt_threshold(new))
        theme.set_tone(self.new_label, "strong")
        grid.addWidget(self.new_label, 1, 1)
        lay.addLayout(grid)
        s = QLabel(summary)
        s.setWordWrap(True)
        theme.set_tone(s, "hint")
        lay.addWidget(s)
        lay.addWidget(QLabel("Note (why this threshold; who decided):"))
        self.note = QPlainTextEdit()
        self.note.setPlaceholderText("e.g. line 3, calibrated on lot 2024-11 after lens change")
        self.note.setFixedHeight(70)
        lay.addWidget(self.note)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        lay.addWidget(self.buttons)

    @classmethod
    def for_result(cls, bundle: Path, old: dict[str, Any] | None, result: CalibrationResult,
                   frame_check: bool | None, parent: QWidget | None = None) -> SaveCalibrationDialog:
        """The confirmation for ``result`` (and the frame check turned on or off with it, unless None)."""
        new = {**result.threshold.to_dict(), "strategy": result.strategy, "target": result.target}
        op = result.point
        summary = (f"On {len(result.scores)} calibration images: false-reject rate {pct(op.fpr)}, escape rate "
                   f"{pct(op.fnr)}; PASS {op.n_pass}, REVIEW {op.n_review}, FAIL {op.n_fail}.")
        if frame_check is not None:
            summary += f" The frame check is turned {'on' if frame_check else 'OFF'} with it."
        return cls(bundle, old, new, summary, parent)

    def note_text(self) -> str:
        return self.note.toPlainText().strip()


def bundle_header(m: dict[str, Any] | None, path: Path | None) -> str:
    """The Calibrate view's header: the model and the threshold it holds now."""
    if m is None:
        return "<b>No model bundle chosen</b> — pick one in the Inspect view or train one."
    th = m.get("threshold") or {}
    band = "" if th.get("low") is None else f", REVIEW above {th['low']:.4g}"
    return (f"Model: <b>{m.get('name', path.name if path else '?')}</b> ({(m.get('model') or {}).get('model', '?')}) — "
            f"saved threshold FAIL above <b>{th.get('high', float('nan')):.4g}</b>{band} "
            f"({th.get('strategy') or 'provisional'})")


class MisjudgedGallery(QGroupBox):
    """Thumbnails of the false passes and false rejects; thumbnails are read
    on a worker (the view's task slot ``thumbnails``) and cached by path. When the images are not
    where the calibration found them, it says where they were and offers
    "Locate folder…" (``locateRequested``)."""

    imageClicked = Signal(int)  # index into the calibration set
    locateRequested = Signal()

    def __init__(self, slot: TaskSlot, parent: QWidget | None = None) -> None:
        super().__init__("Misjudged at the current threshold (click to inspect)", parent)
        self._slot = slot
        slot.finished.connect(self._on_thumbnails)
        self._thumbs: dict[str, QPixmap] = {}
        lay = QVBoxLayout(self)
        self.tabs = QTabWidget()
        self.false_passes = self._list()
        self.false_rejects = self._list()
        self.tabs.addTab(self.false_passes, "False passes")
        self.tabs.addTab(self.false_rejects, "False rejects")
        lay.addWidget(self.tabs)
        row = QHBoxLayout()
        self.note = QLabel("")
        self.note.setWordWrap(True)
        theme.set_tone(self.note, "hint")
        row.addWidget(self.note, 1)
        self.locate_button = QPushButton("Locate folder…", clicked=self.locateRequested)
        self.locate_button.setToolTip("Choose the folder the calibration images are in now")
        self.locate_button.hide()
        row.addWidget(self.locate_button)
        lay.addLayout(row)
        self.missing_note = ""  # set by the view: where the images were, when they are not found

    def _list(self) -> QListWidget:
        w = QListWidget()
        w.setViewMode(QListWidget.ViewMode.IconMode)
        w.setIconSize(QSize(THUMB, THUMB))
        w.setGridSize(QSize(THUMB + 56, THUMB + 64))  # room for the defect type, file name and score
        w.setResizeMode(QListWidget.ResizeMode.Adjust)
        w.setMovement(QListWidget.Movement.Static)
        w.setUniformItemSizes(True)
        w.itemClicked.connect(lambda item: self.imageClicked.emit(int(item.data(Qt.ItemDataRole.UserRole))))
        return w

    def show_images(self, false_passes: Sequence[int], false_rejects: Sequence[int], scores: np.ndarray,
                    paths: Sequence[Path] | None) -> None:
        self.tabs.setTabText(0, f"False passes ({len(false_passes)})")
        self.tabs.setTabText(1, f"False rejects ({len(false_rejects)})")
        missing: list[Path] = []
        for widget, idx in ((self.false_passes, false_passes), (self.false_rejects, false_rejects)):
            widget.clear()
            for i in list(idx)[:GALLERY_LIMIT]:
                name = f"{paths[i].parent.name}\n{paths[i].name}" if paths else f"#{i}"  # defect type, file
                item = QListWidgetItem(f"{name}\n{scores[i]:.4g}")
                item.setData(Qt.ItemDataRole.UserRole, int(i))
                if paths:
                    item.setToolTip(str(paths[i]))
                    pm = self._thumbs.get(str(paths[i]))
                    if pm is None:
                        missing.append(paths[i])
                        pm = self._placeholder()
                    item.setIcon(QIcon(pm))
                widget.addItem(item)
        more = max(0, len(false_passes) - GALLERY_LIMIT) + max(0, len(false_rejects) - GALLERY_LIMIT)
        note = "" if paths else "No image paths stored with these scores: score a folder to see the images. "
        note = self.missing_note + " " if self.missing_note else note
        self.note.setText(note + (f"{more} more not shown." if more else ""))
        self.locate_button.setVisible(bool(self.missing_note))
        if self.missing_note:
            missing = []  # nothing to read until the folder is located
        if missing and not self._slot.busy:
            todo = list(dict.fromkeys(missing))
            self._slot.start(lambda _p, _c: read_thumbnails(todo))

    def clear(self) -> None:
        self.false_passes.clear()
        self.false_rejects.clear()
        self.tabs.setTabText(0, "False passes")
        self.tabs.setTabText(1, "False rejects")

    @staticmethod
    def _placeholder() -> QPixmap:
        """A dark tile saying there is no picture (yet, or at all), never a blank grey square."""
        pm = QPixmap(THUMB, THUMB)
        pm.fill(QColor(theme.PLOT_BACKGROUND))
        p = QPainter(pm)
        p.setPen(QColor(theme.TEXT_DIM))
        p.drawRect(0, 0, THUMB - 1, THUMB - 1)
        p.drawText(pm.rect(), Qt.AlignmentFlag.AlignCenter, "no image")
        p.end()
        return pm

    def _on_thumbnails(self, thumbs: dict[str, np.ndarray]) -> None:
        for key, arr in thumbs.items():
            self._thumbs[key] = to_pixmap(arr)
        for widget in (self.false_passes, self.false_rejects):
            for r in range(widget.count()):
                item = widget.item(r)
                pm = self._thumbs.get(item.toolTip())
                if pm is not None:
                    item.setIcon(QIcon(pm))


def read_thumbnails(paths: Sequence[Path]) -> dict[str, np.ndarray]:
    """Small 8-bit copies of the images (runs on a worker); unreadable files are left out."""
    import cv2

    from inspection_core.data.images import ImageReadError, read_image
    from inspection_core.data.preprocess import to_uint8

    out: dict[str, np.ndarray] = {}
    for p in paths:
        try:
            img = to_uint8(read_image(p))
        except (ImageReadError, OSError, ValueError):
            continue
        h, w = img.shape[:2]
        s = THUMB / max(h, w)
        out[str(p)] = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return out
