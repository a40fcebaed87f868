"""Train view (engineers): train a detector on a data folder and save a bundle.

The run is the core's train use case (train, evaluate on the test split,
save), in a child process (see :mod:`app.views.train_process`) watched by a
worker thread; the settings are the form's (:mod:`app.views.train_form`:
a preset and what the engineer changes, resolved as ``inspector train``
resolves its flags). This view draws the progress the run reports (loss
curves, validation metric, sample reconstructions; a one-pass family's two
phases) and shows the result; the bundle lands in the user's model folder,
where the Inspect view finds it. Stop sets the job's cancel token; a stopped
training writes nothing.

Start, Stop, the progress and how long the run will take on this machine
stay in a bar under the scrolling form, on screen at any window height; a
failure is told in full in a banner across the top of the view
(:mod:`app.views.train_notes`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QApplication, QFileDialog, QFormLayout, QFrame, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit,
    QMessageBox, QProgressBar, QPushButton, QScrollArea, QSplitter, QVBoxLayout, QWidget,
)  # fmt: skip

from app.context import BUNDLE_SUFFIX, AppContext
from app.views.compare import open_compare
from app.views.train_form import TrainForm, model_catalogue
from app.views.train_notes import RunNotes, explain_failure
from app.views.train_process import train_in_process
from app.widgets import theme
from app.widgets.plots import ImageGrid, SeriesPlot
from app.widgets.wheel_guard import install_wheel_guard
from app.widgets.wrap_label import WrapLabel
from inspection_core.config import ModelConfig, TrainConfig
from inspection_core.data.dataset import DatasetIndex, DatasetLayoutError, scan_dataset
from inspection_core.progress import ProgressEvent

from app.views.train_text import LAYOUT_NAMES, METRIC_NAMES, SUMMARY_METRICS, _duration, safe_name


class TrainView(RunNotes, QWidget):
    """See the module docstring."""

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.index: DatasetIndex | None = None
        self.job: Any = None
        self.saved_path: Path | None = None
        self._t0 = 0.0
        self._steps = 1
        self._out: Path = Path()
        self._out_mtime: int | None = None
        self.job_elapsed = 0.0
        self._check_seq = 0
        self._check_timer = QTimer(self, singleShot=True, interval=400, timeout=self.check_data_in_background)
        self._init_notes()
        install_wheel_guard(QApplication.instance())  # scrolling the form never changes a value
        self._build()
        self._models_job = ctx.start_job(model_catalogue, on_done=self._on_models,
                                         on_error=lambda msg: self.form.model_note.setText(f"cannot list models: {msg}"),
                                         name="model-list")
        default = ctx.settings.data_dir or str(ctx.settings.demo_data_path())
        if Path(default).expanduser().is_dir():
            self.set_data_folder(Path(default).expanduser(), check=False)
        self.check_data_in_background()

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        root = QVBoxLayout(self)
        root.addWidget(self._build_alert())
        split = QSplitter(Qt.Orientation.Horizontal)
        root.addWidget(split, 1)
        split.addWidget(self._build_form())
        split.addWidget(self._build_live())
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 1)
        split.setSizes([420, 1000])  # room for the data folder's path and the form's inputs

    def _build_form(self) -> QWidget:
        panel = QWidget()
        lay = QVBoxLayout(panel)
        lay.setContentsMargins(0, 0, 6, 0)
        lay.addWidget(self._build_summary())  # the last run's result, at the top once there is one
        dbox = QGroupBox("Data")
        dl = QVBoxLayout(dbox)
        row = QHBoxLayout()
        self.data_edit = QLineEdit()
        self.data_edit.setPlaceholderText("folder: MVTec, BTAD or VisA layout, or good/ + defect/")
        self.data_edit.textChanged.connect(lambda _t: self._check_timer.start())
        self.data_edit.editingFinished.connect(self.check_data_in_background)
        row.addWidget(self.data_edit, 1)
        row.addWidget(QPushButton("Browse…", clicked=self._browse))
        dl.addLayout(row)
        dl.addWidget(QPushButton("Compare detectors…", clicked=lambda: open_compare(self)))  # app/views/compare.py
        self.data_status = WrapLabel("")
        self.data_status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        dl.addWidget(self.data_status)
        self.split_note = WrapLabel("")  # the classifier's labelled images (RunNotes._show_split_plan)
        self.split_note.setVisible(False)
        dl.addWidget(self.split_note)
        lay.addWidget(dbox)

        self.form = TrainForm()
        self.form.model_combo.currentTextChanged.connect(lambda _t: self._update_default_name())
        self.form.changed.connect(self._on_family)
        self.form.edited.connect(self._schedule_estimate)
        lay.addWidget(self.form)
        sbox = QGroupBox("Save")
        form = QFormLayout(sbox)
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("bundle name")
        form.addRow("Save as:", self.name_edit)
        self.out_label = WrapLabel("")
        theme.set_tone(self.out_label, "small")
        form.addRow("", self.out_label)
        self.name_edit.textChanged.connect(self._show_out)
        lay.addWidget(sbox)
        lay.addStretch(1)
        self.form_scroll = scroll = QScrollArea()
        scroll.setWidget(panel)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)

        outer = QWidget()
        outer.setMinimumWidth(360)
        ol = QVBoxLayout(outer)
        ol.setContentsMargins(0, 0, 0, 0)
        ol.addWidget(scroll, 1)
        ol.addWidget(self._build_run_bar())
        return outer

    def _build_run_bar(self) -> QWidget:
        """Start, Stop, the estimate and the progress: under the scrolling form, always on screen."""
        bar = QFrame()
        bar.setFrameShape(QFrame.Shape.StyledPanel)
        lay = QVBoxLayout(bar)
        lay.setContentsMargins(6, 6, 6, 6)
        self.estimate_label = WrapLabel("")
        theme.set_tone(self.estimate_label, "hint")
        lay.addWidget(self.estimate_label)
        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start training", clicked=self.start)
        self.start_button.setStyleSheet("font-weight: 600; padding: 6px;")
        self.stop_button = QPushButton("Stop", clicked=lambda: self.stop(0), enabled=False)
        buttons.addWidget(self.start_button, 1)
        buttons.addWidget(self.stop_button)
        lay.addLayout(buttons)
        self.progress = QProgressBar(minimum=0, maximum=1000, value=0)
        self.progress.setFormat("idle")
        self.progress.setTextVisible(True)
        lay.addWidget(self.progress)
        self.status = WrapLabel("")
        lay.addWidget(self.status)
        return bar

    def _build_summary(self) -> QWidget:
        self.summary_box = QGroupBox("Result")
        lay = QVBoxLayout(self.summary_box)
        self.summary_label = WrapLabel("")
        self.summary_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.summary_label)
        self.metrics_grid = QGridLayout()
        lay.addLayout(self.metrics_grid)
        self.use_button = QPushButton("Use this model", clicked=self.use_model)
        lay.addWidget(self.use_button)
        self.summary_box.setVisible(False)
        return self.summary_box

    def _build_live(self) -> QWidget:
        panel = QSplitter(Qt.Orientation.Vertical)
        top = QSplitter(Qt.Orientation.Horizontal)
        self.loss_plot = SeriesPlot("Training losses (log scale)", "epoch", log_y=True,
                                    empty_text="The training losses appear here, step by step, once training starts.")
        self.metric_plot = SeriesPlot("Validation", "epoch", symbols=True,
                                      empty_text="The validation measure appears here after each epoch.")
        top.addWidget(self.loss_plot)
        top.addWidget(self.metric_plot)
        top.setSizes([620, 380])
        panel.addWidget(top)
        gbox = QGroupBox("Samples of the last epoch (held-out images)")
        gl = QVBoxLayout(gbox)
        self.sample_grid = ImageGrid(cell=72, max_columns=8)
        self.sample_hint = QLabel("Reconstructions appear here after each epoch.")
        theme.set_tone(self.sample_hint, "hint")
        gl.addWidget(self.sample_hint)
        gl.addWidget(self.sample_grid)
        gl.addStretch(1)
        panel.addWidget(gbox)
        panel.setSizes([560, 260])
        return panel

    # ------------------------------------------------------------------ form
    def set_data_folder(self, folder: str | Path, check: bool = True) -> None:
        """Show ``folder`` in the Data field from its start (a long path is cut at its end, not its
        beginning; the whole path is the tooltip) and check it in the background."""
        self.data_edit.setText(str(folder))
        self.data_edit.setCursorPosition(0)
        self.data_edit.setToolTip(str(folder))
        if check:
            self.check_data_in_background()

    def _browse(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Training data folder", self.data_edit.text())
        if d:
            self.set_data_folder(d)

    def check_data(self) -> DatasetIndex | None:
        """Scan the folder now (on this thread) and show its counts or what is wrong with it."""
        self._check_timer.stop()
        self._check_seq += 1  # a background check still running is stale now
        text = self.data_edit.text().strip()
        index, error = None, None
        if text:
            try:
                index = scan_dataset(text, seed=self.form.seed_spin.value())
            except (DatasetLayoutError, OSError) as exc:
                error = str(exc)
        self._show_check(text, index, error)
        return self.index

    def check_data_in_background(self) -> None:
        """Scan the folder on a worker (typing, browsing: a network share must not
        freeze the window); the result is shown if the folder is still the one typed."""
        self._check_timer.stop()
        self._check_seq += 1
        seq, text, seed = self._check_seq, self.data_edit.text().strip(), self.form.seed_spin.value()
        if not text:
            self._show_check(text, None, None)
            return
        self.index = None
        self.data_status.setText("Checking the folder…")
        theme.set_tone(self.data_status, "hint")
        self._update_buttons()

        def job(_progress: Any, _cancel: Any) -> tuple[DatasetIndex | None, str | None]:
            try:
                return scan_dataset(text, seed=seed), None
            except (DatasetLayoutError, OSError) as exc:
                return None, str(exc)

        def done(result: tuple[DatasetIndex | None, str | None]) -> None:
            if seq == self._check_seq:
                self._show_check(text, *result)

        def failed(message: str) -> None:
            if seq == self._check_seq:
                self._show_check(text, None, message)

        self.ctx.start_job(job, on_done=done, on_error=failed, name="data-check")

    def _show_check(self, text: str, index: DatasetIndex | None, error: str | None) -> None:
        self.index = index
        if not text:
            self.data_status.setText("Choose a data folder.")
            theme.set_tone(self.data_status, "hint")
        elif index is None:
            self.data_status.setText(error or "cannot read this folder")
            theme.set_tone(self.data_status, "error")
        else:
            s = index.summary()
            types = ", ".join(f"{k} {v}" for k, v in s["defect_types"].items())
            layout = LAYOUT_NAMES.get(s["layout"], s["layout"])
            self.data_status.setText(
                f"✓ {layout}, {s['channels']}-channel images: <b>{s['n_train']}</b> for training; "
                f"test: <b>{s['n_test_good']}</b> good, <b>{s['n_test_defect']}</b> defective"
                + (f" ({types})" if types else "") + (f"; {s['n_masks']} masks" if s["n_masks"] else ""))
            theme.set_tone(self.data_status, "ok")
        self._show_split_plan()
        self._update_default_name()
        self._update_buttons()
        self._schedule_estimate()

    def _on_models(self, catalogue: dict[str, Any]) -> None:
        self.form.set_catalogue(catalogue)
        self._update_buttons()
        self._schedule_estimate()

    def _on_family(self) -> None:
        """What the plots can show depends on how the family trains."""
        self._show_split_plan()
        if self.form.one_pass:
            self.loss_plot.set_title("No training losses: this model is built in one pass over the images")
            self.sample_hint.setText("This model draws no reconstructions; its heat maps show in Inspect and Calibrate.")
        else:
            self.loss_plot.set_title("Training losses (log scale)")
            self.sample_hint.setText("Reconstructions appear here after each epoch.")
        self._update_default_name()

    def _update_default_name(self) -> None:
        if self.name_edit.isModified() and self.name_edit.text().strip():
            return
        data = Path(self.data_edit.text().strip()).name or "data"
        self.name_edit.setText(safe_name(f"{self.form.model_combo.currentText()}-{data}-{time.strftime('%Y%m%d-%H%M')}"))
        self.name_edit.setCursorPosition(0)  # its start, not its end, in a narrow field
        self._show_out()

    def output_path(self) -> Path:
        name = safe_name(self.name_edit.text()) or "model"
        return self.ctx.user_models_dir() / f"{name}{BUNDLE_SUFFIX}"

    def _show_out(self) -> None:
        self.out_label.setText(f"→ {self.output_path()}")
        self.name_edit.setToolTip(self.name_edit.text())

    def _update_buttons(self) -> None:
        busy = self.is_busy()
        self.start_button.setEnabled(not busy and self.index is not None and bool(self.form.models))
        self.stop_button.setEnabled(busy)

    def configs(self) -> tuple[ModelConfig, TrainConfig]:
        """The configs the run uses: the form's settings over its preset
        (``TrainSettings.configs``, as ``inspector train`` builds them)."""
        channels = self.index.channels if self.index is not None else 3
        return self.form.settings().configs(channels)

    # ------------------------------------------------------------------ run
    def is_busy(self) -> bool:
        return self.job is not None and self.job.running

    def start(self) -> None:
        """Start training on a worker with the settings shown."""
        if self.is_busy():
            return
        index = self.check_data()
        if index is None:
            return
        out = self.output_path()
        if out.exists():
            answer = QMessageBox.question(
                self, "Replace bundle?", f"{out.name} exists in {out.parent}.\nReplace it with the model this "
                "training makes? (Choose No and change “Save as” to keep it.)",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
            if answer != QMessageBox.StandardButton.Yes:
                self._say(f"Not started: {out.name} exists; change “Save as” or allow replacing it.")
                return
        try:
            from inspection_core.models import check_model_config

            mcfg, tcfg = self.configs()
            check_model_config(mcfg)  # a bad size or parameter is told now, not by the child process
            tcfg.validate()
        except ValueError as exc:
            self._say(str(exc), error=True)
            return
        self._out, self._out_mtime = out, (out.stat().st_mtime_ns if out.exists() else None)
        self._cancel_estimate()  # the run needs the cores more than its estimate
        self.hide_alert()
        self.loss_plot.clear_series()
        self.metric_plot.clear_series()
        self.sample_grid.set_rows([])
        self.sample_hint.setVisible(True)
        self.summary_box.setVisible(False)
        self.saved_path = None
        self.progress.setValue(0)
        self.progress.setFormat("starting the training process…")
        self._t0 = time.monotonic()
        self._say(f"Training {mcfg.model} on {len(index.train)} images…")
        self.job = self.ctx.start_job(lambda p, c: train_in_process(index, mcfg, tcfg, out, p, c),
                                      on_progress=self._on_progress, on_done=self._on_done,
                                      on_error=self._on_error, on_cancelled=self._on_cancelled, name="training")
        self._update_buttons()

    def stop(self, wait_ms: int = 0) -> bool:
        """Ask the training to stop; with ``wait_ms`` wait that long for the
        worker to end. True when no training is running any more."""
        if self.job is None:
            return True
        if self.job.running:
            self.job.cancel()
            self.progress.setFormat("stopping…")
            self.stop_button.setEnabled(False)
        return self.job.wait(wait_ms) if wait_ms else not self.job.running

    def shutdown(self) -> None:
        """Called by the main window on close: stop a training and wait for it to end."""
        self._cancel_estimate()
        self.stop(15000)

    def _say(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        theme.set_tone(self.status, "error" if error else None)

    def _on_progress(self, ev: ProgressEvent) -> None:
        kind = ev.kind
        if kind in ("step", "epoch") and ev.steps:
            self._steps = ev.steps
            self.progress.setValue(int(1000 * ev.fraction))
            if kind == "step" and self.form.one_pass:  # two phases: features, then the model
                self.progress.setFormat(f"phase {ev.epoch}/{ev.epochs}: {ev.message or 'working'} · "
                                        f"ETA {_duration(ev.eta_s)}")
            else:
                self.progress.setFormat(f"epoch {ev.epoch}/{ev.epochs} · step {ev.step}/{ev.steps} · "
                                        f"ETA {_duration(ev.eta_s)}")
        if kind == "step" and ev.losses:
            self.loss_plot.add_points(ev.epoch - 1 + ev.step / max(1, ev.steps), ev.losses)
        elif kind == "epoch":
            key = next((k for k in METRIC_NAMES if k in ev.metrics), None)  # the one that picks the best epoch
            if key is not None:
                self.metric_plot.set_title(f"Validation: {METRIC_NAMES[key]}")
                self.metric_plot.add_points(ev.epoch, {METRIC_NAMES[key]: ev.metrics[key]})
            shown = ", ".join(f"{METRIC_NAMES.get(k, k)} {v:.4g}" for k, v in ev.metrics.items())
            head = "Fitted; validation" if self.form.one_pass else f"Epoch {ev.epoch}/{ev.epochs} done"
            self._say(head + (f": {shown}" if shown else ""))
        elif kind == "sample" and isinstance(ev.payload, dict):
            p = ev.payload
            rows = [("input", p.get("inputs")), ("reconstruction", p.get("reconstructions")),
                    ("generated", p.get("generated"))]
            self.sample_grid.set_rows([(c, a) for c, a in rows if a is not None], title=f"epoch {ev.epoch}")
            self.sample_hint.setVisible(False)
        elif kind == "message" and ev.message:
            self._say(ev.message[:1].upper() + ev.message[1:])
            if ev.steps:
                self.progress.setFormat(f"evaluating {ev.step}/{ev.steps}")

    def _finished(self) -> None:
        self.job_elapsed = time.monotonic() - self._t0
        self._update_buttons()

    def _on_done(self, result: tuple[Path, dict[str, Any]]) -> None:
        self._finished()
        path, manifest = result
        self.saved_path = Path(path)
        self.progress.setValue(1000)
        self.progress.setFormat(f"done in {_duration(self.job_elapsed)}")
        self._say(f"Saved {self.saved_path.name}.")
        self._show_summary(manifest)
        self.form_scroll.verticalScrollBar().setValue(0)  # the result is at the top of the form
        self._schedule_estimate()

    def _on_error(self, message: str) -> None:
        self._finished()
        self.progress.setFormat("failed")
        text, weights = explain_failure(message)
        self.show_alert(text, weights)
        theme.set_tone(self.alert_label, "error")
        self._say("Training failed: see the message at the top of this view.", error=True)
        self._schedule_estimate()

    def _on_cancelled(self) -> None:
        self._finished()
        self.progress.setFormat("stopped")
        out = self._out
        written = out.exists() and out.stat().st_mtime_ns != self._out_mtime
        self._say(f"Training stopped; {out.name} was already saved before the stop." if written
                  else "Training stopped; no bundle was written.")
        self._schedule_estimate()

    def _show_summary(self, manifest: dict[str, Any]) -> None:
        tr = manifest.get("training", {})
        th = manifest.get("threshold", {})
        if tr.get("fit_mode") == "one_pass":
            from inspection_core.usecases.training import describe_fit

            fit = describe_fit(tr.get("fit"))
            run = f"built in one pass in {_duration(tr.get('duration_s'))} on {tr.get('device', '?')}{fit}"
        else:
            run = (f"{tr.get('epochs_run', '?')} epochs ({tr.get('updates', '?')} updates) in "
                   f"{_duration(tr.get('duration_s'))} on {tr.get('device', '?')}, best epoch {tr.get('best_epoch', '?')}")
        self.summary_label.setText(
            f"<b>{self.saved_path.name}</b><br>in {self.saved_path.parent}<br>{run}"
            + (f"<br>note: {tr['stopped_reason']}" if tr.get("stopped_reason") else "")
            + f"<br>provisional threshold {th.get('high', float('nan')):.4g} "
              f"({100 * float(th.get('target') or 0):.0f} % quantile of good scores) — calibrate it next.")
        while self.metrics_grid.count():
            w = self.metrics_grid.takeAt(0).widget()
            if w is not None:
                w.deleteLater()
        metrics = manifest.get("metrics") or {}
        r = 0
        for key, text in SUMMARY_METRICS:
            v = metrics.get(key)
            if v is None:
                continue
            self.metrics_grid.addWidget(QLabel(text + ":"), r, 0)
            val = QLabel(f"{100 * v:.1f} %" if key in ("fpr", "fnr") else f"{v:.3f}")
            theme.set_tone(val, "strong")
            self.metrics_grid.addWidget(val, r, 1)
            r += 1
        if r == 0:
            self.metrics_grid.addWidget(QLabel("No labelled test split: no evaluation metrics."), 0, 0, 1, 2)
        self.summary_box.setVisible(True)

    def use_model(self) -> None:
        if self.saved_path is not None:
            self.ctx.set_bundle(self.saved_path)
            self._say(f"{self.saved_path.name} is now the model in use.")
