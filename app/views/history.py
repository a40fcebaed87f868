"""History: a table over the inspection database that stays fast at 100,000+ rows.

``HistoryTableModel`` knows only the row count of the current filter and
fetches pages of ``PAGE_SIZE`` rows on demand (windowed queries), keeping a few
pages in a small cache; the view never loads the whole table.

A frame that carried no part is an INVALID row whose reason ("blank frame")
the live line wrote in the row's note: the verdict cell shows both, and the
verdict filter offers INVALID. INVALID rows are no parts: they stay out of
the yield.

Scores and thresholds show one number of decimals in every row (enough for
three significant digits of the smallest threshold in view); each column is
as wide as its title and its usual values, so the whole table fits a
1366 px screen's window and no title is cut.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

from PySide6.QtCore import QDateTime, QModelIndex, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import (
    QAbstractItemView, QCheckBox, QComboBox, QDateTimeEdit, QDialog, QFileDialog, QHBoxLayout, QHeaderView, QInputDialog,
    QLabel, QMessageBox, QPushButton, QTableView, QVBoxLayout, QWidget,
)  # fmt: skip

from app.context import AppContext
from inspection_core.history import HistoryError
from app.widgets.image_pane import ImagePane

from app.views.history_model import (  # noqa: F401 - part of this view's API
    COLUMN_SAMPLES, COLUMNS, MAX_PAGES, PAGE_SIZE, VERDICT_CHOICES, HistoryTableModel, score_decimals, verdict_cell,
)


class ImageDialog(QDialog):
    """Shows one stored image with its record."""

    def __init__(self, image: Any, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.pane = ImagePane("")
        self.pane.set_image(image)
        lay = QVBoxLayout(self)
        lay.addWidget(self.pane)
        self.resize(520, 540)


class HistoryView(QWidget):
    """Filters, the table, CSV export, opening a kept image, overriding a verdict."""

    imageOpened = Signal(object)  # Path of the image shown

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.model: HistoryTableModel | None = None
        self._build()
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setInterval(2000)
        self._refresh_timer.timeout.connect(self._auto_refresh)
        self._refresh_timer.start()

    def _build(self) -> None:
        root = QVBoxLayout(self)
        root.setContentsMargins(12, 10, 12, 10)
        bar = QHBoxLayout()
        self.verdict_combo = QComboBox()
        self.verdict_combo.addItem("All verdicts", None)
        for label, v in VERDICT_CHOICES:
            self.verdict_combo.addItem(label, v)
        self.period_combo = QComboBox()
        for label, hours in (("All time", None), ("Last hour", 1), ("Last 8 hours", 8), ("Last 24 hours", 24),
                             ("Last 7 days", 24 * 7), ("Custom range", -1)):
            self.period_combo.addItem(label, hours)
        self.since_edit = QDateTimeEdit(QDateTime.currentDateTime().addDays(-1))
        self.until_edit = QDateTimeEdit(QDateTime.currentDateTime().addSecs(3600))
        for e in (self.since_edit, self.until_edit):
            e.setCalendarPopup(True)
            e.setDisplayFormat("yyyy-MM-dd HH:mm")
            e.setVisible(False)
        self.bundle_combo = QComboBox()
        self.bundle_combo.setMinimumContentsLength(12)
        self.refresh_btn = QPushButton("Refresh")
        self.export_btn = QPushButton("Export CSV…")
        self.override_btn = QPushButton("Override verdict…")
        self.open_btn = QPushButton("Open image")
        self.teach_btn = QPushButton("Teach…")
        self.teach_btn.setToolTip("Teach the bundle in use the selected parts as good (overridden rows are highlighted)")
        self.type_combo = QComboBox()  # the defect type the bundle's classifier named
        self.type_combo.addItem("All types", None)
        self.overridden_check = QCheckBox("Overridden only")
        bar.addWidget(QLabel("Verdict"))
        bar.addWidget(self.verdict_combo)
        bar.addWidget(QLabel("Time"))
        bar.addWidget(self.period_combo)
        bar.addWidget(self.since_edit)
        bar.addWidget(self.until_edit)
        bar.addWidget(QLabel("Bundle"))
        bar.addWidget(self.bundle_combo)
        bar.addWidget(self.type_combo)
        bar.addWidget(self.overridden_check)
        bar.addStretch(1)
        root.addLayout(bar)
        actions = QHBoxLayout()  # a row of their own: filters and actions in one row overflowed a 1366 px screen
        actions.addStretch(1)
        for b in (self.refresh_btn, self.open_btn, self.override_btn, self.teach_btn, self.export_btn):
            actions.addWidget(b)
        root.addLayout(actions)
        if self.ctx.station:  # teaching retrains: a station has no PyTorch
            self.teach_btn.hide()

        self.table = QTableView()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)  # several parts to teach
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(24)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # a long path keeps its start and its name
        self.table.doubleClicked.connect(self._open_index)
        root.addWidget(self.table, 1)

        self.summary = QLabel("")
        self.summary.setObjectName("summaryLabel")
        root.addWidget(self.summary)

        self.verdict_combo.currentIndexChanged.connect(self.apply_filters)
        self.period_combo.currentIndexChanged.connect(self._period_changed)
        self.since_edit.dateTimeChanged.connect(self.apply_filters)
        self.until_edit.dateTimeChanged.connect(self.apply_filters)
        self.bundle_combo.currentIndexChanged.connect(self.apply_filters)
        self.type_combo.currentIndexChanged.connect(self.apply_filters)
        self.overridden_check.toggled.connect(self.apply_filters)
        self.teach_btn.clicked.connect(self._teach_clicked)
        self.ctx.roleChanged.connect(self._role_changed)
        self._role_changed(self.ctx.role)
        self.refresh_btn.clicked.connect(self.refresh)
        self.export_btn.clicked.connect(self._export_clicked)
        self.override_btn.clicked.connect(self._override_clicked)
        self.open_btn.clicked.connect(lambda: self._open_index(self.table.currentIndex()))

    # ------------------------------------------------------------------ data
    def ensure_model(self) -> HistoryTableModel:
        """Open the history database and attach the table model (first show)."""
        if self.model is None:
            self.model = HistoryTableModel(self.ctx.history, self)
            self.table.setModel(self.model)
            for i, w in enumerate(self.column_widths()):
                self.table.setColumnWidth(i, w)
            self._fill_bundles()
            self.apply_filters()
        return self.model

    def column_widths(self) -> list[int]:
        """Each column as wide as its title and its widest usual value, in this
        font (the sort indicator and the cell margins included): every title
        whole, and the whole table within a 1366 px screen's window."""
        header = self.table.horizontalHeader()
        title_fm, cell_fm = header.fontMetrics(), self.table.fontMetrics()
        bold = self.table.font()
        bold.setBold(True)
        verdict_fm = QFontMetrics(bold)
        widths = []
        for key, title in COLUMNS:
            fm = verdict_fm if key == "verdict" else cell_fm
            widths.append(max(title_fm.horizontalAdvance(title) + 24, fm.horizontalAdvance(COLUMN_SAMPLES[key]) + 14))
        return widths

    def _fill_bundles(self) -> None:
        current = self.bundle_combo.currentData()
        self.bundle_combo.blockSignals(True)
        self.bundle_combo.clear()
        self.bundle_combo.addItem("All bundles", None)
        for b in self.ctx.history.bundles():
            self.bundle_combo.addItem(b or "(none)", b)
        i = self.bundle_combo.findData(current) if current is not None else 0
        self.bundle_combo.setCurrentIndex(max(0, i))
        self.bundle_combo.blockSignals(False)
        self._fill_types()

    def _fill_types(self) -> None:
        """The defect types the history holds (the filter is hidden where none was named)."""
        current = self.type_combo.currentData()
        types = getattr(self.ctx.history, "defect_types", lambda: [])()
        self.type_combo.blockSignals(True)
        self.type_combo.clear()
        self.type_combo.addItem("All types", None)
        for t in types:
            self.type_combo.addItem(t, t)
        self.type_combo.setCurrentIndex(max(0, self.type_combo.findData(current)) if current is not None else 0)
        self.type_combo.blockSignals(False)
        self.type_combo.setVisible(bool(types))

    def current_filters(self) -> dict[str, Any]:
        f: dict[str, Any] = {}
        v = self.verdict_combo.currentData()
        if v:
            f["verdict"] = list(v) if isinstance(v, (tuple, list)) else v
        hours = self.period_combo.currentData()
        if hours == -1:
            f["since"] = self.since_edit.dateTime().toSecsSinceEpoch()
            f["until"] = self.until_edit.dateTime().toSecsSinceEpoch()
        elif hours:
            f["since"] = (_dt.datetime.now() - _dt.timedelta(hours=hours)).timestamp()
        b = self.bundle_combo.currentData()
        if b is not None:
            f["bundle"] = b
        t = self.type_combo.currentData()
        if t is not None:
            f["defect_type"] = t
        if self.overridden_check.isChecked():
            f["overridden"] = True
        return f

    def _period_changed(self) -> None:
        custom = self.period_combo.currentData() == -1
        self.since_edit.setVisible(custom)
        self.until_edit.setVisible(custom)
        self.apply_filters()

    def show_unavailable(self, exc: HistoryError) -> None:
        """Say in the summary line that the history cannot be read or written now (the server
        is unreachable, the file locked or closed): the table keeps what it showed."""
        self.summary.setText(f"History not available: {exc}. Press Refresh to try again.")

    def apply_filters(self) -> None:
        if self.model is None:
            return
        try:
            self.model.set_filters(**self.current_filters())
            self._update_summary()
        except HistoryError as exc:
            self.show_unavailable(exc)

    def refresh(self) -> None:
        """Re-read the database (new inspections), keeping the filters."""
        try:
            if self.model is not None and self.model.db is not self.ctx.history:
                self.model = None  # another history is in use (a demo bundle's verdicts are in the demo's own)
            if self.model is None:
                self.ensure_model()
                return
            self._fill_bundles()
            self.model.set_filters(**self.current_filters())
            self._update_summary()
        except HistoryError as exc:
            self.show_unavailable(exc)

    def _auto_refresh(self) -> None:
        # Only when visible and the user is looking at the newest rows.
        if self.model is None or not self.isVisible():
            return
        if self.model.db is not self.ctx.history:
            self.refresh()
            return
        if self.table.verticalScrollBar().value() > 0 or self.table.currentIndex().isValid():
            return
        try:
            n = self.ctx.history.count(**self.model.filters)
            if n != self.model.total():
                self.model.refresh()
                self._update_summary()
        except HistoryError as exc:
            self.show_unavailable(exc)

    def _update_summary(self) -> None:
        if self.model is None:
            return
        counts = self.ctx.history.counts_by_verdict(**self.model.filters)
        invalid = counts.get("INVALID", 0)
        parts = sum(counts.values()) - invalid  # a frame with no part is not in the yield
        yld = f"{100.0 * counts.get('PASS', 0) / parts:.1f} %" if parts else "—"
        self.summary.setText(
            f"{self.model.total():,} records   ·   PASS {counts.get('PASS', 0):,}   REVIEW {counts.get('REVIEW', 0):,}"
            f"   FAIL {counts.get('FAIL', 0):,}   INVALID {invalid:,}   ·   yield {yld}   ·   {self.ctx.history.path}"
        )

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        try:
            if self.model is None:
                self.ensure_model()
            else:
                self.refresh()
        except Exception as exc:  # noqa: BLE001 - an unusable database is shown, not a crash
            self.summary.setText(f"History not available: {exc}")

    # ------------------------------------------------------------------ actions
    def selected_record(self) -> Any | None:
        idx = self.table.currentIndex()
        return None if self.model is None or not idx.isValid() else self.model.record(idx.row())

    def selected_records(self) -> list[Any]:
        """The selected rows' records, in table order."""
        if self.model is None:
            return []
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        return [r for r in (self.model.record(row) for row in rows) if r is not None]

    def _role_changed(self, role: str) -> None:
        """Teaching changes what a bundle passes: an engineer's task (operators override)."""
        self.teach_btn.setEnabled(role == "engineer")

    def _teach_clicked(self) -> None:
        from app.views.teach_dialog import open_teach

        self._teach_dialog = open_teach(self.ctx, self.selected_records(), self)

    def export_csv(self, path: Path) -> int:
        """Export the rows matching the current filters; returns how many."""
        return self.ctx.history.export_csv(path, **self.current_filters())

    def _export_clicked(self) -> None:
        qs = QSettings()
        start = str(Path(str(qs.value("recent/export_dir", str(Path.home())))) / "inspections.csv")
        path, _ = QFileDialog.getSaveFileName(self, "Export history as CSV", start, "CSV files (*.csv)")
        if not path:
            return
        try:
            n = self.export_csv(Path(path))
        except Exception as exc:  # noqa: BLE001
            QMessageBox.critical(self, "Export failed", str(exc))
            return
        qs.setValue("recent/export_dir", str(Path(path).parent))
        QMessageBox.information(self, "Export done", f"{n:,} records written to {path}")

    def image_for(self, record: Any) -> tuple[Any, Path] | None:
        """The kept image of ``record`` (or its source file) as an array, with its path."""
        from inspection_core.data.images import read_image

        candidates = [self.ctx.history.image_path(record)]
        if record.image_ref and "#" not in record.image_ref:
            candidates.append(Path(record.image_ref))
        for p in candidates:
            if p is not None and Path(p).is_file():
                try:
                    return read_image(Path(p)), Path(p)
                except Exception:  # noqa: BLE001
                    continue
        return None

    def _open_index(self, index: QModelIndex) -> None:
        if self.model is None or not index.isValid():
            return
        rec = self.model.record(index.row())
        if rec is None:
            return
        found = self.image_for(rec)
        if found is None:
            QMessageBox.information(self, "No image", f"No image was kept for inspection #{rec.id} ({verdict_cell(rec)}).\n"
                                    "Only FAIL and REVIEW images are kept (a station setting).")
            return
        image, path = found
        self.imageOpened.emit(path)
        score = "" if rec.score is None else f" · score {rec.score:.4g}"
        dlg = ImageDialog(image, f"#{rec.id} · {verdict_cell(rec)}{score} · {path.name}", self)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.show()
        self._dialog = dlg

    def override(self, row: int, verdict: str | None, operator: str) -> None:
        """Record the operator's verdict for the row (None clears the override)."""
        assert self.model is not None
        rec = self.model.record(row)
        if rec is None:
            raise IndexError(f"no row {row}")
        self.ctx.history.set_override(rec.id, verdict, operator)
        self.model.invalidate_record(row)

    def _override_clicked(self) -> None:
        idx = self.table.currentIndex()
        rec = self.selected_record()
        if rec is None:
            QMessageBox.information(self, "Override", "Select an inspection first.")
            return
        choices = ["PASS", "REVIEW", "FAIL", "INVALID", "(clear override)"]  # INVALID: no part in the frame
        verdict, ok = QInputDialog.getItem(self, "Override verdict",
                                           f"Inspection #{rec.id}: the model said {rec.verdict}. Your verdict:",
                                           choices, 0, False)
        if not ok:
            return
        operator, ok = QInputDialog.getText(self, "Override verdict", "Your name or badge:",
                                            text=str(QSettings().value("recent/operator", "")))
        if not ok or not operator.strip():
            return
        QSettings().setValue("recent/operator", operator.strip())
        try:
            self.override(idx.row(), None if verdict.startswith("(") else verdict, operator.strip())
        except HistoryError as exc:  # the decision was not recorded: say so where the operator looks
            self.show_unavailable(exc)
            QMessageBox.warning(self, "Override not recorded", f"Inspection #{rec.id}: {exc}")
