"""The History view's table model: a windowed, read-only view of the matching
history rows that stays fast at 100,000+ rows (pages of ``PAGE_SIZE`` rows
fetched on demand, a few kept in a small cache)."""

from __future__ import annotations

import datetime as _dt
import math
from collections import OrderedDict
from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt
from PySide6.QtGui import QBrush, QColor, QFont

from app.widgets.palette import verdict_text
from inspection_core.history import HistoryError


PAGE_SIZE = 500
MAX_PAGES = 40
#: the verdict filter's choices: (label, the verdict or verdicts it keeps)
VERDICT_CHOICES = (("PASS", "PASS"), ("REVIEW", "REVIEW"), ("FAIL", "FAIL"), ("INVALID (no part)", "INVALID"),
                   ("REVIEW + FAIL", ("REVIEW", "FAIL")))

COLUMNS = [
    ("id", "#"),
    ("time", "Time"),
    ("verdict", "Verdict"),
    ("override_verdict", "Override"),
    ("score", "Score"),
    ("share", "% of φ"),  # the score as a share of the threshold φ: the Inspect view's measure
    ("threshold", "Threshold"),
    ("bundle", "Bundle"),
    ("image_ref", "Image"),
    ("source", "Source"),
    ("station", "Station"),
    ("latency_ms", "Latency"),
]


#: what the widest value of a column looks like (its width is the wider of this and its title)
COLUMN_SAMPLES = {"id": "000000", "time": "2026-12-31 23:59:59", "verdict": "REVIEW", "override_verdict": "REVIEW (operator)",
                  "score": "000.00000", "share": "> 999 %", "threshold": "000.00000", "bundle": "bundle-name-20",
                  "image_ref": "part-000000.png", "source": "folder:/data/line-1", "station": "station-1",
                  "latency_ms": "0000 ms"}
#: the background of a row an operator overrode (History's Teach… starts from them)
OVERRIDDEN_ROW = "#2e4a2e"
#: significant digits of the smallest threshold in view: every score gets the decimals that gives
SCORE_DIGITS = 3


def score_decimals(records: list[Any]) -> int:
    """The number of decimals every score of a table shows: enough for
    SCORE_DIGITS significant digits of the smallest threshold among
    ``records`` (of the scores where none has one): 0.00250 and 0.00381 for
    a GAN's scores, 2.51 and 3.07 for PatchCore's."""
    refs = [abs(r.threshold_high) for r in records if r.threshold_high]
    if not refs:
        refs = [abs(r.score) for r in records if r.score]
    if not refs:
        return SCORE_DIGITS
    ref = min(refs)
    if not math.isfinite(ref):
        return SCORE_DIGITS
    return max(0, min(8, SCORE_DIGITS - 1 - math.floor(math.log10(ref))))


def _local_time(record: Any) -> str:
    return _dt.datetime.fromtimestamp(record.epoch).strftime("%Y-%m-%d %H:%M:%S")


def verdict_cell(record: Any) -> str:
    """The verdict as the table shows it: an INVALID row with its reason, e.g. "INVALID — blank frame"."""
    verdict = "" if record.verdict is None else str(record.verdict)
    note = (getattr(record, "note", "") or "").strip()
    kind = getattr(record, "defect_type", None)
    if verdict == "FAIL" and kind:  # the type the bundle's classifier named
        return f"FAIL: {kind}"
    return f"{verdict} — {note}" if verdict == "INVALID" and note else verdict


