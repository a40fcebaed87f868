"""Compare page (engineers), opened from the Train view: which detector suits this part?

The engineer picks a data folder and the families to compare; the run is the
core's compare use case (:mod:`inspection_core.usecases.compare`: each family
trained in turn with its preset, saved, then measured on the same held-out
images), in a child process (:mod:`app.views.compare_process`) watched by a
worker thread, so the window stays responsive. One progress bar covers every
family; Cancel stops the run (bundles already finished stay, the one in
training writes nothing). Each family's ROC and PR curves, overlaid, and its
row of the table appear as soon as it is measured; the recommendation and
the report's path when all are done.

A family that needs labelled defective images (the classifier) can be
checked only when the folder has some.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QHeaderView, QLabel, QLineEdit,
    QProgressBar, QPushButton, QSplitter, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget,
)  # fmt: skip

from app.context import AppContext
from app.views.compare_process import compare_in_process
from app.widgets import theme
from app.widgets.plots import SERIES_COLORS, style_plot
from app.widgets.wrap_label import WrapLabel
from inspection_core.comparison import COLUMNS, DEFAULT_ESCAPE_TARGET, Comparison, FamilyResult, table_rows
from inspection_core.data.dataset import DatasetIndex, DatasetLayoutError, scan_dataset
from inspection_core.progress import ProgressEvent
from inspection_core.recipes import DEFAULT_PRESET, PRESETS
from inspection_core.usecases.compare import DEFAULT_FAMILIES, default_settings, family_choices, has_labelled_defects

#: the image sizes offered (the first: each family's preset)
SIZES = ("preset's", "32", "64", "128", "224", "256")


class CompareView(QWidget):
    """See the module docstring."""

    def __init__(self, ctx: AppContext, data: str | Path | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.index: DatasetIndex | None = None
        self.job: Any = None
        self.comparison: Comparison | None = None
        self.report: Path | None = None
        self.checks: dict[str, QCheckBox] = {}
        self.supervised: set[str] = set()
        self._results: list[FamilyResult] = []
        self._seq = 0
        self._t0 = 0.0
        self._timer = QTimer(self, singleShot=True, interval=400, timeout=self.check_data)
        self.setWindowTitle("Compare detectors")
        self._build()
        ctx.start_job(lambda _p, _c: family_choices(), on_done=self._on_families,
                      on_error=lambda msg: self._say(f"cannot list the families: {msg}", error=True),
                      name="compare-families")
        if data:
            self.data_edit.setText(str(data))
            self.check_data()

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        root = QHBoxLayout(self)
        split = QSplitter(Qt.Orientation.Horizontal)
        root.addWidget(split)
        left = QWidget()
        left.setMinimumWidth(340)
        lay = QVBoxLayout(left)
        dbox = QGroupBox("Data")
        dl = QVBoxLayout(dbox)
        row = QHBoxLayout()
        self.data_edit = QLineEdit()
        self.data_edit.setPlaceholderText("folder: MVTec layout (train/good, test/<type>) or good/ + defect/")
        self.data_edit.textChanged.connect(lambda _t: self._timer.start())
        row.addWidget(self.data_edit, 1)
        row.addWidget(QPushButton("Browse…", clicked=self._browse))
        dl.addLayout(row)
        self.data_status = WrapLabel("Choose a data folder.")
        dl.addWidget(self.data_status)
        lay.addWidget(dbox)
        self.family_box = QGroupBox("Families")
        self.family_layout = QVBoxLayout(self.family_box)
        self.family_hint = WrapLabel("Listing the families…")
        theme.set_tone(self.family_hint, "hint")
        self.family_layout.addWidget(self.family_hint)
        lay.addWidget(self.family_box)
        sbox = QGroupBox("Settings")
        form = QFormLayout(sbox)
        self.preset_combo = QComboBox()
        self.preset_combo.addItems(list(PRESETS))
        self.preset_combo.setCurrentText(DEFAULT_PRESET)
        form.addRow("Preset:", self.preset_combo)
        self.size_combo = QComboBox()
        self.size_combo.addItems(list(SIZES))
        form.addRow("Image size:", self.size_combo)
        self.out_label = WrapLabel("")
        theme.set_tone(self.out_label, "small")
        form.addRow("Saved in:", self.out_label)
        lay.addWidget(sbox)
        buttons = QHBoxLayout()
        self.start_button = QPushButton("Compare", clicked=self.start, enabled=False)
        self.start_button.setStyleSheet("font-weight: 600; padding: 6px;")
        self.cancel_button = QPushButton("Cancel", clicked=lambda: self.cancel(0), enabled=False)
        buttons.addWidget(self.start_button, 1)
        buttons.addWidget(self.cancel_button)
        lay.addLayout(buttons)
        self.progress = QProgressBar(minimum=0, maximum=1000, value=0)
        self.progress.setFormat("idle")
        self.progress.setTextVisible(True)
        lay.addWidget(self.progress)
        self.status = WrapLabel("")
        lay.addWidget(self.status)
        lay.addStretch(1)
        split.addWidget(left)
        split.addWidget(self._build_results())
        split.setSizes([360, 1000])

    def _build_results(self) -> QWidget:
        panel = QWidget()
        lay = QVBoxLayout(panel)
        self.recommendation = WrapLabel("The recommendation appears here when every family is measured.")
        theme.set_tone(self.recommendation, "hint")
        lay.addWidget(self.recommendation)
        plots = QHBoxLayout()
        self.roc_plot = self._plot("ROC on the held-out images", "false-reject rate", "defects caught")
        self.pr_plot = self._plot("Precision-recall on the held-out images", "recall", "precision")
        plots.addWidget(self.roc_plot)
        plots.addWidget(self.pr_plot)
        lay.addLayout(plots, 3)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels([h for _, h in COLUMNS])
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table_note = WrapLabel(_table_note(DEFAULT_ESCAPE_TARGET))
        theme.set_tone(self.table_note, "small")
        lay.addWidget(self.table_note)
        lay.addWidget(self.table, 2)
        self.report_label = QLabel("")
        self.report_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.report_label)
        return panel

    @staticmethod
    def _plot(title: str, x: str, y: str) -> pg.PlotWidget:
        plot = pg.PlotWidget()
        style_plot(plot, title, x, y)
        item = plot.getPlotItem()
        item.setMouseEnabled(x=False, y=False)
        item.hideButtons()
        item.vb.setRange(xRange=(0, 1), yRange=(0, 1), padding=0.04)
        item.addLegend(offset=(-10, 10) if "ROC" in title else (10, -10))
        return plot

    # ------------------------------------------------------------------ form
    def _on_families(self, choices: list[tuple[str, bool]]) -> None:
        self.family_hint.setText("Each family trains with its preset; the classifier needs labelled defects.")
        for name, supervised in choices:
            box = QCheckBox(name + (" (needs labelled defective images)" if supervised else ""))
            box.setChecked(name in DEFAULT_FAMILIES)
            box.toggled.connect(lambda _on: self._update_buttons())
            self.family_layout.addWidget(box)
            self.checks[name] = box
            if supervised:
                self.supervised.add(name)
        self._update_families()

    def _browse(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Data folder to compare on", self.data_edit.text())
        if d:
            self.data_edit.setText(d)
            self.check_data()

    def check_data(self) -> None:
        """Scan the folder on a worker; its counts (and whether it has labelled defects) when it answers."""
        self._timer.stop()
        self._seq += 1
        seq, text = self._seq, self.data_edit.text().strip()
        self.index = None
        self._update_buttons()
        if not text:
            self.data_status.setText("Choose a data folder.")
            return
        self.data_status.setText("Checking the folder…")

        def job(_p: Any, _c: Any) -> tuple[DatasetIndex | None, str | None]:
            try:
                return scan_dataset(text), None
            except (DatasetLayoutError, OSError) as exc:
                return None, str(exc)

        def done(result: tuple[DatasetIndex | None, str | None]) -> None:
            if seq == self._seq:
                self._show_data(text, *result)

        self.ctx.start_job(job, on_done=done, on_error=lambda msg: done((None, msg)), name="compare-data")

    def _show_data(self, text: str, index: DatasetIndex | None, error: str | None) -> None:
        self.index = index
        if index is None:
            self.data_status.setText(error or "cannot read this folder")
            theme.set_tone(self.data_status, "error")
        else:
            s = index.summary()
            self.data_status.setText(f"{s['n_train']} training images; {s['n_test_good']} good and "
                                     f"{s['n_test_defect']} defective test images"
                                     + (f", {s['n_masks']} masks" if s["n_masks"] else ""))
            theme.set_tone(self.data_status, None)
            self.out_label.setText(str(self.out_folder()))
        self._update_families()
        self._update_buttons()

    def _update_families(self) -> None:
        labelled = self.index is not None and has_labelled_defects(self.index)
        for name in self.supervised:
            box = self.checks[name]
            box.setEnabled(labelled)
            if not labelled:
                box.setChecked(False)
            box.setToolTip("" if labelled else "this folder has no labelled defective images to train on")

    def chosen(self) -> list[str]:
        return [n for n, box in self.checks.items() if box.isChecked() and box.isEnabled()]

    def out_folder(self) -> Path:
        """A new folder in the user's model folder for this run's bundles and report."""
        from app.views.train_text import safe_name

        name = safe_name(Path(self.data_edit.text().strip()).name or "data")
        return Path(self.ctx.settings.models_path()) / f"compare-{name}-{time.strftime('%Y%m%d-%H%M%S')}"

    def _update_buttons(self) -> None:
        running = self.job is not None and self.job.running
        self.start_button.setEnabled(not running and self.index is not None and bool(self.chosen()))
        self.cancel_button.setEnabled(running)

    def _say(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        theme.set_tone(self.status, "error" if error else None)

    # ------------------------------------------------------------------ run
    def start(self) -> None:
        if self.index is None or (self.job is not None and self.job.running):
            return
        families = self.chosen()
        size = self.size_combo.currentText()
        settings = default_settings(families, preset=self.preset_combo.currentText(),
                                    image_size=None if not size.isdigit() else int(size))
        data, out = Path(self.index.root), self.out_folder()
        self.out_label.setText(str(out))
        self.comparison, self.report, self._results = None, None, []
        for plot in (self.roc_plot, self.pr_plot):
            plot.getPlotItem().legend.clear()
            plot.clear()
        self.roc_plot.plot([0, 1], [0, 1], pen=pg.mkPen(theme.AXIS, style=Qt.PenStyle.DashLine))
        self.table.setRowCount(0)
        self.report_label.setText("")
        self.recommendation.setText("The recommendation appears here when every family is measured.")
        theme.set_tone(self.recommendation, "hint")
        self.progress.setValue(0)
        self.progress.setFormat("starting…")
        self._t0 = time.monotonic()
        self._say(f"Comparing {', '.join(families)}…")
        self.job = self.ctx.start_job(lambda p, c: compare_in_process(data, out, settings, p, c),
                                      on_progress=self._on_progress, on_done=self._on_done,
                                      on_error=self._on_error, on_cancelled=self._on_cancelled, name="compare")
        self._update_buttons()

    def cancel(self, wait_ms: int = 0) -> bool:
        """Ask the comparison to stop; with ``wait_ms`` wait that long. True when none runs any more."""
        if self.job is None:
            return True
        if self.job.running:
            self.job.cancel()
            self.progress.setFormat("stopping…")
            self.cancel_button.setEnabled(False)
        return self.job.wait(wait_ms) if wait_ms else not self.job.running

    def shutdown(self) -> None:
        self.cancel(15000)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        self.cancel(0)
        super().closeEvent(event)

    def _on_progress(self, ev: ProgressEvent) -> None:
        if ev.kind == "step" and ev.epochs:
            self.progress.setValue(int(1000 * ev.fraction))
            self.progress.setFormat(f"{ev.epoch}/{ev.epochs} · {ev.message or 'working'}")
        elif ev.kind == "message" and isinstance(ev.payload, dict) and isinstance(ev.payload.get("result"), FamilyResult):
            self._add_result(ev.payload["result"])
        if ev.message:
            self._say(ev.message)

    def _add_result(self, r: FamilyResult) -> None:
        self._results.append(r)
        colour = SERIES_COLORS[(len(self._results) - 1) % len(SERIES_COLORS)]
        pen = pg.mkPen(colour, width=2)
        if r.image_auroc is not None:
            self.roc_plot.plot(r.roc_fpr, r.roc_tpr, pen=pen, name=f"{r.family} (AUROC {r.image_auroc:.3f})")
        if r.image_ap is not None:
            self.pr_plot.plot(r.pr_recall, r.pr_precision, pen=pen, name=f"{r.family} (AP {r.image_ap:.3f})")
        partial = Comparison("", {}, 0.0, list(self._results), {}, _no_recommendation())
        self._fill_table(partial)

    def _fill_table(self, comparison: Comparison) -> None:
        rows = table_rows(comparison)
        self.table.setRowCount(len(rows))
        for i, row in enumerate(rows):
            for j, (key, _head) in enumerate(COLUMNS):
                item = QTableWidgetItem(row[key])
                if key not in ("family", "trained_on"):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if row["family"] == comparison.recommendation.family:
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                self.table.setItem(i, j, item)

    def _on_done(self, result: tuple[Comparison, dict[str, Path]]) -> None:
        comparison, paths = result
        self.comparison, self.report = comparison, Path(paths["html"])
        self._fill_table(comparison)
        self.table_note.setText(_table_note(comparison.escape_target))
        rec = comparison.recommendation
        self.recommendation.setText(f"<b>Recommended: {rec.family}</b> — {rec.reason}" if rec.family
                                    else f"No recommendation: {rec.reason}")
        theme.set_tone(self.recommendation, "strong" if rec.family else "error")
        self.report_label.setText(f"Report: {self.report}")
        self.progress.setValue(1000)
        self.progress.setFormat("done")
        self._say(f"Compared {len(comparison.results)} families in {time.monotonic() - self._t0:.0f} s; "
                  f"bundles in {Path(paths['json']).parent}")
        self.job = None
        self._update_buttons()

    def _on_error(self, message: str) -> None:
        self.progress.setFormat("failed")
        self._say(message, error=True)
        self.job = None
        self._update_buttons()

    def _on_cancelled(self) -> None:
        self.progress.setFormat("cancelled")
        done = ", ".join(r.family for r in self._results)
        self._say("Cancelled" + (f"; finished before the stop: {done} (bundles kept)" if done else "; nothing kept"))
        self.job = None
        self._update_buttons()


def _table_note(target: float) -> str:
    return (f"False rejects and escapes: at the threshold that lets at most {target:.0%} of the held-out defects "
            "through (chosen on the held-out scores, the same rule for every family). Training: wall time. "
            "ms / image: one image at a time on this machine.")


def _no_recommendation() -> Any:
    from inspection_core.comparison import Recommendation

    return Recommendation(None, "")


def open_compare(parent: Any) -> CompareView:
    """The Compare page as a window of its own over the Train view ``parent``
    (its data folder filled in); one window, raised again when it is open."""
    view = getattr(parent, "_compare_view", None)
    if view is None:
        view = CompareView(parent.ctx, parent.data_edit.text().strip() or None, parent)
        view.setWindowFlag(Qt.WindowType.Window, True)
        view.resize(1300, 800)
        parent._compare_view = view
    view.show()
    view.raise_()
    return view


__all__ = ["CompareView", "open_compare"]
