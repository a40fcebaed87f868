"""Calibrate view (engineers): choose the threshold on real score distributions.

Scores a calibration folder on a worker (or reuses the scores stored in the
bundle), then shows the good/defective histograms with draggable threshold
line(s), the ROC curve with the operating point, the confusion matrix and the
rates, and a gallery of the images misjudged at the current threshold. Every
number comes from :mod:`inspection_core.calibration`; saving goes through
``calibrate`` + ``apply_calibration``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QCheckBox, QDialog, QDoubleSpinBox, QFileDialog, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit,
    QListWidget, QListWidgetItem, QProgressBar, QPushButton, QScrollArea, QSplitter, QTabWidget, QVBoxLayout,
    QWidget,
)

from app.context import AppContext
from app.views.calibrate_dialogs import PredictionDialog, SaveCalibrationDialog
from app.widgets.confusion import ConfusionMatrix
from app.widgets.plots import RocPlot, ScoreHistogram, to_pixmap
from inspection_core import calibration as cal
from inspection_core.types import Threshold, Verdict

THUMB = 88
GALLERY_LIMIT = 200
BOOTSTRAP = 1000
STRATEGY_TEXT = {
    "youden": ("Youden", "maximum TPR − FPR"),
    "f1": ("F1", "maximum F1"),
    "fpr": ("False-reject rate ≤", "lowest threshold whose false-reject rate is at most the target"),
    "fnr": ("Escape rate ≤", "highest threshold whose escape rate is at most the target"),
    "quantile": ("Quantile of good", "a quantile of the good scores, plus a margin (no defects needed)"),
    "manual": ("Manual", "the value typed here"),
}


def _pct(v: float | None, ci: tuple[float, float] | None = None) -> str:
    if v is None:
        return "—"
    text = f"{100 * v:.1f} %"
    if ci is not None:
        text += f"   (95 % CI {100 * ci[0]:.1f}–{100 * ci[1]:.1f} %)"
    return text


def _num(v: float | None) -> str:
    return "—" if v is None else f"{v:.3f}"


def _read_thumbnails(paths: list[Path]) -> dict[str, np.ndarray]:
    """Small 8-bit copies of the images (runs on a worker)."""
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


class CalibrateView(QWidget):
    """See the module docstring. ``set_scores`` feeds it directly (tests, stored scores)."""

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.scores: np.ndarray | None = None
        self.labels: np.ndarray | None = None
        self.paths: list[Path] | None = None
        self.point: cal.OperatingPoint | None = None
        self.strategy, self.target = "manual", None  # what placed the current line(s)
        self._placing = False
        self._inspector: Any = None  # created and used on workers only
        self._score_job: Any = None
        self._thumb_job: Any = None
        self._save_job: Any = None
        self._thumbs: dict[str, QPixmap] = {}
        self._dialogs: list[QDialog] = []
        self._gallery_timer = QTimer(self, singleShot=True, interval=120, timeout=self._refresh_gallery)
        self._build()
        ctx.bundleChanged.connect(self._on_bundle_changed)
        ctx.bundleUpdated.connect(self._on_bundle_updated)
        self._on_bundle_changed(ctx.bundle_path)

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        root = QVBoxLayout(self)
        top = QHBoxLayout()
        self.bundle_label = QLabel()
        self.bundle_label.setStyleSheet("color: #333;")
        root.addWidget(self.bundle_label)
        top.addWidget(QLabel("Calibration data:"))
        self.folder_edit = QLineEdit()
        self.folder_edit.setPlaceholderText("folder with good and defective images (MVTec layout or good/ + defect/)")
        top.addWidget(self.folder_edit, 1)
        self.browse_button = QPushButton("Browse…", clicked=self._browse)
        self.score_button = QPushButton("Score", clicked=self.start_scoring)
        self.stored_button = QPushButton("Use scores stored in bundle", clicked=self.load_stored_scores)
        self.cancel_button = QPushButton("Cancel", clicked=self.cancel_scoring, enabled=False)
        for b in (self.browse_button, self.score_button, self.stored_button, self.cancel_button):
            top.addWidget(b)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(200)
        self.progress.setVisible(False)
        top.addWidget(self.progress)
        root.addLayout(top)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        root.addWidget(self.status)

        split = QSplitter(Qt.Orientation.Horizontal)
        left = QSplitter(Qt.Orientation.Vertical)
        self.histogram = ScoreHistogram()
        self.histogram.thresholdsChanged.connect(self._on_thresholds)
        left.addWidget(self.histogram)
        left.addWidget(self._build_gallery())
        left.setSizes([480, 300])
        split.addWidget(left)
        split.addWidget(self._build_results())
        split.addWidget(self._build_strategies())
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 0)
        split.setStretchFactor(2, 0)
        split.setSizes([700, 420, 340])
        root.addWidget(split, 1)
        self._set_enabled(False)

    def _build_gallery(self) -> QWidget:
        box = QGroupBox("Misjudged at the current threshold (click to inspect)")
        lay = QVBoxLayout(box)
        self.gallery_tabs = QTabWidget()
        self.gallery_fp = self._gallery_list()  # false passes (escapes)
        self.gallery_fr = self._gallery_list()  # false rejects
        self.gallery_tabs.addTab(self.gallery_fp, "False passes")
        self.gallery_tabs.addTab(self.gallery_fr, "False rejects")
        lay.addWidget(self.gallery_tabs)
        self.gallery_note = QLabel("")
        self.gallery_note.setStyleSheet("color: #666;")
        lay.addWidget(self.gallery_note)
        return box

    def _gallery_list(self) -> QListWidget:
        w = QListWidget()
        w.setViewMode(QListWidget.ViewMode.IconMode)
        w.setIconSize(QSize(THUMB, THUMB))
        w.setGridSize(QSize(THUMB + 24, THUMB + 34))
        w.setResizeMode(QListWidget.ResizeMode.Adjust)
        w.setMovement(QListWidget.Movement.Static)
        w.setUniformItemSizes(True)
        w.itemClicked.connect(self._open_item)
        return w

    def _build_results(self) -> QWidget:
        panel = QWidget()
        lay = QVBoxLayout(panel)
        lay.setContentsMargins(0, 0, 0, 0)
        self.roc_plot = RocPlot()
        self.roc_plot.setMinimumSize(300, 280)
        lay.addWidget(self.roc_plot, 1)
        mbox = QGroupBox("At this threshold")
        mlay = QVBoxLayout(mbox)
        self.confusion = ConfusionMatrix()
        mlay.addWidget(self.confusion)
        form = QGridLayout()
        form.setVerticalSpacing(3)
        self.metric_labels: dict[str, QLabel] = {}
        names = [("fpr", "False-reject rate (FPR)"), ("fnr", "Escape rate (FNR)"), ("precision", "Precision"),
                 ("recall", "Recall"), ("f1", "F1"), ("balanced_accuracy", "Balanced accuracy")]
        for i, (key, text) in enumerate(names):
            form.addWidget(QLabel(text + ":"), i, 0)
            lbl = QLabel("—")
            lbl.setStyleSheet("font-weight: 600;")
            lbl.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.metric_labels[key] = lbl
            form.addWidget(lbl, i, 1)
        form.setColumnStretch(1, 1)
        mlay.addLayout(form)
        bands = QHBoxLayout()
        self.band_labels: dict[str, QLabel] = {}
        for key, color in (("pass", "#2e8b57"), ("review", "#d68c00"), ("fail", "#c8372d")):
            lbl = QLabel(f"{key.upper()} –")
            lbl.setAlignment(Qt.AlignmentFlag.AlignCenter)
            lbl.setStyleSheet(f"background: {color}; color: white; font-weight: 600; padding: 5px; border-radius: 3px;")
            self.band_labels[key] = lbl
            bands.addWidget(lbl)
        mlay.addLayout(bands)
        lay.addWidget(mbox)
        return panel

    def _build_strategies(self) -> QWidget:
        panel = QWidget()
        lay = QVBoxLayout(panel)
        lay.setContentsMargins(0, 0, 0, 0)
        sbox = QGroupBox("Threshold strategy")
        grid = QGridLayout(sbox)
        self.strategy_buttons: dict[str, QPushButton] = {}
        self.fpr_target = self._spin(0.0, 50.0, 1.0, 0.1, " %")
        self.fnr_target = self._spin(0.0, 50.0, 0.5, 0.1, " %")
        self.quantile_target = self._spin(50.0, 100.0, 99.0, 0.5, " %")
        self.margin_spin = self._spin(0.0, 5.0, 0.0, 0.05, "")
        self.margin_spin.setPrefix("+ margin ")
        self.margin_spin.setToolTip("relative to the spread of the good scores (quantile − median)")
        self.manual_value = QDoubleSpinBox(decimals=6, minimum=-1e9, maximum=1e9, singleStep=0.001)
        self.manual_value.editingFinished.connect(lambda: self.apply_strategy("manual"))
        extras = {"fpr": self.fpr_target, "fnr": self.fnr_target, "quantile": self.quantile_target,
                  "manual": self.manual_value}
        row = 0
        for name in cal.STRATEGIES:
            text, tip = STRATEGY_TEXT[name]
            b = QPushButton(text, clicked=lambda _=False, n=name: self.apply_strategy(n))
            b.setToolTip(tip)
            self.strategy_buttons[name] = b
            grid.addWidget(b, row, 0)
            if name in extras:
                grid.addWidget(extras[name], row, 1)
            row += 1
            if name == "quantile":
                grid.addWidget(self.margin_spin, row, 1)
                row += 1
        self.strategy_reason = QLabel("")
        self.strategy_reason.setWordWrap(True)
        self.strategy_reason.setStyleSheet("color: #8a5a00;")
        grid.addWidget(self.strategy_reason, row, 0, 1, 2)
        lay.addWidget(sbox)
        tbox = QGroupBox("REVIEW band")
        tlay = QVBoxLayout(tbox)
        self.two_check = QCheckBox("Two thresholds: PASS / REVIEW / FAIL")
        self.two_check.toggled.connect(self._on_two_threshold)
        tlay.addWidget(self.two_check)
        self.band_button = QPushButton("Band from the two targets",
                                       clicked=self.apply_band_from_targets, enabled=False)
        self.band_button.setToolTip("PASS line meets the escape-rate target, FAIL line the false-reject target")
        tlay.addWidget(self.band_button)
        hint = QLabel("Drag the lines in the histogram; strategies place the FAIL line.")
        hint.setWordWrap(True)
        hint.setStyleSheet("color: #666;")
        tlay.addWidget(hint)
        lay.addWidget(tbox)
        self.save_button = QPushButton("Save to bundle…", clicked=self.save_to_bundle)
        self.save_button.setStyleSheet("font-weight: 600; padding: 8px;")
        lay.addWidget(self.save_button)
        lay.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(panel)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setMinimumWidth(300)
        return scroll

    @staticmethod
    def _spin(lo: float, hi: float, value: float, step: float, suffix: str) -> QDoubleSpinBox:
        s = QDoubleSpinBox(decimals=2, minimum=lo, maximum=hi, singleStep=step, suffix=suffix)
        s.setValue(value)
        return s

    def _set_enabled(self, has_data: bool) -> None:
        for w in (*self.strategy_buttons.values(), self.two_check, self.band_button, self.histogram):
            w.setEnabled(has_data)
        self.save_button.setEnabled(has_data and self.ctx.bundle_path is not None)

    def _say(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet("color: #b00020;" if error else "color: #444;")

    # ------------------------------------------------------------------ bundle
    def _manifest(self) -> dict[str, Any] | None:
        if self.ctx.bundle_path is None:
            return None
        from inspection_core.bundle import BundleError, read_manifest

        try:
            return read_manifest(self.ctx.bundle_path)
        except (BundleError, OSError) as exc:
            self._say(str(exc), error=True)
            return None

    def _on_bundle_updated(self, _path: object) -> None:
        self._inspector = None  # its threshold is stale now
        self._show_bundle()

    def _on_bundle_changed(self, _path: object) -> None:
        if self._score_job is not None:  # scores of the previous model mean nothing for this one
            self._score_job.cancel()
        self._inspector = None
        self.scores = self.labels = self.paths = self.point = None
        self._show_bundle()
        m = self._manifest()
        if m and (m.get("calibration") or {}).get("scores"):
            self.load_stored_scores()
        else:
            self._clear()

    def _show_bundle(self, _path: object = None) -> None:
        m = self._manifest()
        self.stored_button.setEnabled(bool(m and (m.get("calibration") or {}).get("scores")))
        self.score_button.setEnabled(self.ctx.bundle_path is not None)
        if m is None:
            self.bundle_label.setText("<b>No model bundle chosen</b> — pick one in the Inspect view or train one.")
            return
        th = m.get("threshold") or {}
        band = "" if th.get("low") is None else f", REVIEW above {th['low']:.4g}"
        self.bundle_label.setText(
            f"Model: <b>{m.get('name', self.ctx.bundle_path.name)}</b> ({(m.get('model') or {}).get('model', '?')}) — "
            f"saved threshold FAIL above <b>{th.get('high', float('nan')):.4g}</b>{band} "
            f"({th.get('strategy') or 'provisional'})")

    def _clear(self) -> None:
        self.histogram.set_data(np.empty(0), np.empty(0))
        self.roc_plot.clear_curve("score a calibration folder")
        self.confusion.clear()
        for lbl in self.metric_labels.values():
            lbl.setText("—")
        self.gallery_fp.clear()
        self.gallery_fr.clear()
        self._set_enabled(False)

    def load_stored_scores(self) -> None:
        """Redraw from the scores the bundle's last calibration stored (no rescoring)."""
        m = self._manifest()
        c = (m or {}).get("calibration") or {}
        if not c.get("scores"):
            self._say("This bundle holds no calibration scores yet: score a folder.", error=True)
            return
        paths = c.get("paths")
        base = Path(self.folder_edit.text()) if self.folder_edit.text().strip() else None
        if paths:
            paths = [Path(p) if Path(p).is_absolute() or base is None else base / p for p in paths]
        th = m.get("threshold") or {}
        self.set_scores(c["scores"], c["labels"], paths, threshold=Threshold.from_dict(th) if "high" in th else None)
        self.strategy, self.target = str(c.get("strategy") or "manual"), c.get("target")
        self._say(f"Showing the {len(c['scores'])} scores stored with the calibration of {c.get('time', '?')}"
                  + (f" — note: {c['note']}" if c.get("note") else ""))

    # ------------------------------------------------------------------ scoring
    def _browse(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Calibration data folder", self.folder_edit.text())
        if d:
            self.folder_edit.setText(d)

    def start_scoring(self) -> None:
        """Score the calibration folder's test images on a worker."""
        bundle, folder = self.ctx.bundle_path, self.folder_edit.text().strip()
        if bundle is None:
            self._say("Choose a model bundle first.", error=True)
            return
        from inspection_core.data.dataset import DatasetLayoutError, scan_dataset

        try:
            index = scan_dataset(folder)
        except DatasetLayoutError as exc:
            self._say(str(exc), error=True)
            return
        samples = list(index.test)
        if not samples:
            self._say(f"'{folder}' has no test images (test/good, test/<defect>) to calibrate on.", error=True)
            return
        cached = self._inspector

        def job(progress: Any, cancel: Any) -> tuple[Any, Any]:
            from inspection_core.evaluation import score_samples
            from inspection_core.inference import Inspector

            inspector = cached if cached is not None else Inspector(bundle)
            return inspector, score_samples(inspector, samples, 16, progress, cancel)

        self.progress.setRange(0, len(samples))
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self.cancel_button.setEnabled(True)
        self.score_button.setEnabled(False)
        self._say(f"Scoring {len(samples)} images of '{folder}'…")
        self._score_job = self.ctx.start_job(job, on_progress=self._on_score_progress, on_done=self._on_scored,
                                             on_error=self._on_score_error, on_cancelled=self._on_score_cancelled,
                                             name="calibration-scoring")

    def cancel_scoring(self) -> None:
        if self._score_job is not None:
            self._score_job.cancel()

    def _scoring_ended(self) -> None:
        self._score_job = None
        self.progress.setVisible(False)
        self.cancel_button.setEnabled(False)
        self.score_button.setEnabled(self.ctx.bundle_path is not None)

    def _on_score_progress(self, ev: Any) -> None:
        steps = getattr(ev, "steps", 0)
        if steps:
            self.progress.setRange(0, steps)
            self.progress.setValue(getattr(ev, "step", 0))

    def _on_scored(self, result: tuple[Any, Any]) -> None:
        self._scoring_ended()
        self._inspector, scored = result
        self.set_scores(scored.scores, scored.labels, [s.path for s in scored.samples])
        skipped = getattr(scored, "skipped", []) or []
        msg = f"Scored {len(scored.scores)} images."
        if skipped:
            msg += f" {len(skipped)} could not be read, e.g. {skipped[0][0]}: {skipped[0][1]}"
        self._say(msg, error=bool(skipped))

    def _on_score_error(self, message: str) -> None:
        self._scoring_ended()
        self._say(f"Scoring failed: {message}", error=True)

    def _on_score_cancelled(self) -> None:
        self._scoring_ended()
        self._say("Scoring cancelled; nothing changed.")

    def is_busy(self) -> bool:
        return self._score_job is not None and self._score_job.running

    def stop(self, wait_ms: int = 5000) -> bool:
        for job in (self._score_job, self._thumb_job):
            if job is not None:
                job.cancel()
        return all(j.wait(wait_ms) for j in (self._score_job, self._thumb_job) if j is not None)

    # ------------------------------------------------------------------ data
    def set_scores(self, scores: Any, labels: Any, paths: list[Any] | None = None,
                   threshold: Threshold | None = None) -> None:
        """Load a calibration set and draw everything; the line starts at
        ``threshold``, else the bundle's, else the first sensible strategy."""
        try:
            s, y = cal.validate_scores(scores, labels, paths)
        except cal.CalibrationError as exc:
            self._say(str(exc), error=True)
            self._clear()
            return
        self.scores, self.labels = s, y
        self.paths = None if paths is None else [Path(p) for p in paths]
        self.histogram.set_data(s, y)
        curve = cal.roc(s, y)
        if curve.auroc is None:
            self.roc_plot.clear_curve(curve.reason.split(":")[0])
        else:
            self.roc_plot.set_curve(curve.fpr, curve.tpr, curve.auroc)
        self._set_enabled(True)
        allowed = cal.strategies_available(y)
        reasons = []
        for name, b in self.strategy_buttons.items():
            b.setEnabled(name in allowed)
            if name not in allowed:
                try:
                    cal.choose_threshold(s, y, name)
                except cal.CalibrationError as exc:
                    b.setToolTip(str(exc))
                    reasons.append(str(exc))
        self.band_button.setEnabled(self.two_check.isChecked() and {"fpr", "fnr"} <= set(allowed))
        self.strategy_reason.setText(reasons[0] if reasons else "")
        if threshold is None:
            m = self._manifest()
            th = (m or {}).get("threshold") or {}
            threshold = Threshold.from_dict(th) if th.get("high") is not None else None
        if threshold is not None:
            self._place(threshold.high, threshold.low, "manual", threshold.high)
        else:
            self.apply_strategy("youden" if "youden" in allowed else allowed[0])

    # ------------------------------------------------------------------ thresholds
    def _place(self, high: float, low: float | None, strategy: str, target: float | None) -> None:
        self._placing = True
        try:
            self.two_check.blockSignals(True)
            self.two_check.setChecked(low is not None)
            self.two_check.blockSignals(False)
            if low is not None and not self.histogram.two_threshold():
                self.histogram.low_line.setVisible(True)
            elif low is None and self.histogram.two_threshold():
                self.histogram.low_line.setVisible(False)
            self.histogram.set_thresholds(high, low)
        finally:
            self._placing = False
        self.strategy, self.target = strategy, target
        self.band_button.setEnabled(low is not None and self.labels is not None
                                    and {"fpr", "fnr"} <= set(cal.strategies_available(self.labels)))

    def _target_for(self, name: str) -> float | None:
        return {"fpr": self.fpr_target.value() / 100, "fnr": self.fnr_target.value() / 100,
                "quantile": self.quantile_target.value() / 100, "manual": self.manual_value.value()}.get(name)

    def apply_strategy(self, name: str) -> float | None:
        """Move the FAIL line to the strategy's threshold (the REVIEW line stays at or below it)."""
        if self.scores is None:
            return None
        target = self._target_for(name)
        margin = self.margin_spin.value() if name == "quantile" else 0.0
        try:
            phi = cal.choose_threshold(self.scores, self.labels, name, target, margin=margin)
        except cal.CalibrationError as exc:
            self._say(str(exc), error=True)
            return None
        _, low = self.histogram.thresholds()
        self._place(phi, None if low is None else min(low, phi), name, target)
        self.strategy_reason.setStyleSheet("color: #8a5a00;")
        self._say(f"{STRATEGY_TEXT[name][0]}{'' if target is None or name == 'manual' else f' {target:g}'}: "
                  f"threshold {phi:.6g}")
        return phi

    def apply_band_from_targets(self) -> None:
        if self.scores is None:
            return
        try:
            low, high = cal.review_band_from_targets(self.scores, self.labels, self.fnr_target.value() / 100,
                                                     self.fpr_target.value() / 100)
        except cal.CalibrationError as exc:
            self._say(str(exc), error=True)
            return
        self._place(high, low, "manual", None)

    def _on_two_threshold(self, on: bool) -> None:
        high, _ = self.histogram.thresholds()
        low = None
        if on and self.labels is not None and "fnr" in cal.strategies_available(self.labels):
            low = min(high, cal.choose_threshold(self.scores, self.labels, "fnr", self.fnr_target.value() / 100))
        self._place(high, (low if low is not None else high) if on else None, "manual", high)

    def _on_thresholds(self, high: float, low: float | None) -> None:
        if not self._placing:  # a drag: the line is now hand-placed
            self.strategy, self.target = "manual", high
        self.confusion.set_review_mode(low is not None)
        self.manual_value.blockSignals(True)
        self.manual_value.setValue(high)
        self.manual_value.blockSignals(False)
        if self.scores is None:
            return
        th = Threshold(high, low)
        self.point = op = cal.operating_point(self.scores, self.labels, th, bootstrap=BOOTSTRAP)
        self.confusion.set_counts(op.tn, op.fp, op.fn, op.tp, op.review_good, op.review_defect)
        self.metric_labels["fpr"].setText(_pct(op.fpr, op.fpr_ci))
        self.metric_labels["fnr"].setText(_pct(op.fnr, op.fnr_ci))
        for key in ("precision", "recall", "f1", "balanced_accuracy"):
            self.metric_labels[key].setText(_num(getattr(op, key)))
        self.band_labels["pass"].setText(f"PASS {op.n_pass}")
        self.band_labels["review"].setText(f"REVIEW {op.n_review}")
        self.band_labels["review"].setVisible(low is not None)
        self.band_labels["fail"].setText(f"FAIL {op.n_fail}")
        if op.fpr is not None and op.fnr is not None:
            # on the ROC curve each line is a single-threshold point (REVIEW counts as caught/rejected there)
            hp = op if low is None else cal.operating_point(self.scores, self.labels, Threshold(high))
            lp = None if low is None else cal.operating_point(self.scores, self.labels, Threshold(low))
            self.roc_plot.set_point(hp.fpr, hp.recall, None if lp is None else (lp.fpr, lp.recall))
        self._gallery_timer.start()

    def thresholds(self) -> Threshold:
        high, low = self.histogram.thresholds()
        return Threshold(high, low)

    # ------------------------------------------------------------------ gallery
    def misjudged(self) -> tuple[list[int], list[int]]:
        """Indices of false passes (defects passed, lowest score first) and false
        rejects (good parts failed, highest first) at the current threshold."""
        if self.scores is None:
            return [], []
        verdicts = self.thresholds().verdicts(self.scores)
        fp = [i for i, v in enumerate(verdicts) if v is Verdict.PASS and self.labels[i] == 1]
        fr = [i for i, v in enumerate(verdicts) if v is Verdict.FAIL and self.labels[i] == 0]
        return sorted(fp, key=lambda i: self.scores[i]), sorted(fr, key=lambda i: -self.scores[i])

    def _refresh_gallery(self) -> None:
        fp, fr = self.misjudged()
        self.gallery_tabs.setTabText(0, f"False passes ({len(fp)})")
        self.gallery_tabs.setTabText(1, f"False rejects ({len(fr)})")
        missing: list[Path] = []
        for widget, idx in ((self.gallery_fp, fp), (self.gallery_fr, fr)):
            widget.clear()
            for i in idx[:GALLERY_LIMIT]:
                name = self.paths[i].name if self.paths else f"#{i}"
                item = QListWidgetItem(f"{self.scores[i]:.4g}\n{name}")
                item.setData(Qt.ItemDataRole.UserRole, i)
                if self.paths:
                    item.setToolTip(str(self.paths[i]))
                    pm = self._thumbs.get(str(self.paths[i]))
                    if pm is None:
                        missing.append(self.paths[i])
                        pm = self._placeholder()
                    item.setIcon(QIcon(pm))
                widget.addItem(item)
        more = max(0, len(fp) - GALLERY_LIMIT) + max(0, len(fr) - GALLERY_LIMIT)
        note = "" if self.paths else "No image paths stored with these scores: score a folder to see the images. "
        self.gallery_note.setText(note + (f"{more} more not shown." if more else ""))
        if missing and (self._thumb_job is None or not self._thumb_job.running):
            self._thumb_job = self.ctx.start_job(lambda _p, _c, m=list(dict.fromkeys(missing)): _read_thumbnails(m),
                                                 on_done=self._on_thumbnails, name="thumbnails")

    def _placeholder(self) -> QPixmap:
        pm = QPixmap(THUMB, THUMB)
        pm.fill(QColor("#ddd"))
        return pm

    def _on_thumbnails(self, thumbs: dict[str, np.ndarray]) -> None:
        for key, arr in thumbs.items():
            self._thumbs[key] = to_pixmap(arr)
        for widget in (self.gallery_fp, self.gallery_fr):
            for r in range(widget.count()):
                item = widget.item(r)
                pm = self._thumbs.get(item.toolTip())
                if pm is not None:
                    item.setIcon(QIcon(pm))

    def _open_item(self, item: QListWidgetItem) -> None:
        i = int(item.data(Qt.ItemDataRole.UserRole))
        if not self.paths or self.ctx.bundle_path is None:
            return
        path, bundle, cached = self.paths[i], self.ctx.bundle_path, self._inspector
        dlg = PredictionDialog(path, int(self.labels[i]), float(self.scores[i]), self.thresholds(), self)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self._dialogs.append(dlg)
        dlg.destroyed.connect(lambda *_: self._dialogs.remove(dlg) if dlg in self._dialogs else None)

        def job(_progress: Any, _cancel: Any) -> tuple[Any, Any]:
            from inspection_core.data.images import read_image
            from inspection_core.inference import Inspector

            inspector = cached if cached is not None else Inspector(bundle)
            return inspector, inspector.predict(read_image(path))

        def done(result: tuple[Any, Any]) -> None:
            self._inspector = result[0]
            if dlg in self._dialogs:
                dlg.set_prediction(result[1])

        self.ctx.start_job(job, on_done=done, on_error=lambda msg: dlg in self._dialogs and dlg.set_error(msg),
                           name="calibration-predict")
        dlg.show()

    # ------------------------------------------------------------------ saving
    def calibration_result(self) -> cal.CalibrationResult:
        """The core's CalibrationResult for the line(s) as they stand."""
        high, low = self.histogram.thresholds()
        if low is not None:
            return cal.calibrate(self.scores, self.labels, "manual", review_band=(low, high), bootstrap=BOOTSTRAP)
        strategy, target = self.strategy, self.target
        margin = self.margin_spin.value() if strategy == "quantile" else 0.0
        result = cal.calibrate(self.scores, self.labels, strategy, target, margin=margin, bootstrap=BOOTSTRAP)
        if result.threshold.high != high:  # data or targets changed since: keep what is shown
            result = cal.calibrate(self.scores, self.labels, "manual", high, bootstrap=BOOTSTRAP)
        return result

    def save_to_bundle(self) -> None:
        """Confirm (old vs new, note), then write the threshold(s) into the bundle on a worker."""
        bundle = self.ctx.bundle_path
        if bundle is None or self.scores is None:
            return
        try:
            result = self.calibration_result()
        except cal.CalibrationError as exc:
            self._say(str(exc), error=True)
            return
        old = (self._manifest() or {}).get("threshold")
        new = {**result.threshold.to_dict(), "strategy": result.strategy, "target": result.target}
        op = result.point
        summary = (f"On {len(self.scores)} calibration images: false-reject rate {_pct(op.fpr)}, escape rate "
                   f"{_pct(op.fnr)}; PASS {op.n_pass}, REVIEW {op.n_review}, FAIL {op.n_fail}.")
        dlg = SaveCalibrationDialog(bundle, old, new, summary, self)
        if dlg.exec() != QDialog.DialogCode.Accepted:
            self._say("Not saved.")
            return
        note, paths = dlg.note_text(), self.paths
        self.save_button.setEnabled(False)
        self._say("Saving…")

        def job(_p: Any, _c: Any) -> dict[str, Any]:
            return cal.apply_calibration(bundle, result, note, paths=paths)

        def done(_manifest: dict[str, Any]) -> None:
            self.save_button.setEnabled(True)
            self._say(f"Saved to {bundle.name}: FAIL above {result.threshold.high:.6g}"
                      + ("" if result.threshold.low is None else f", REVIEW above {result.threshold.low:.6g}"))
            self.ctx.notify_bundle_updated()

        def failed(msg: str) -> None:
            self.save_button.setEnabled(True)
            self._say(f"Could not save: {msg}", error=True)

        self._save_job = self.ctx.start_job(job, on_done=done, on_error=failed, name="calibration-save")
