"""Panels of the calibration view: the scoring bar, the operating point
(confusion matrix, rates, band counts), the strategy controls, the frame
check (frames that carry no part), and the columns they sit in. They display
and collect; the view binds them to the core's calibration session."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox, QDoubleSpinBox, QFileDialog, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QMessageBox,
    QLineEdit, QProgressBar, QPushButton, QScrollArea, QSplitter, QVBoxLayout, QWidget,
)

from app.widgets import theme
from app.widgets.confusion import ConfusionMatrix
from inspection_core.calibration import STRATEGIES, OperatingPoint
from inspection_core.frame_check import limits_of

THUMB = 88
GALLERY_LIMIT = 200
STRATEGY_TEXT = {
    "youden": ("Youden", "maximum TPR − FPR"),
    "f1": ("F1", "maximum F1"),
    "fpr": ("False-reject rate ≤", "lowest threshold whose false-reject rate is at most the target"),
    "fnr": ("Escape rate ≤", "highest threshold whose escape rate is at most the target"),
    "quantile": ("Quantile of good", "a quantile of the good scores, plus a margin (no defects needed)"),
    "manual": ("Manual", "the value typed here"),
}


def pct(v: float | None, ci: tuple[float, float] | None = None) -> str:
    if v is None:
        return "—"
    text = f"{100 * v:.1f} %"
    if ci is not None:
        text += f"   (95 % CI {100 * ci[0]:.1f}–{100 * ci[1]:.1f} %)"
    return text


def num(v: float | None) -> str:
    return "—" if v is None else f"{v:.3f}"


class FitWidthScrollArea(QScrollArea):
    """Scrolls vertically only, and is never narrower than what it holds needs
    (its inputs and hints were cut on the right, with a horizontal scroll bar)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt override
        hint = super().minimumSizeHint()
        w = self.widget()
        if w is None:
            return hint
        need = w.minimumSizeHint().width() + self.verticalScrollBar().sizeHint().width() + 2 * self.frameWidth()
        return QSize(max(hint.width(), need), hint.height())


