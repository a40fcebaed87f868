"""The Line view (engineer mode): every station of a line, from the line's
shared history server.

Filters (station, shift, bundle, verdict, period) over counts and yield per
station and per shift, a FAIL-rate trend per station, the bundle each station
runs with a warning where it is not the one the line's engineer approved, the
newest matching verdicts and a CSV export of all of them. Everything is read
on a worker job (:mod:`app.views.line_data`), so a slow network never freezes
the window; the view refreshes itself while it is shown.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QDateTime, Qt, QTimer
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QComboBox, QDateTimeEdit, QFileDialog, QHBoxLayout, QHeaderView, QLabel, QLineEdit,
                               QPushButton, QSplitter, QTableWidget, QTableWidgetItem, QTabWidget, QVBoxLayout,
                               QWidget)

from app.context import AppContext
from app.views.line_data import LineFilters, LineSnapshot, export_csv, load_snapshot, set_override
from app.widgets import palette
from app.widgets.plots import SERIES_COLORS, style_plot

#: seconds between refreshes while the view is shown
REFRESH_S = 15
PERIODS = (("Last 8 hours", 8), ("Last 24 hours", 24), ("Last 7 days", 24 * 7), ("Last 30 days", 24 * 30),
           ("All time", 0), ("Custom…", -1))
COUNT_HEADERS = ["Station", "Verdicts", "PASS", "REVIEW", "FAIL", "INVALID", "Yield"]
ROW_HEADERS = ["Time", "Station", "Verdict", "Score", "Bundle", "Image", "Override"]


def _local(epoch: float) -> str:
    return _dt.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


def _fill(table: QTableWidget, headers: list[str], rows: list[list[Any]]) -> None:
    table.setSortingEnabled(False)
    table.clear()
    table.setColumnCount(len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            item = QTableWidgetItem("" if value is None else str(value))
            if headers[c] == "Verdict" and str(value) in palette.VERDICT_TEXT:
                item.setForeground(QColor(palette.verdict_text(str(value))))
            table.setItem(r, c, item)
    table.resizeColumnsToContents()


class LineView(QWidget):
    """See the module docstring. ``snapshot``: what is shown now (None before the first load)."""

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.snapshot: LineSnapshot | None = None
        self.error = ""
        self._job: Any = None
        self._pending = False

        self.server_edit = QLineEdit(ctx.settings.line_server or ctx.settings.history_server)
        self.server_edit.setPlaceholderText("postgresql://quality@server/line   or   service=line   (no password: "
                                            "~/.pgpass)")
        self.server_edit.setToolTip("The line's history server, as an engineer's login (a station's login sees only "
                                    "its own verdicts)")
        self.connect_btn = QPushButton("Connect")
        self.status = QLabel("Not connected")
        self.status.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(QLabel("Server"))
        top.addWidget(self.server_edit, 1)
        top.addWidget(self.connect_btn)

        self.station_combo, self.shift_combo, self.bundle_combo = QComboBox(), QComboBox(), QComboBox()
        self.verdict_combo, self.period_combo = QComboBox(), QComboBox()
        for combo, label in ((self.station_combo, "All stations"), (self.shift_combo, "All shifts"),
                             (self.bundle_combo, "All bundles")):
            combo.addItem(label, None)
        self.verdict_combo.addItem("All verdicts", None)
        for v in ("PASS", "REVIEW", "FAIL", "INVALID"):
            self.verdict_combo.addItem(v, v)
        for text, hours in PERIODS:
            self.period_combo.addItem(text, hours)
        self.period_combo.setCurrentIndex(1)
        now = QDateTime.currentDateTime()
        self.since_edit = QDateTimeEdit(now.addDays(-1))
        self.until_edit = QDateTimeEdit(now)
        for edit in (self.since_edit, self.until_edit):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("yyyy-MM-dd HH:mm")
            edit.setVisible(False)
        self.refresh_btn = QPushButton("Refresh")
        self.export_btn = QPushButton("Export CSV…")
        self.override_btn = QPushButton("Override…")
        self.override_btn.setToolTip("Set your verdict on the selected inspection (an engineer's login; who and when "
                                     "are recorded)")
        filters = QHBoxLayout()
        for w in (self.station_combo, self.shift_combo, self.bundle_combo, self.verdict_combo, self.period_combo,
                  self.since_edit, self.until_edit):
            filters.addWidget(w)
        filters.addStretch(1)
        filters.addWidget(self.refresh_btn)
        filters.addWidget(self.override_btn)
        filters.addWidget(self.export_btn)

        self.warning = QLabel()
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet(f"background: {palette.CAMERA_WARNING[0]}; color: {palette.CAMERA_WARNING[1]};"
                                   " padding: 6px; font-weight: bold;")
        self.warning.setVisible(False)

        self.station_table, self.shift_table = QTableWidget(), QTableWidget()
        self.bundle_table, self.rows_table = QTableWidget(), QTableWidget()
        for t in (self.station_table, self.shift_table, self.bundle_table, self.rows_table):
            t.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
            t.verticalHeader().setVisible(False)
            t.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.tables = QTabWidget()
        self.tables.addTab(self.station_table, "Per station")
        self.tables.addTab(self.shift_table, "Per shift")
        self.tables.addTab(self.bundle_table, "Bundles")
        self.plot = pg.PlotWidget()
        style_plot(self.plot, "FAIL rate per station", "time", "FAIL %")
        self.plot.addLegend(offset=(10, 10))
        self.plot.getPlotItem().setAxisItems({"bottom": pg.DateAxisItem()})
        upper = QSplitter()
        upper.addWidget(self.tables)
        upper.addWidget(self.plot)
        self.rows_label = QLabel("Verdicts")
        lower = QWidget()
        lower_lay = QVBoxLayout(lower)
        lower_lay.setContentsMargins(0, 0, 0, 0)
        lower_lay.addWidget(self.rows_label)
        lower_lay.addWidget(self.rows_table)
        body = QSplitter(Qt.Orientation.Vertical)
        body.addWidget(upper)
        body.addWidget(lower)

        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.status)
        lay.addLayout(filters)
        lay.addWidget(self.warning)
        lay.addWidget(body, 1)

        self.timer = QTimer(self)
        self.timer.setInterval(REFRESH_S * 1000)
        self.timer.timeout.connect(self._auto_refresh)
        self.timer.start()
        self.connect_btn.clicked.connect(self.connect_server)
        self.server_edit.returnPressed.connect(self.connect_server)
        self.refresh_btn.clicked.connect(self.refresh)
        self.export_btn.clicked.connect(self._export_clicked)
        self.override_btn.clicked.connect(self._override_clicked)
        self.period_combo.currentIndexChanged.connect(self._period_changed)
        for combo in (self.station_combo, self.shift_combo, self.bundle_combo, self.verdict_combo):
            combo.currentIndexChanged.connect(self.refresh)
        for edit in (self.since_edit, self.until_edit):
            edit.dateTimeChanged.connect(self.refresh)

    # ------------------------------------------------------------------ filters
    def server(self) -> str:
        return self.server_edit.text().strip()

    def current_filters(self) -> LineFilters:
        hours = self.period_combo.currentData()
        since = until = None
        if hours == -1:
            since = float(self.since_edit.dateTime().toSecsSinceEpoch())
            until = float(self.until_edit.dateTime().toSecsSinceEpoch())
        elif hours:
            since = (_dt.datetime.now() - _dt.timedelta(hours=hours)).timestamp()
        return LineFilters(station=self.station_combo.currentData(), shift=self.shift_combo.currentData(),
                           bundle=self.bundle_combo.currentData(), verdict=self.verdict_combo.currentData(),
                           since=since, until=until)

    def _period_changed(self) -> None:
        custom = self.period_combo.currentData() == -1
        self.since_edit.setVisible(custom)
        self.until_edit.setVisible(custom)
        self.refresh()

    # ------------------------------------------------------------------ loading
    def connect_server(self) -> None:
        """Take the server typed in (kept in the settings as ``line_server``) and load."""
        from inspection_core.history.targets import check_target, is_server_target

        text = self.server()
        try:
            if not is_server_target(text):
                raise ValueError("the server is a postgresql:// URL or a 'service=NAME' string")
            check_target(text, "the Line view's server")
        except ValueError as exc:
            self._show_error(str(exc))
            return
        if text != self.ctx.settings.line_server:
            self.ctx.settings.line_server = text
            try:
                self.ctx.settings.save()
            except OSError as exc:
                self.status.setText(f"(the server could not be kept in the settings: {exc})")
        self.refresh()

    def refresh(self) -> None:
        """Read the line again with the current filters (on a worker job)."""
        server = self.server()
        if not server:
            return
        if self._job is not None and self._job.running:
            self._pending = True  # one more read once this one is in
            return
        filters = self.current_filters()
        self.error = ""
        self.status.setText(f"Reading {server}…")
        self._job = self.ctx.start_job(lambda _progress, _cancel: load_snapshot(server, filters),
                                       on_done=self._loaded, on_error=self._show_error, name="line")

    def _auto_refresh(self) -> None:
        if self.isVisible() and self.snapshot is not None:
            self.refresh()

    def _after_job(self) -> None:
        self._job = None
        if self._pending:
            self._pending = False
            self.refresh()

    def _show_error(self, message: str) -> None:
        self.error = message.strip().splitlines()[-1] if message.strip() else "error"
        self.status.setText(f"The line's history cannot be read: {self.error}")
        self.status.setStyleSheet(f"color: {palette.verdict_text('FAIL')};")
        self._after_job()

    @staticmethod
    def _set_choices(combo: QComboBox, values: list[str]) -> None:
        current = combo.currentData()
        if [combo.itemData(i) for i in range(1, combo.count())] == values:
            return
        combo.blockSignals(True)
        while combo.count() > 1:
            combo.removeItem(1)
        for v in values:
            combo.addItem(v or "(none)", v)
        combo.setCurrentIndex(max(0, combo.findData(current)) if current is not None else 0)
        combo.blockSignals(False)

    def _loaded(self, snap: LineSnapshot) -> None:
        self.snapshot, self.error = snap, ""
        self.status.setStyleSheet("")
        self.status.setText(f"{snap.server} · {snap.login} ({snap.role})" +
                            ("" if snap.role in ("engineer", "owner") else " — a station's login: only its own "
                             "verdicts are shown") + f" · read {_local(snap.loaded_at)}")
        self._set_choices(self.station_combo, snap.stations)
        self._set_choices(self.shift_combo, snap.shifts)
        self._set_choices(self.bundle_combo, snap.bundles)
        _fill(self.station_table, COUNT_HEADERS, [self._count_row(c.station, c) for c in snap.by_station])
        _fill(self.shift_table, ["Station", "Shift", *COUNT_HEADERS[1:]],
              [[c.station, c.shift or "(none)", *self._count_row(c.station, c)[1:]] for c in snap.by_shift])
        _fill(self.bundle_table, ["Station", "Bundle", "Id", "sha256", "Last verdict", "Approved"],
              [[b.station, b.bundle, b.bundle_id, b.sha256 or "(not known)", b.last_time,
                {None: "(no approval)", True: "yes", False: "NO"}[b.approved]] for b in snap.station_bundles])
        self._show_warning(snap)
        self._draw_trend(snap)
        _fill(self.rows_table, ROW_HEADERS,
              [[_local(r.epoch), r.station, r.verdict, f"{r.score:.4g}" if r.score is not None else "", r.bundle,
                r.image_ref, r.override_verdict or ""] for r in snap.rows])
        shown = len(snap.rows)
        self.rows_label.setText(f"{snap.total:,} verdicts match" + (f" (the newest {shown:,} listed; Export CSV "
                                                                    "writes all)" if shown < snap.total else ""))
        self._after_job()

    @staticmethod
    def _count_row(station: str, c: Any) -> list[Any]:
        v = c.by_verdict
        yld = f"{c.yield_pct:.1f} %" if c.yield_pct is not None else "—"
        return [station, c.total, v.get("PASS", 0), v.get("REVIEW", 0), v.get("FAIL", 0), v.get("INVALID", 0), yld]

    def _show_warning(self, snap: LineSnapshot) -> None:
        off = snap.off_approved
        if not off or snap.approved is None:
            self.warning.setVisible(False)
            return
        names = ", ".join(f"{b.station} runs {b.bundle} ({b.bundle_id})" for b in off)
        self.warning.setText(f"Not the approved bundle: {names}. Approved: {snap.approved.bundle} "
                             f"({snap.approved.bundle_id}) by {snap.approved.approved_by} at {snap.approved.approved_at}")
        self.warning.setVisible(True)

    def _draw_trend(self, snap: LineSnapshot) -> None:
        item = self.plot.getPlotItem()
        item.clear()
        if item.legend is not None:
            item.legend.clear()
        for k, (station, points) in enumerate(sorted(snap.trend.items())):
            xs = [b + snap.bucket_s / 2 for b, _n, _f in points]
            ys = [100.0 * f / n if n else 0.0 for _b, n, f in points]
            pen = pg.mkPen(SERIES_COLORS[k % len(SERIES_COLORS)], width=2)
            self.plot.plot(xs, ys, pen=pen, symbol="o", symbolSize=5, name=station or "(none)")

    # ------------------------------------------------------------------ override
    def selected_record(self) -> Any:
        row = self.rows_table.currentRow()
        if self.snapshot is None or not 0 <= row < len(self.snapshot.rows):
            return None
        return self.snapshot.rows[row]

    def _override_clicked(self) -> None:
        from PySide6.QtWidgets import QInputDialog, QMessageBox

        rec = self.selected_record()
        if rec is None:
            QMessageBox.information(self, "Override", "Select an inspection in the list first.")
            return
        choices = ["PASS", "REVIEW", "FAIL", "INVALID", "(clear override)"]
        verdict, ok = QInputDialog.getItem(self, "Override verdict", f"{rec.station}, inspection #{rec.id}: the model "
                                           f"said {rec.verdict}. Your verdict:", choices, 0, False)
        if not ok:
            return
        operator, ok = QInputDialog.getText(self, "Override verdict", "Your name or badge:")
        if ok and operator.strip():
            self.override(rec.id, None if verdict.startswith("(") else verdict, operator.strip())

    def override(self, record_id: int, verdict: str | None, operator: str) -> Any:
        """Record the override on a worker job, then read the line again; returns the job."""
        server = self.server()
        return self.ctx.start_job(lambda _p, _c: set_override(server, record_id, verdict, operator),
                                  on_done=lambda _r: self.refresh(), on_error=self._show_error, name="line override")

    # ------------------------------------------------------------------ export
    def _export_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export the line's verdicts", "line.csv", "CSV (*.csv)")
        if path:
            self.export_to(Path(path))

    def export_to(self, path: Path) -> Any:
        """Write every verdict matching the filters to ``path`` (on a worker job); returns the job."""
        server, filters = self.server(), self.current_filters()
        return self.ctx.start_job(lambda _p, _c: export_csv(server, filters, path),
                                  on_done=lambda n: self.status.setText(f"{n:,} verdicts written to {path}"),
                                  on_error=self._show_error, name="line export")