class HistoryTableModel(QAbstractTableModel):
    """Windowed, read-only view of the matching history rows (newest first)."""

    def __init__(self, db: Any, parent: Any = None) -> None:
        super().__init__(parent)
        self.db = db
        self.filters: dict[str, Any] = {}
        self._count = 0
        self._decimals: int | None = None  # score decimals, from the newest page (the same in every row)
        self._pages: OrderedDict[int, list[Any]] = OrderedDict()
        self.queries = 0  # page queries made (tests check that paging is lazy)
        self.refresh()

    # ---- filters / refresh -----------------------------------------------------------
    def set_filters(self, **filters: Any) -> None:
        self.filters = {k: v for k, v in filters.items() if v not in (None, "")}
        self.refresh()

    def refresh(self) -> None:
        """Re-count and drop the cached pages (after new rows or a filter change).
        A ``HistoryError`` from the count leaves the table as it was."""
        count = self.db.count(**self.filters) if self.db is not None else 0
        self.beginResetModel()
        self._pages.clear()
        self._decimals = None
        self._count = count
        self.endResetModel()

    def total(self) -> int:
        return self._count

    # ---- paging -------------------------------------------------------------------------
    def _page(self, n: int) -> list[Any]:
        page = self._pages.get(n)
        if page is not None:
            self._pages.move_to_end(n)
            return page
        page = self.db.query(**self.filters, limit=PAGE_SIZE, offset=n * PAGE_SIZE, newest_first=True)
        self.queries += 1
        self._pages[n] = page
        while len(self._pages) > MAX_PAGES:
            self._pages.popitem(last=False)
        return page

    def record(self, row: int) -> Any | None:
        if not 0 <= row < self._count:
            return None
        try:
            page = self._page(row // PAGE_SIZE)
        except HistoryError:  # painting a cell while the history cannot be read: blank (the view says why)
            return None
        i = row % PAGE_SIZE
        return page[i] if i < len(page) else None

    @property
    def decimals(self) -> int:
        """Decimals of every score and threshold shown (see :func:`score_decimals`)."""
        if self._decimals is None:
            self._decimals = score_decimals(self._page(0)) if self._count else SCORE_DIGITS
        return self._decimals

    def _number(self, value: float) -> str:
        return f"{value:.{self.decimals}f}"

    def invalidate_record(self, row: int) -> None:
        """Re-read the page holding ``row`` (after an override)."""
        self._pages.pop(row // PAGE_SIZE, None)
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))

    # ---- Qt model API -----------------------------------------------------------------
    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else self._count

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:  # noqa: N802
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section][1]
        return None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        rec = self.record(index.row())
        if rec is None:
            return None
        key = COLUMNS[index.column()][0]
        if role == Qt.ItemDataRole.DisplayRole:
            if key == "time":
                return _local_time(rec)
            if key == "score":
                return "" if rec.score is None else self._number(rec.score)
            if key == "share":
                if rec.score is None or not rec.threshold_high or rec.threshold_high <= 0:
                    return ""
                share = 100.0 * rec.score / rec.threshold_high
                return "> 999 %" if share > 999 else f"{share:.0f} %"
            if key == "threshold":
                if rec.threshold_high is None:
                    return ""
                high = self._number(rec.threshold_high)
                return high if rec.threshold_low is None else f"{self._number(rec.threshold_low)} / {high}"
            if key == "latency_ms":
                return "" if rec.latency_ms is None else f"{rec.latency_ms:.0f} ms"
            if key == "image_ref":
                return Path(rec.image_ref).name if rec.image_ref else ""
            if key == "override_verdict":
                return f"{rec.override_verdict} ({rec.override_operator})" if rec.override_verdict else ""
            if key == "verdict":
                return verdict_cell(rec)
            value = getattr(rec, key)
            return "" if value is None else str(value)
        if role == Qt.ItemDataRole.ForegroundRole and key in ("verdict", "override_verdict"):
            v = rec.verdict if key == "verdict" else rec.override_verdict
            if v:
                return QBrush(QColor(verdict_text(str(v))))
        if role == Qt.ItemDataRole.BackgroundRole and rec.override_verdict:  # an operator's override, to teach from
            return QBrush(QColor(OVERRIDDEN_ROW))
        if role == Qt.ItemDataRole.FontRole and key == "verdict":
            f = QFont()
            f.setBold(True)
            return f
        if role == Qt.ItemDataRole.ToolTipRole and key == "verdict" and rec.verdict == "INVALID":
            from inspection_core.frame_check import REASONS

            note = (rec.note or "").strip()
            return f"The frame carried no part: {REASONS.get(note, note or 'no reason recorded')}"
        if role == Qt.ItemDataRole.ToolTipRole and key == "image_ref":
            return rec.image_ref + ("\n(image kept — double-click to open)" if rec.stored_image else "")
        if role == Qt.ItemDataRole.TextAlignmentRole and key in ("id", "score", "share", "threshold", "latency_ms"):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.UserRole:
            return rec
        return None