class OperatingPointPanel(QGroupBox):
    """Confusion matrix, rates with bootstrap intervals, and PASS/REVIEW/FAIL counts."""

    METRICS = (("fpr", "False-reject rate (FPR)"), ("fnr", "Escape rate (FNR)"), ("precision", "Precision"),
               ("recall", "Recall"), ("f1", "F1"), ("balanced_accuracy", "Balanced accuracy"))

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("At this threshold", parent)
        lay = QVBoxLayout(self)
        self.confusion = ConfusionMatrix()
        lay.addWidget(self.confusion)
        form = QGridLayout()
        form.setVerticalSpacing(3)
        form.setHorizontalSpacing(10)
        self.metric_labels: dict[str, QLabel] = {}
        for i, (key, text) in enumerate(self.METRICS):
            # the two rates with their intervals get a row each; the four scores share two rows
            row, col = (i, 0) if i < 2 else (2 + (i - 2) // 2, 2 * ((i - 2) % 2))
            form.addWidget(QLabel(text + ":"), row, col)
            lbl = QLabel("—")
            theme.set_tone(lbl, "strong")
            lbl.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.metric_labels[key] = lbl
            form.addWidget(lbl, row, col + 1, 1, 3 if i < 2 else 1)
        form.setColumnStretch(1, 1)
        form.setColumnStretch(3, 1)
        lay.addLayout(form)
        bands = QHBoxLayout()
        self.band_labels: dict[str, QLabel] = {}
        for key, color in (("pass", "#2e8b57"), ("review", "#d68c00"), ("fail", "#c8372d")):
            lbl = QLabel(f"{key.upper()} –")
            lbl.setAlignment(Qt.AlignmentFlag.AlignCenter)
            lbl.setStyleSheet(f"background: {color}; color: white; font-weight: 600; padding: 5px; border-radius: 3px;")
            self.band_labels[key] = lbl
            bands.addWidget(lbl)
        lay.addLayout(bands)

    def show_point(self, op: OperatingPoint) -> None:
        review = op.threshold.low is not None
        self.confusion.set_review_mode(review)
        self.confusion.set_counts(op.tn, op.fp, op.fn, op.tp, op.review_good, op.review_defect)
        self.metric_labels["fpr"].setText(pct(op.fpr, op.fpr_ci))
        self.metric_labels["fnr"].setText(pct(op.fnr, op.fnr_ci))
        for key in ("precision", "recall", "f1", "balanced_accuracy"):
            self.metric_labels[key].setText(num(getattr(op, key)))
        self.band_labels["pass"].setText(f"PASS {op.n_pass}")
        self.band_labels["review"].setText(f"REVIEW {op.n_review}")
        self.band_labels["review"].setVisible(review)
        self.band_labels["fail"].setText(f"FAIL {op.n_fail}")

    def clear(self) -> None:
        self.confusion.clear()
        for lbl in self.metric_labels.values():
            lbl.setText("—")


class StrategyPanel(QWidget):
    """Buttons for the threshold strategies with their targets, the
    two-threshold switch and the save button."""

    strategyRequested = Signal(str)
    bandRequested = Signal()
    twoThresholdToggled = Signal(bool)
    saveRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        sbox = QGroupBox("Threshold strategy")
        grid = QGridLayout(sbox)
        self.buttons: dict[str, QPushButton] = {}
        self.fpr_target = self._spin(0.0, 50.0, 1.0, 0.1, " %")
        self.fnr_target = self._spin(0.0, 50.0, 0.5, 0.1, " %")
        self.quantile_target = self._spin(50.0, 100.0, 99.0, 0.5, " %")
        self.margin_spin = self._spin(0.0, 5.0, 0.0, 0.05, "")
        self.margin_spin.setPrefix("+ margin ")
        self.margin_spin.setToolTip("relative to the spread of the good scores (quantile − median)")
        self.manual_value = QDoubleSpinBox(decimals=6, minimum=-1e9, maximum=1e9, singleStep=0.001)
        self.manual_value.editingFinished.connect(lambda: self.strategyRequested.emit("manual"))
        extras = {"fpr": self.fpr_target, "fnr": self.fnr_target, "quantile": self.quantile_target,
                  "manual": self.manual_value}
        row = 0
        for name in STRATEGIES:
            text, tip = STRATEGY_TEXT[name]
            b = QPushButton(text, clicked=lambda _=False, n=name: self.strategyRequested.emit(n))
            b.setToolTip(tip)
            self.buttons[name] = b
            grid.addWidget(b, row, 0)
            if name in extras:
                grid.addWidget(extras[name], row, 1)
            row += 1
            if name == "quantile":
                grid.addWidget(self.margin_spin, row, 1)
                row += 1
        self.reason = QLabel("")
        self.reason.setWordWrap(True)
        theme.set_tone(self.reason, "warn")
        grid.addWidget(self.reason, row, 0, 1, 2)
        lay.addWidget(sbox)
        tbox = QGroupBox("REVIEW band")
        tlay = QVBoxLayout(tbox)
        self.two_check = QCheckBox("Two thresholds: PASS / REVIEW / FAIL")
        self.two_check.toggled.connect(self.twoThresholdToggled)
        tlay.addWidget(self.two_check)
        self.band_button = QPushButton("Band from the two targets", clicked=self.bandRequested, enabled=False)
        self.band_button.setToolTip("PASS line meets the escape-rate target, FAIL line the false-reject target")
        tlay.addWidget(self.band_button)
        hint = QLabel("Drag the lines in the histogram; strategies place the FAIL line.")
        hint.setWordWrap(True)
        theme.set_tone(hint, "hint")
        tlay.addWidget(hint)
        lay.addWidget(tbox)
        self.save_button = QPushButton("Save to bundle…", clicked=self.saveRequested)
        self.save_button.setStyleSheet("font-weight: 600; padding: 8px;")
        lay.addWidget(self.save_button)
        lay.addStretch(1)

    @staticmethod
    def _spin(lo: float, hi: float, value: float, step: float, suffix: str) -> QDoubleSpinBox:
        s = QDoubleSpinBox(decimals=2, minimum=lo, maximum=hi, singleStep=step, suffix=suffix)
        s.setValue(value)
        return s

    def target_for(self, name: str) -> float | None:
        """The target a strategy is run with (rates as fractions; manual: the value)."""
        return {"fpr": self.fpr_target.value() / 100, "fnr": self.fnr_target.value() / 100,
                "quantile": self.quantile_target.value() / 100, "manual": self.manual_value.value()}.get(name)

    def margin_for(self, name: str) -> float:
        return self.margin_spin.value() if name == "quantile" else 0.0


def training_ranges(section: Any) -> str:
    """The training images' frame statistics of a manifest's ``frame_check``
    section in words ("" when it holds none): where the limits come from."""
    training = (section or {}).get("training") if isinstance(section, dict) else None
    if not isinstance(training, dict):
        return ""

    def span(key: str, fmt: str) -> str | None:
        q = training.get(key)
        if not isinstance(q, list) or len(q) < 5:
            return None
        return f"{format(q[0], fmt)}–{format(q[-1], fmt)} (median {format(q[2], fmt)})"

    parts = []
    level, contrast = span("level", ".0f"), span("contrast", ".1f")
    if level:
        parts.append(f"mean gray level {level}")
    if contrast:
        parts.append(f"contrast {contrast}")
    clipped = training.get("clipped")
    if isinstance(clipped, list) and clipped:
        parts.append(f"saturated pixels at most {100 * clipped[-1]:.1f} %")
    if not parts:
        return ""
    source = section.get("source") or "the training images"
    return f"Training images ({source}): " + "; ".join(parts) + "."


class FrameCheckPanel(QGroupBox):
    """The bundle's frame check: its limits, the training images' ranges they
    come from, and whether frames that carry no part are refused (INVALID,
    never PASS). ``saveRequested(enabled)``: write the check's state into the bundle."""

    saveRequested = Signal(bool)

    CHECK_TEXT = "Refuse frames that carry no part (blank, overexposed, no part)"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Frame check", parent)
        lay = QVBoxLayout(self)
        # on two lines: a check box does not wrap, and one line would widen the whole column
        self.check = QCheckBox(self.CHECK_TEXT.replace(" (", "\n("))
        self.check.setAccessibleName(self.CHECK_TEXT)
        self.check.setToolTip("Such frames get the verdict INVALID with their reason, never PASS; "
                              "the live line warns when several come in a row")
        self.check.toggled.connect(self._on_toggled)
        lay.addWidget(self.check)
        self.limits_label = QLabel("")
        self.limits_label.setWordWrap(True)
        lay.addWidget(self.limits_label)
        self.training_label = QLabel("")
        self.training_label.setWordWrap(True)
        theme.set_tone(self.training_label, "hint")
        lay.addWidget(self.training_label)
        self.pending_label = QLabel("")
        self.pending_label.setWordWrap(True)
        theme.set_tone(self.pending_label, "warn")
        lay.addWidget(self.pending_label)
        self.save_button = QPushButton("Save frame check", enabled=False)
        self.save_button.setToolTip("Write the frame check's on/off into the bundle (nothing else changes)")
        self.save_button.clicked.connect(lambda: self.saveRequested.emit(self.check.isChecked()))
        lay.addWidget(self.save_button)
        self.saved_enabled: bool | None = None  # the bundle's state (None: no bundle or unreadable)
        self.show_manifest(None)

    def show_manifest(self, manifest: dict[str, Any] | None) -> None:
        """Show the frame check of ``manifest`` (None: no bundle)."""
        self.check.blockSignals(True)
        try:
            if manifest is None:
                self.saved_enabled = None
                self.check.setChecked(False)
                self.limits_label.setText("No model bundle chosen.")
                self.training_label.setText("")
            else:
                section = manifest.get("frame_check")
                try:
                    limits = limits_of(manifest)
                except ValueError as exc:
                    self.saved_enabled = None
                    self.limits_label.setText(f"The bundle's frame check is unusable: {exc}")
                    theme.set_tone(self.limits_label, "error")
                    self.training_label.setText("")
                    return
                theme.set_tone(self.limits_label, None)
                self.saved_enabled = limits.enabled
                self.check.setChecked(limits.enabled)
                default = "" if section is not None else " (default limits: this bundle was made before the check)"
                text = limits.describe()
                self.limits_label.setText(text[:1].upper() + text[1:] + default + ".")
                self.training_label.setText(training_ranges(section))
        finally:
            self.check.blockSignals(False)
            self.check.setEnabled(self.saved_enabled is not None)
            self._on_toggled(self.check.isChecked())

    def confirm_off(self, bundle_name: str) -> bool:
        """Ask before the check is turned off (blank frames may then PASS)."""
        answer = QMessageBox.warning(
            self, "Turn the frame check off?",
            f"With the frame check off, <b>{bundle_name}</b> scores every frame as a part: a blank, "
            "covered or overexposed frame may PASS.<br><br>Turn it off?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Cancel)
        return answer == QMessageBox.StandardButton.Yes

    def changed(self) -> bool:
        """Whether the box differs from what the bundle holds (a save would change it)."""
        return self.saved_enabled is not None and self.check.isChecked() != self.saved_enabled

    def enabled(self) -> bool:
        return self.check.isChecked()

    def _on_toggled(self, on: bool) -> None:
        changed = self.changed()
        self.save_button.setEnabled(changed)
        if not changed:
            self.pending_label.setText("")
        elif on:
            self.pending_label.setText("Not saved yet: the bundle scores every frame as a part until you save.")
        else:
            self.pending_label.setText("Not saved yet. Off: a blank or overexposed frame is scored as a part "
                                       "and may PASS.")


class ScoringBar(QWidget):
    """The calibration folder, Browse, Score, the stored scores, Cancel and the progress."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        top = QHBoxLayout(self)
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(QLabel("Calibration data:"))
        self.folder_edit = QLineEdit()
        self.folder_edit.setPlaceholderText("folder with good and defective images (MVTec layout or good/ + defect/)")
        top.addWidget(self.folder_edit, 1)
        self.browse_button = QPushButton("Browse…", clicked=self._browse)
        self.score_button = QPushButton("Score")
        self.stored_button = QPushButton("Use scores stored in bundle")
        self.cancel_button = QPushButton("Cancel", enabled=False)
        for b in (self.browse_button, self.score_button, self.stored_button, self.cancel_button):
            top.addWidget(b)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(200)
        self.progress.setVisible(False)
        top.addWidget(self.progress)

    def _browse(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Calibration data folder", self.folder_edit.text())
        if d:
            self.folder_edit.setText(d)


def three_columns(left: Sequence[QWidget], middle: Sequence[QWidget], right: Sequence[QWidget]) -> QSplitter:
    """The view's columns: plots and gallery (stretching, split), the ROC curve and the
    operating point, and the controls in a scroll area never narrower than they are."""
    split = QSplitter(Qt.Orientation.Horizontal)
    first = QSplitter(Qt.Orientation.Vertical)
    for w in left:
        first.addWidget(w)
    first.setSizes([480, 300])
    split.addWidget(first)
    for i, widgets in enumerate((middle, right)):
        box = QWidget()
        lay = QVBoxLayout(box)
        lay.setContentsMargins(0, 0, 0, 0)
        for j, w in enumerate(widgets):
            lay.addWidget(w, 1 if i == 0 and j == 0 else 0)
        if i == 0:
            split.addWidget(box)
        else:
            scroll = FitWidthScrollArea()  # never narrower than its inputs: nothing cut on the right
            scroll.setWidget(box)
            scroll.setFrameShape(QScrollArea.Shape.NoFrame)
            split.addWidget(scroll)
    split.setCollapsible(2, False)
    for i, stretch in enumerate((1, 0, 0)):
        split.setStretchFactor(i, stretch)
    split.setSizes([700, 420, 340])
    return split
