"""Dialogs of the calibration view: one misjudged image side by side with the
model's reconstruction and heat map, and the confirmation before a new
threshold is written into the bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from app.widgets import theme
from app.widgets.image_pane import NO_RECONSTRUCTION, heat_overlay  # the same heat map the Inspect view shows
from app.widgets.plots import to_pixmap
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

    def note_text(self) -> str:
        return self.note.toPlainText().strip()
