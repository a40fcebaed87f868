"""Calibrate view (engineers): choose the threshold on real score distributions.

Scores a calibration folder on a worker (the images and the scoring are the
core's calibrate use case, shared with ``inspector calibrate``), or reuses the
scores stored in the bundle, then shows the good/defective histograms with draggable threshold
line(s), the ROC curve with the operating point, the confusion matrix and the
rates, and a gallery of the images misjudged at the current threshold. Every
number comes from :mod:`inspection_core.calibration`; saving goes through
``usecases.calibrate.save_calibration``.

It also shows the bundle's frame check (:mod:`inspection_core.frame_check`:
the limits, the training images' ranges they come from) with a box that
turns it on or off; saving that goes through
``usecases.calibrate.save_frame_check`` (or with the threshold, in the same
atomic rewrite).

A stored calibration's image paths are relative to the folder it scored; the
view looks for them in the folder typed, the folder the calibration recorded,
and, for the demo bundle, the demo's calibration set (generated again); when
none holds them it says where they were and offers "Locate folder…".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtWidgets import (
    QDialog, QFileDialog, QHBoxLayout, QLabel, QLineEdit, QMessageBox, QProgressBar, QPushButton, QScrollArea,
    QSplitter, QVBoxLayout, QWidget,
)

from app.context import AppContext
from app.manifest import read_manifest_light
from app.views.calibrate_dialogs import PredictionDialog, SaveCalibrationDialog
from app.views.calibrate_panels import (
    STRATEGY_TEXT, FrameCheckPanel, MisjudgedGallery, OperatingPointPanel, StrategyPanel, pct,
)
from app.widgets import theme
from app.widgets.plots import RocPlot, ScoreHistogram
from inspection_core import calibration as cal
from inspection_core.fidelity_rule import Fidelity, pick_path
from inspection_core.types import Threshold

BOOTSTRAP = 1000  # resamples for the FPR/FNR intervals (binomial draws: cheap enough for every drag)


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
        self._calibration_set: Any = None  # the last scored set (usecases.calibrate.CalibrationSet)
        # the same set on the fp32 and the fast path (usecases.calibrate.PathPair), where this machine has a
        # fast path: the fidelity rule picks the path a threshold belongs to, as inspector calibrate does
        self._pair: Any = None
        self._fidelity: Fidelity | None = None  # the rule's result for the line as a strategy placed it
        self._root: Path | None = None  # the calibration data folder the paths are relative to
        self._stored_paths: list[str] | None = None  # a stored calibration's paths, as recorded (relative)
        self._stored_root: str | None = None  # where that calibration found its images
        self._score_job: Any = None
        self._save_job: Any = None
        self._frame_job: Any = None
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
        self.bundle_label.setObjectName("viewHeader")
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
        self.gallery = MisjudgedGallery(self.ctx.start_job)
        self.gallery.imageClicked.connect(self.open_image)
        self.gallery.locateRequested.connect(self.locate_images)
        left.addWidget(self.gallery)
        left.setSizes([480, 300])
        split.addWidget(left)
        middle = QWidget()
        mlay = QVBoxLayout(middle)
        mlay.setContentsMargins(0, 0, 0, 0)
        self.roc_plot = RocPlot()
        self.roc_plot.setMinimumSize(260, 200)
        mlay.addWidget(self.roc_plot, 1)
        self.results = OperatingPointPanel()
        mlay.addWidget(self.results)
        split.addWidget(middle)
        self.strategies = StrategyPanel()
        self.strategies.strategyRequested.connect(self.apply_strategy)
        self.strategies.bandRequested.connect(self.apply_band_from_targets)
        self.strategies.twoThresholdToggled.connect(self._on_two_threshold)
        self.strategies.saveRequested.connect(self.save_to_bundle)
        self.frame_check = FrameCheckPanel()
        self.frame_check.saveRequested.connect(self.save_frame_check)
        right = QWidget()
        rlay = QVBoxLayout(right)
        rlay.setContentsMargins(0, 0, 0, 0)
        rlay.addWidget(self.strategies)
        rlay.addWidget(self.frame_check)
        scroll = FitWidthScrollArea()  # never narrower than its inputs: nothing cut on the right
        scroll.setWidget(right)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        split.addWidget(scroll)
        split.setCollapsible(2, False)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 0)
        split.setStretchFactor(2, 0)
        split.setSizes([700, 420, 340])
        root.addWidget(split, 1)
        # short names for what tests and the main window reach for
        self.confusion, self.metric_labels, self.band_labels = (
            self.results.confusion, self.results.metric_labels, self.results.band_labels)
        self.strategy_buttons, self.strategy_reason = self.strategies.buttons, self.strategies.reason
        self.two_check, self.band_button, self.save_button = (
            self.strategies.two_check, self.strategies.band_button, self.strategies.save_button)
        self.manual_value = self.strategies.manual_value
        for name in ("fpr_target", "fnr_target", "quantile_target", "margin_spin"):
            setattr(self, name, getattr(self.strategies, name))
        self.gallery_tabs, self.gallery_fp, self.gallery_fr = (
            self.gallery.tabs, self.gallery.false_passes, self.gallery.false_rejects)
        self._set_enabled(False)

    def _set_enabled(self, has_data: bool) -> None:
        for w in (*self.strategy_buttons.values(), self.two_check, self.band_button, self.histogram):
            w.setEnabled(has_data)
        self.save_button.setEnabled(has_data and self.ctx.bundle_path is not None)

    def _say(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        theme.set_tone(self.status, "error" if error else None)

    # ------------------------------------------------------------------ bundle
    def _manifest(self) -> dict[str, Any] | None:
        if self.ctx.bundle_path is None:
            return None
        try:  # the light reader: the GUI thread never waits for torch to import
            return read_manifest_light(self.ctx.bundle_path)
        except ValueError as exc:
            self._say(str(exc), error=True)
            return None

    def _on_bundle_updated(self, _path: object) -> None:
        self._inspector = None  # its threshold is stale now (the scored set stays valid: same model)
        self._show_bundle()

    def _on_bundle_changed(self, _path: object) -> None:
        if self._score_job is not None:  # scores of the previous model mean nothing for this one
            self._score_job.cancel()
        self._inspector = self._calibration_set = self._pair = self._fidelity = None
        self._root = None
        self._stored_paths = self._stored_root = None
        self.gallery.missing_note = ""
        self.scores = self.labels = self.paths = self.point = None
        self._show_bundle()
        m = self._manifest()
        if m and (m.get("calibration") or {}).get("scores"):
            self.load_stored_scores()
        else:
            self._clear()

    def _show_bundle(self, _path: object = None) -> None:
        m = self._manifest()
        self.frame_check.show_manifest(m)
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
        self.results.clear()
        self.gallery.clear()
        self._set_enabled(False)

    def load_stored_scores(self) -> None:
        """Redraw from the scores the bundle's last calibration stored (no rescoring)."""
        m = self._manifest()
        c = (m or {}).get("calibration") or {}
        if not c.get("scores"):
            self._say("This bundle holds no calibration scores yet: score a folder.", error=True)
            return
        rel = [str(p) for p in c["paths"]] if c.get("paths") else None
        th = m.get("threshold") or {}
        root = self._find_images(rel, c.get("root"))
        self.set_scores(c["scores"], c["labels"], self._resolved(rel, root),
                        threshold=Threshold.from_dict(th) if "high" in th else None)
        self._stored_paths, self._stored_root, self._root = rel, c.get("root"), root
        self.strategy, self.target = str(c.get("strategy") or "manual"), c.get("target")
        self._show_where(rel, root)
        if rel and root is None and self._is_demo(m):
            self._regenerate_demo_images()
        when = str(c.get("time") or "?")[:16].replace("T", " ")
        self._say(f"Showing the {len(c['scores'])} scores stored with the calibration of {when}"
                  + (f" — note: {c['note']}" if c.get("note") else ""))

    # ------------------------------------------------------------------ stored images
    @staticmethod
    def _resolved(rel: list[str] | None, root: Path | None) -> list[Path] | None:
        if rel is None:
            return None
        return [Path(p) if Path(p).is_absolute() or root is None else root / p for p in rel]

    @staticmethod
    def _holds(root: Path | None, rel: list[str]) -> bool:
        """Whether ``root`` holds the stored images (the first few are looked for)."""
        if root is None:
            return False
        probe = rel[:3] + rel[-2:]
        return all((Path(p) if Path(p).is_absolute() else root / p).is_file() for p in probe)

    def _find_images(self, rel: list[str] | None, recorded: str | None) -> Path | None:
        """The folder that holds a stored calibration's images now: the folder typed, the one
        the calibration recorded, the demo's calibration set; None when none does."""
        if not rel:
            return None
        typed = self.folder_edit.text().strip()
        candidates = [Path(typed).expanduser() if typed else None, Path(recorded) if recorded else None]
        if self._is_demo(self._manifest() or {}):
            from app.demo import demo_calibration_path

            candidates.append(demo_calibration_path(self.ctx.settings))
        return next((c for c in candidates if self._holds(c, rel)), None)

    @staticmethod
    def _is_demo(manifest: dict[str, Any]) -> bool:
        from app.demo import is_demo_bundle

        return is_demo_bundle(manifest)

    def _show_where(self, rel: list[str] | None, root: Path | None) -> None:
        """Tell the gallery whether the images were found, and where they were when not."""
        if not rel or root is not None:
            self.gallery.missing_note = ""
        else:
            where = f"'{self._stored_root}'" if self._stored_root else "a folder this bundle does not record"
            self.gallery.missing_note = (f"The calibration images were in {where}, which is not here: "
                                         "locate that folder to see them.")
        if self.scores is not None:
            self._refresh_gallery()

    def _regenerate_demo_images(self) -> None:
        """The demo bundle was calibrated on generated images: make them again (a second or two, on a worker)."""
        settings = self.ctx.settings
        self.gallery.missing_note = "Generating the demo's calibration images…"
        self._refresh_gallery()

        def job(_p: Any, _c: Any) -> Path:
            from app.demo import ensure_demo_calibration_data

            return ensure_demo_calibration_data(settings)

        self.ctx.start_job(job, on_done=self._use_images_in, on_error=lambda msg: self._show_where(self._stored_paths, None),
                           name="demo-calibration-images")

    def _use_images_in(self, folder: Any) -> bool:
        """Show the stored calibration's images from ``folder`` if it holds them."""
        rel = self._stored_paths
        if not rel or self.scores is None:
            return False
        folder = Path(folder)
        if not self._holds(folder, rel):
            self._show_where(rel, None)
            return False
        self._root = folder
        self.paths = self._resolved(rel, folder)
        self._show_where(rel, folder)
        return True

    def locate_images(self, folder: str | Path | None = None) -> bool:
        """Point the stored calibration at the folder its images are in now (asks when not given)."""
        if folder is None:
            start = self._stored_root or self.folder_edit.text() or str(Path.home())
            folder = QFileDialog.getExistingDirectory(self, "Folder of the calibration images", start)
            if not folder:
                return False
        if self._use_images_in(folder):
            self._say(f"Showing the calibration images from {folder}.")
            return True
        self._say(f"'{folder}' does not hold this calibration's images (e.g. {self._stored_paths[0]}).", error=True)
        return False

    # ------------------------------------------------------------------ scoring
    def _browse(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Calibration data folder", self.folder_edit.text())
        if d:
            self.folder_edit.setText(d)

    def start_scoring(self) -> None:
        """Score the calibration folder on a worker: the images the core's one
        rule allows for this bundle (``inspection_core.selection``), the same
        ones ``inspector calibrate`` uses."""
        bundle, folder = self.ctx.bundle_path, self.folder_edit.text().strip()
        if bundle is None:
            self._say("Choose a model bundle first.", error=True)
            return
        if not folder:
            self._say("Choose a calibration data folder first.", error=True)
            return
        cached = self._inspector

        def job(progress: Any, cancel: Any) -> Any:
            from inspection_core.usecases.calibrate import score_calibration_set, score_fast_path

            cset = score_calibration_set(cached if cached is not None else bundle, folder, batch_size=16,
                                         progress=progress, cancel=cancel)
            return cset, score_fast_path(cset, batch_size=16, progress=progress, cancel=cancel)

        self.progress.setRange(0, 0)  # busy until the folder is scanned and the first batch is scored
        self.progress.setVisible(True)
        self.cancel_button.setEnabled(True)
        self.score_button.setEnabled(False)
        self._say(f"Scoring the calibration images of '{folder}'…")
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

    def _on_scored(self, scored: Any) -> None:
        cset, pair = scored
        self._scoring_ended()
        self._stored_paths = self._stored_root = None
        self.gallery.missing_note = ""
        self.set_scores(cset.scores, cset.labels, cset.paths)
        self._calibration_set, self._pair = cset, pair
        self._inspector, self._root = cset.inspector, cset.root
        skipped = cset.scored.skipped or []
        msg = f"Scored {len(cset.scores)} images ({cset.description})."
        if skipped:
            msg += f" {len(skipped)} could not be read, e.g. {skipped[0][0]}: {skipped[0][1]}"
        if pair is not None and self.strategy != "manual":
            self.apply_strategy(self.strategy)  # the strategy's line, on the path the rule picks
        if self._fidelity is not None:
            msg += f" {self._path_text(self._fidelity)}"
        self._say(msg, error=bool(skipped))

    @staticmethod
    def _path_text(fid: Fidelity) -> str:
        used = fid.precision if fid.ok else "fp32"
        return (f"Scored on fp32 and {fid.precision}: {fid.changed} of {fid.n} verdicts differ, so the "
                f"threshold belongs to the {used} scoring path.")

    def _check_paths(self, rule: Any) -> tuple[Any, Fidelity] | None:
        """The fidelity rule for ``rule`` on the scored pair: (the set the
        threshold belongs to, the result), or None without a pair."""
        return None if self._pair is None else pick_path(self._pair, rule)

    def _show_set(self, cset: Any, threshold: Threshold) -> None:
        """Show ``cset``'s scores (the other path of the pair) with the line at ``threshold``."""
        pair, fid = self._pair, self._fidelity
        self.set_scores(cset.scores, cset.labels, cset.paths, threshold)
        self._calibration_set, self._pair, self._fidelity = cset, pair, fid

    def _on_score_error(self, message: str) -> None:
        self._scoring_ended()
        self._say(f"Scoring failed: {message}", error=True)

    def _on_score_cancelled(self) -> None:
        self._scoring_ended()
        self._say("Scoring cancelled; nothing changed.")

    def is_busy(self) -> bool:
        return self._score_job is not None and self._score_job.running

    def stop(self, wait_ms: int = 5000) -> bool:
        """Cancel scoring and thumbnail reading; True when they ended within ``wait_ms``."""
        jobs = [j for j in (self._score_job, self.gallery.stop()) if j is not None]
        for job in jobs:
            job.cancel()
        return all(j.wait(wait_ms) for j in jobs)

    def shutdown(self) -> None:
        """Called by the main window on close: stop scoring, close the image dialogs."""
        for dlg in list(self._dialogs):
            dlg.close()
        self.stop(5000)

    # ------------------------------------------------------------------ data
    def set_scores(self, scores: Any, labels: Any, paths: list[Any] | None = None,
                   threshold: Threshold | None = None) -> None:
        """Load a calibration set and draw everything; the line starts at
        ``threshold``, else the bundle's, else the first sensible strategy."""
        # these scores come from elsewhere until _on_scored (or _show_set) says otherwise
        self._calibration_set = self._pair = self._fidelity = None
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

    def apply_strategy(self, name: str) -> float | None:
        """Move the FAIL line to the strategy's threshold (the REVIEW line stays at or below it)."""
        if self.scores is None:
            return None
        target = self.strategies.target_for(name)
        margin = self.strategies.margin_for(name)
        try:
            checked = self._check_paths(lambda s, y: Threshold(cal.choose_threshold(s, y, name, target, margin=margin)))
            if checked is not None and checked[0] is not self._calibration_set:
                self._show_set(checked[0], self.thresholds())
            self._fidelity = None if checked is None else checked[1]
            phi = cal.choose_threshold(self.scores, self.labels, name, target, margin=margin)
        except cal.CalibrationError as exc:
            self._say(str(exc), error=True)
            return None
        _, low = self.histogram.thresholds()
        self._place(phi, None if low is None else min(low, phi), name, target)
        note = cal.plateau_note(self.scores, self.labels, name)
        self._say(f"{STRATEGY_TEXT[name][0]}{'' if target is None or name == 'manual' else f' {target:g}'}: "
                  f"threshold {phi:.6g}" + ("" if self._fidelity is None else f". {self._path_text(self._fidelity)}")
                  + (f" {note}" if note else ""))
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
        self.manual_value.blockSignals(True)
        self.manual_value.setValue(high)
        self.manual_value.blockSignals(False)
        if self.scores is None:
            return
        th = Threshold(high, low)
        self.point = op = cal.operating_point(self.scores, self.labels, th, bootstrap=BOOTSTRAP)
        self.results.show_point(op)
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
        return cal.misjudged(self.scores, self.labels, self.thresholds())

    def _refresh_gallery(self) -> None:
        fp, fr = self.misjudged()
        self.gallery.show_images(fp, fr, self.scores, self.paths)

    def open_image(self, i: int) -> None:
        """Side-by-side view of calibration image ``i``; its prediction runs on a worker."""
        if not self.paths or self.ctx.bundle_path is None:
            return
        if self.gallery.missing_note and not self.paths[i].is_file():
            self._say(self.gallery.missing_note, error=True)
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
        margin = self.strategies.margin_for(strategy)
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
        summary = (f"On {len(self.scores)} calibration images: false-reject rate {pct(op.fpr)}, escape rate "
                   f"{pct(op.fnr)}; PASS {op.n_pass}, REVIEW {op.n_review}, FAIL {op.n_fail}.")
        frame_check = self.frame_check.enabled() if self.frame_check.changed() else None
        if frame_check is not None:
            summary += f" The frame check is turned {'on' if frame_check else 'OFF'} with it."
        dlg = SaveCalibrationDialog(bundle, old, new, summary, self)
        if dlg.exec() != QDialog.DialogCode.Accepted:
            self._say("Not saved.")
            return
        note, cset, paths, root = dlg.note_text(), self._calibration_set, self.paths, self._root
        fid = self._fidelity if result.strategy != "manual" else None
        if result.strategy == "manual" and self._pair is not None:
            # a hand-placed line: the same value(s) on each path decide which path it belongs to
            th = result.threshold
            chosen, fid = self._check_paths(lambda s, y: th)  # type: ignore[misc]
            if chosen is not cset:
                band = None if th.low is None else (th.low, th.high)
                result = cal.calibrate(chosen.scores, chosen.labels, "manual", None if band else th.high,
                                       review_band=band, bootstrap=BOOTSTRAP)
                cset = chosen
        self.save_button.setEnabled(False)
        self._say("Saving…")

        def job(_p: Any, _c: Any) -> dict[str, Any]:
            from inspection_core.usecases.calibrate import inference_with, save_calibration

            # a scored set records its paths, the scoring path the threshold belongs to and the fidelity
            # check that chose it; scores read back from the bundle have none of them
            if cset is not None:
                return save_calibration(bundle, result, note=note, calibration_set=cset,
                                        inference=inference_with(cset, fid), frame_check_enabled=frame_check)
            return save_calibration(bundle, result, note=note, paths=paths, root=root,
                                    frame_check_enabled=frame_check)

        def done(_manifest: dict[str, Any]) -> None:
            self.save_button.setEnabled(True)
            self._say(f"Saved to {bundle.name}: FAIL above {result.threshold.high:.6g}"
                      + ("" if result.threshold.low is None else f", REVIEW above {result.threshold.low:.6g}"))
            self.ctx.notify_bundle_updated()

        def failed(msg: str) -> None:
            self.save_button.setEnabled(True)
            self._say(f"Could not save: {msg}", error=True)

        self._save_job = self.ctx.start_job(job, on_done=done, on_error=failed, name="calibration-save")

    def save_frame_check(self, enabled: bool) -> None:
        """Write the frame check's on/off into the bundle on a worker (turning it
        off is confirmed: blank frames may then PASS)."""
        bundle = self.ctx.bundle_path
        if bundle is None:
            return
        if not enabled:
            answer = QMessageBox.warning(
                self, "Turn the frame check off?",
                f"With the frame check off, <b>{bundle.name}</b> scores every frame as a part: a blank, "
                "covered or overexposed frame may PASS.<br><br>Turn it off?",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Cancel)
            if answer != QMessageBox.StandardButton.Yes:
                self._say("Frame check not changed.")
                return
        self.frame_check.save_button.setEnabled(False)
        self._say("Saving the frame check…")

        def job(_p: Any, _c: Any) -> dict[str, Any]:
            from inspection_core.usecases.calibrate import save_frame_check

            return save_frame_check(bundle, enabled)

        def done(_manifest: dict[str, Any]) -> None:
            self._frame_job = None
            self._say(f"Saved to {bundle.name}: frame check {'on' if enabled else 'off'}.")
            self.ctx.notify_bundle_updated()  # shows the saved state; a running line applies it

        def failed(msg: str) -> None:
            self._frame_job = None
            self.frame_check.save_button.setEnabled(self.frame_check.changed())
            self._say(f"Could not save the frame check: {msg}", error=True)

        self._frame_job = self.ctx.start_job(job, on_done=done, on_error=failed, name="frame-check-save")
