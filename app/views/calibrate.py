"""Calibrate view (engineers): choose the threshold on real score distributions.

The state and every decision are the core's calibration session
(:mod:`inspection_core.usecases.calibration_session`, shared with
``inspector calibrate``); this view binds widgets to it: the good/defective
histograms with draggable threshold line(s), the ROC curve with the operating
point, the confusion matrix and rates, the gallery of images misjudged at the
current threshold, the bundle's frame check with its on/off box. Scoring,
saving and thumbnails run in the view's task slots (:mod:`app.tasks`).

A stored calibration's images are looked for in the folder typed, the folder
the calibration recorded and, for the demo bundle, the demo's calibration set
(generated again); when none holds them the gallery says where they were and
offers "Locate folder…".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QDialog, QFileDialog, QLabel, QVBoxLayout, QWidget,
)

from app.context import AppContext
from app.tasks import ViewTasks
from app.views.calibrate_dialogs import MisjudgedGallery, PredictionDialog, SaveCalibrationDialog, bundle_header
from app.views.calibrate_panels import (
    STRATEGY_TEXT, three_columns, FrameCheckPanel, OperatingPointPanel, ScoringBar, StrategyPanel,
)
from app.widgets import theme
from app.widgets.plots import RocPlot, ScoreHistogram
from inspection_core import calibration as cal
from inspection_core.types import Threshold
from inspection_core.usecases.calibration_session import (
    BOOTSTRAP, CalibrationSession, SavePlan, Scored, SessionEvent,
)


class CalibrateView(QWidget):
    """See the module docstring. The state is a core
    :class:`~inspection_core.usecases.calibration_session.CalibrationSession`
    (``self.session``); the view binds widgets to it. ``set_scores`` feeds it
    directly (tests, stored scores)."""

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.session = CalibrationSession(bootstrap=BOOTSTRAP)
        self.session.on_change(self._on_session)
        self.tasks = ViewTasks(ctx.start_job, self)
        self._placing = False
        self._plan: SavePlan | None = None
        self._dialogs: list[QDialog] = []
        self._gallery_timer = QTimer(self, singleShot=True, interval=120, timeout=self._refresh_gallery)
        self._build()
        score = self.tasks.slot("score")
        score.progress.connect(self._on_score_progress)
        score.finished.connect(self._on_scored)
        score.failed.connect(lambda msg: self._say(f"Scoring failed: {msg}", error=True))
        score.cancelled.connect(lambda: self._say("Scoring cancelled; nothing changed."))
        score.busyChanged.connect(self._show_scoring)
        save = self.tasks.slot("save")
        save.finished.connect(lambda m: self.session.saved(m, self._plan))
        save.failed.connect(lambda msg: self._save_ended(f"Could not save: {msg}"))
        frame = self.tasks.slot("frame-check")
        frame.finished.connect(self._on_frame_check_saved)
        frame.failed.connect(self._on_frame_check_failed)
        demo = self.tasks.slot("demo-images")
        demo.finished.connect(self.locate_images)
        demo.failed.connect(lambda _msg: self._show_where())
        ctx.bundleChanged.connect(self._on_bundle_changed)
        ctx.bundleUpdated.connect(self._on_bundle_updated)
        self._on_bundle_changed(ctx.bundle_path)

    # the session's state, under the names tests and the main window reach for
    scores = property(lambda self: self.session.scores)
    labels = property(lambda self: self.session.labels)
    paths = property(lambda self: self.session.paths)
    point = property(lambda self: self.session.point)
    strategy = property(lambda self: self.session.strategy)
    target = property(lambda self: self.session.target)
    _fidelity = property(lambda self: self.session.fidelity)
    _calibration_set = property(lambda self: self.session.calibration_set)

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        root = QVBoxLayout(self)
        self.bundle_label = QLabel()
        self.bundle_label.setObjectName("viewHeader")
        root.addWidget(self.bundle_label)
        self.scoring_bar = bar = ScoringBar()
        bar.score_button.clicked.connect(self.start_scoring)
        bar.stored_button.clicked.connect(self.load_stored_scores)
        bar.cancel_button.clicked.connect(self.cancel_scoring)
        root.addWidget(bar)
        self.folder_edit, self.progress = bar.folder_edit, bar.progress
        self.score_button, self.stored_button, self.cancel_button = bar.score_button, bar.stored_button, bar.cancel_button
        self.status = QLabel("")
        self.status.setWordWrap(True)
        root.addWidget(self.status)

        self.histogram = ScoreHistogram()
        self.histogram.thresholdsChanged.connect(self._on_thresholds)
        self.gallery = MisjudgedGallery(self.tasks.slot("thumbnails"))
        self.gallery.imageClicked.connect(self.open_image)
        self.gallery.locateRequested.connect(self.locate_images)
        self.roc_plot = RocPlot()
        self.roc_plot.setMinimumSize(260, 200)
        self.results = OperatingPointPanel()
        self.strategies = StrategyPanel()
        self.strategies.strategyRequested.connect(self.apply_strategy)
        self.strategies.bandRequested.connect(self.apply_band_from_targets)
        self.strategies.twoThresholdToggled.connect(self._on_two_threshold)
        self.strategies.saveRequested.connect(self.save_to_bundle)
        self.frame_check = FrameCheckPanel()
        self.frame_check.saveRequested.connect(self.save_frame_check)
        root.addWidget(three_columns((self.histogram, self.gallery), (self.roc_plot, self.results),
                                     (self.strategies, self.frame_check)), 1)
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

    # ------------------------------------------------------------------ session events
    def _on_session(self, event: SessionEvent) -> None:
        if event.what == "bundle":
            self._show_bundle()
        elif event.what == "data":
            self._show_data()
            if event.message:
                self._say(event.message, error=bool(self.session.skipped))
        elif event.what == "threshold":
            self._show_threshold()
        elif event.what == "saved":
            self._save_ended(event.message, error=False)
            self.ctx.notify_bundle_updated()

    def _show_data(self) -> None:
        s = self.session
        if s.scores is None or s.labels is None:
            self._clear()
            return
        self.histogram.set_data(s.scores, s.labels)
        curve = s.roc()
        if curve.auroc is None:
            self.roc_plot.clear_curve(curve.reason.split(":")[0])
        else:
            self.roc_plot.set_curve(curve.fpr, curve.tpr, curve.auroc)
        self._set_enabled(True)
        reasons = s.unavailable()
        for name, b in self.strategy_buttons.items():
            b.setEnabled(name not in reasons)
            if name in reasons:
                b.setToolTip(reasons[name])
        self.strategy_reason.setText(next(iter(reasons.values()), ""))
        self._show_threshold()

    def _show_threshold(self) -> None:
        s, th = self.session, self.session.threshold
        if th is None or s.point is None:
            return
        self._placing = True
        try:
            self.two_check.blockSignals(True)
            self.two_check.setChecked(th.low is not None)
            self.two_check.blockSignals(False)
            self.histogram.low_line.setVisible(th.low is not None)
            self.histogram.set_thresholds(th.high, th.low)
            self.manual_value.blockSignals(True)
            self.manual_value.setValue(th.high)
            self.manual_value.blockSignals(False)
        finally:
            self._placing = False
        self.band_button.setEnabled(th.low is not None and s.can_band())
        self.results.show_point(s.point)
        points = s.roc_points()
        if points is not None:
            self.roc_plot.set_point(points[0][0], points[0][1], points[1])
        self._gallery_timer.start()

    # ------------------------------------------------------------------ bundle
    def _load_bundle(self, path: Path | None, reload: bool = False) -> None:
        try:  # the manifest only: the GUI thread never waits for torch to import
            if reload:
                self.session.reload_manifest()
            else:
                self.session.load(path)
        except ValueError as exc:
            self.session.manifest = None
            self._show_bundle()
            self._say(str(exc), error=True)

    def _on_bundle_updated(self, _path: object) -> None:
        self._load_bundle(self.ctx.bundle_path, reload=True)  # the scored set stays valid (same model)

    def _on_bundle_changed(self, _path: object) -> None:
        self.tasks.slot("score").cancel()  # scores of the previous model mean nothing for this one
        self.gallery.missing_note = ""
        self._load_bundle(self.ctx.bundle_path)
        if self.session.stored:
            self.load_stored_scores()
        else:
            self._clear()

    def _show_bundle(self) -> None:
        m = self.session.manifest
        self.frame_check.show_manifest(m)
        self.stored_button.setEnabled(bool(self.session.stored))
        self.score_button.setEnabled(self.ctx.bundle_path is not None and not self.tasks.running("score"))
        self.bundle_label.setText(bundle_header(m, self.ctx.bundle_path))

    def _clear(self) -> None:
        self.histogram.set_data(np.empty(0), np.empty(0))
        self.roc_plot.clear_curve("score a calibration folder")
        self.results.clear()
        self.gallery.clear()
        self._set_enabled(False)

    def load_stored_scores(self) -> None:
        """Redraw from the scores the bundle's last calibration stored (no rescoring)."""
        if not self.session.stored:
            self._say("This bundle holds no calibration scores yet: score a folder.", error=True)
            return
        self.session.load_stored(self._image_folders())
        self._show_where()
        if self.session.stored_paths and self.session.root is None and self._is_demo():
            self._regenerate_demo_images()

    # ------------------------------------------------------------------ stored images
    def _image_folders(self) -> list[Path | None]:
        """Where a stored calibration's images may be now: the folder typed, the one
        the calibration recorded, the demo's calibration set."""
        typed = self.folder_edit.text().strip()
        recorded = self.session.stored.get("root")
        folders = [Path(typed).expanduser() if typed else None, Path(recorded) if recorded else None]
        if self._is_demo():
            from app.demo import demo_calibration_path

            folders.append(demo_calibration_path(self.ctx.settings))
        return folders

    def _is_demo(self) -> bool:
        from app.demo import is_demo_bundle

        return is_demo_bundle(self.session.manifest or {})

    def _show_where(self) -> None:
        """Tell the gallery whether the images were found, and where they were when not."""
        self.gallery.missing_note = self.session.missing_images_note()
        if self.session.has_data:
            self._refresh_gallery()

    def _regenerate_demo_images(self) -> None:
        """The demo bundle was calibrated on generated images: make them again (a second or two, on a worker)."""
        settings = self.ctx.settings
        self.gallery.missing_note = "Generating the demo's calibration images…"
        self._refresh_gallery()

        def job(_p: Any, _c: Any) -> Path:
            from app.demo import ensure_demo_calibration_data

            return ensure_demo_calibration_data(settings)

        self.tasks.slot("demo-images").start(job)

    def locate_images(self, folder: str | Path | None = None) -> bool:
        """Point the stored calibration at the folder its images are in now (asks when not given)."""
        if folder is None:
            start = self.session.stored_root or self.folder_edit.text() or str(Path.home())
            folder = QFileDialog.getExistingDirectory(self, "Folder of the calibration images", start)
            if not folder:
                return False
        if self.session.use_images_in(folder):
            self._show_where()
            self._say(f"Showing the calibration images from {folder}.")
            return True
        self._show_where()
        example = (self.session.stored_paths or ["?"])[0]
        self._say(f"'{folder}' does not hold this calibration's images (e.g. {example}).", error=True)
        return False

    # ------------------------------------------------------------------ scoring
    def start_scoring(self) -> None:
        """Score the calibration folder on a worker: the images the core's one
        rule allows for this bundle (``inspection_core.selection``), the same
        ones ``inspector calibrate`` uses, on each scoring path this machine has."""
        bundle, folder = self.ctx.bundle_path, self.folder_edit.text().strip()
        if bundle is None:
            self._say("Choose a model bundle first.", error=True)
            return
        if not folder:
            self._say("Choose a calibration data folder first.", error=True)
            return
        self.progress.setRange(0, 0)  # busy until the folder is scanned and the first batch is scored
        self._say(f"Scoring the calibration images of '{folder}'…")
        self.tasks.slot("score").start(self.session.scoring_job(folder, batch_size=16))

    def cancel_scoring(self) -> None:
        self.tasks.slot("score").cancel()

    def _show_scoring(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.cancel_button.setEnabled(busy)
        self.score_button.setEnabled(not busy and self.ctx.bundle_path is not None)

    def _on_score_progress(self, ev: Any) -> None:
        steps = getattr(ev, "steps", 0)
        if steps:
            self.progress.setRange(0, steps)
            self.progress.setValue(getattr(ev, "step", 0))

    def _on_scored(self, scored: Scored) -> None:
        self.gallery.missing_note = ""
        self.session.use_scored(scored)

    def is_busy(self) -> bool:
        return self.tasks.running("score")

    def stop(self, wait_ms: int = 5000) -> bool:
        """Cancel scoring, saving and thumbnail reading; True when they ended within ``wait_ms``."""
        return self.tasks.stop(wait_ms)

    def shutdown(self) -> None:
        """Called by the main window on close: stop the tasks, close the image dialogs."""
        for dlg in list(self._dialogs):
            dlg.close()
        self.stop(5000)

    # ------------------------------------------------------------------ data
    def set_scores(self, scores: Any, labels: Any, paths: list[Any] | None = None,
                   threshold: Threshold | None = None) -> None:
        """Load a calibration set and draw everything; the line starts at
        ``threshold``, else the bundle's, else the first sensible strategy."""
        try:
            self.session.set_scores(scores, labels, paths, threshold)
        except cal.CalibrationError as exc:
            self._say(str(exc), error=True)
            self._clear()

    # ------------------------------------------------------------------ thresholds
    def _on_thresholds(self, high: float, low: float | None) -> None:
        if not self._placing and self.session.has_data:  # a drag: the line is now hand-placed
            self.session.set_threshold(high, low)

    def apply_strategy(self, name: str) -> float | None:
        """Move the FAIL line to the strategy's threshold (the REVIEW line stays at or below it)."""
        if not self.session.has_data:
            return None
        target = self.strategies.target_for(name)
        try:
            phi = self.session.set_strategy(name, target, self.strategies.margin_for(name))
        except cal.CalibrationError as exc:
            self._say(str(exc), error=True)
            return None
        note = cal.plateau_note(self.session.scores, self.session.labels, name)
        path = self.session.path_text()
        self._say(f"{STRATEGY_TEXT[name][0]}{'' if target is None or name == 'manual' else f' {target:g}'}: "
                  f"threshold {phi:.6g}" + (f". {path}" if path else "") + (f" {note}" if note else ""))
        return phi

    def apply_band_from_targets(self) -> None:
        if not self.session.has_data:
            return
        try:
            self.session.set_band_from_targets(self.fnr_target.value() / 100, self.fpr_target.value() / 100)
        except cal.CalibrationError as exc:
            self._say(str(exc), error=True)

    def _on_two_threshold(self, on: bool) -> None:
        if self.session.has_data:
            self.session.set_two_thresholds(on, self.fnr_target.value() / 100)

    def thresholds(self) -> Threshold:
        if self.session.threshold is not None:
            return self.session.threshold
        high, low = self.histogram.thresholds()
        return Threshold(high, low)

    # ------------------------------------------------------------------ gallery
    def misjudged(self) -> tuple[list[int], list[int]]:
        """Indices of false passes (defects passed, lowest score first) and false
        rejects (good parts failed, highest first) at the current threshold."""
        return self.session.misjudged()

    def _refresh_gallery(self) -> None:
        fp, fr = self.misjudged()
        self.gallery.show_images(fp, fr, self.session.scores, self.session.paths)

    def open_image(self, i: int) -> None:
        """Side-by-side view of calibration image ``i``; its prediction runs on a worker."""
        paths = self.session.paths
        if not paths or self.ctx.bundle_path is None:
            return
        if self.gallery.missing_note and not paths[i].is_file():
            self._say(self.gallery.missing_note, error=True)
            return
        path, bundle, cached = paths[i], self.ctx.bundle_path, self.session.inspector
        dlg = PredictionDialog(path, int(self.session.labels[i]), float(self.session.scores[i]),
                               self.thresholds(), self)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self._dialogs.append(dlg)
        name = f"predict-{id(dlg)}"

        def closed(*_: Any) -> None:
            self.tasks.forget(name)
            if dlg in self._dialogs:
                self._dialogs.remove(dlg)

        def keep(inspector: Any) -> None:
            if self.session.bundle_path == bundle:
                self.session.inspector = inspector

        dlg.destroyed.connect(closed)
        dlg.predict(self.tasks.slot(name), bundle, cached, keep)
        dlg.show()

    # ------------------------------------------------------------------ saving
    def save_to_bundle(self) -> None:
        """Confirm (old vs new, note), then write the threshold(s) into the bundle on a worker."""
        bundle = self.ctx.bundle_path
        if bundle is None or not self.session.has_data:
            return
        try:
            result = self.session.result()
        except cal.CalibrationError as exc:
            self._say(str(exc), error=True)
            return
        frame_check = self.frame_check.enabled() if self.frame_check.changed() else None
        dlg = SaveCalibrationDialog.for_result(bundle, self.session.saved_threshold or None, result, frame_check, self)
        if dlg.exec() != QDialog.DialogCode.Accepted:
            self._say("Not saved.")
            return
        self.session.set_frame_check(frame_check)
        try:
            self._plan, job = self.session.save_job(dlg.note_text())
        except cal.CalibrationError as exc:
            self._say(str(exc), error=True)
            return
        self.save_button.setEnabled(False)
        self._say("Saving…")
        self.tasks.slot("save").start(job)

    def _save_ended(self, message: str, error: bool = True) -> None:
        self._plan = None
        self.save_button.setEnabled(self.session.has_data and self.ctx.bundle_path is not None)
        if message:
            self._say(message, error=error)

    def save_frame_check(self, enabled: bool) -> None:
        """Write the frame check's on/off into the bundle on a worker (turning it
        off is confirmed: blank frames may then PASS)."""
        bundle = self.ctx.bundle_path
        if bundle is None:
            return
        if not enabled and not self.frame_check.confirm_off(bundle.name):
            self._say("Frame check not changed.")
            return
        self.frame_check.save_button.setEnabled(False)
        self._say("Saving the frame check…")

        def job(_p: Any, _c: Any) -> str:
            from inspection_core.usecases.calibrate import save_frame_check

            save_frame_check(bundle, enabled)
            return f"Saved to {bundle.name}: frame check {'on' if enabled else 'off'}."

        self.tasks.slot("frame-check").start(job)

    def _on_frame_check_saved(self, message: str) -> None:
        self._say(message)
        self.ctx.notify_bundle_updated()  # shows the saved state; a running line applies it

    def _on_frame_check_failed(self, msg: str) -> None:
        self.frame_check.save_button.setEnabled(self.frame_check.changed())
        self._say(f"Could not save the frame check: {msg}", error=True)
