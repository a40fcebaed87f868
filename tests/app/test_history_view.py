"""History view over a real SQLite history: 100,000 rows stay fast, filters,
CSV export, operator override, opening a kept image."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import pytest

from app.views.history import PAGE_SIZE, HistoryTableModel, HistoryView

pytestmark = pytest.mark.gui

N_ROWS = 100_000


def big_db_verdicts() -> np.ndarray:
    """The verdict of each inspection in ``big_db_file``, oldest first."""
    return np.random.default_rng(0).choice(["PASS", "REVIEW", "FAIL"], size=N_ROWS, p=[0.9, 0.04, 0.06])


@pytest.fixture(scope="module")
def big_db_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A history database with 100,000 inspections over the last ~3 days (built once)."""
    from inspection_core.history import HistoryDB

    path = tmp_path_factory.mktemp("hist") / "history.sqlite3"
    now = time.time()
    verdicts = big_db_verdicts()
    with HistoryDB(path) as db:
        db.record_many(
            {"score": float(i % 97) / 97.0, "verdict": verdicts[i], "threshold_high": 0.8, "threshold_low": 0.6,
             "source": "camera:0", "image_ref": f"camera:0#frame={i}", "bundle": "line-a" if i % 4 else "line-b",
             "station": "S1", "latency_ms": 12.0, "time": now - (N_ROWS - i) * 2.5}
            for i in range(N_ROWS)
        )  # fmt: skip
    return path


@pytest.fixture
def big_view(ctx, qtbot, big_db_file: Path, tmp_path: Path) -> HistoryView:
    import shutil

    db_copy = tmp_path / "history.sqlite3"
    shutil.copy(big_db_file, db_copy)
    ctx.settings.history_path = str(db_copy)
    v = HistoryView(ctx)
    qtbot.addWidget(v)
    v.resize(1200, 600)
    v.show()
    qtbot.waitUntil(lambda: v.model is not None)
    return v


def test_pages_through_100k_rows_lazily(big_view: HistoryView, qtbot) -> None:
    m = big_view.model
    assert m.rowCount() == N_ROWS
    assert m.queries <= 2, "showing the table must fetch only the visible page"
    t = time.perf_counter()
    big_view.table.scrollToBottom()
    qtbot.wait(50)
    last = m.index(N_ROWS - 1, 0)
    assert m.data(last) == "1", "newest first: the last row is the first inspection"
    big_view.table.scrollTo(m.index(N_ROWS // 2, 0))
    qtbot.wait(50)
    elapsed = time.perf_counter() - t
    assert elapsed < 1.5, f"jumping through 100,000 rows took {elapsed:.2f} s"
    assert m.queries <= 8
    assert len(m._pages) <= 40
    # newest first: row r is inspection N_ROWS - r, whatever page it came from
    verdicts = big_db_verdicts()
    for row in (0, 1, PAGE_SIZE - 1, PAGE_SIZE, N_ROWS // 2, N_ROWS - 1):
        assert m.data(m.index(row, 2)) == verdicts[N_ROWS - 1 - row], row
        assert m.data(m.index(row, 0)) == str(N_ROWS - row)
    assert "100,000 records" in big_view.summary.text()


def test_filters_by_verdict_bundle_and_time(big_view: HistoryView, ctx) -> None:
    db = ctx.history
    big_view.verdict_combo.setCurrentIndex(big_view.verdict_combo.findData("FAIL"))
    assert big_view.model.rowCount() == db.count(verdict="FAIL") > 0
    assert {big_view.model.record(i).verdict for i in range(50)} == {"FAIL"}
    big_view.bundle_combo.setCurrentIndex(big_view.bundle_combo.findData("line-b"))
    n = db.count(verdict="FAIL", bundle="line-b")
    assert big_view.model.rowCount() == n and 0 < n < db.count(verdict="FAIL")
    big_view.verdict_combo.setCurrentIndex(0)
    big_view.bundle_combo.setCurrentIndex(0)
    big_view.period_combo.setCurrentIndex(big_view.period_combo.findData(1))  # last hour
    assert big_view.model.rowCount() == db.count(since=time.time() - 3600)
    assert 1000 < big_view.model.rowCount() < 2000  # 2.5 s apart: ~1440 in an hour


def test_export_csv_writes_the_filtered_rows(big_view: HistoryView, ctx, tmp_path: Path) -> None:
    big_view.verdict_combo.setCurrentIndex(big_view.verdict_combo.findData("REVIEW"))
    out = tmp_path / "review.csv"
    n = big_view.export_csv(out)
    assert n == ctx.history.count(verdict="REVIEW")
    with open(out, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == n and {r["verdict"] for r in rows} == {"REVIEW"}


def test_override_and_open_kept_image(ctx, qtbot) -> None:
    img = np.full((48, 48, 3), 200, np.uint8)
    ctx.history.record(score=0.9, verdict="FAIL", threshold_high=0.5, image_ref="/nowhere/part7.png",
                       bundle="demo", image=img)
    ctx.history.record(score=0.1, verdict="PASS", threshold_high=0.5, image_ref="/nowhere/part8.png", bundle="demo")
    v = HistoryView(ctx)
    qtbot.addWidget(v)
    v.show()
    qtbot.waitUntil(lambda: v.model is not None and v.model.rowCount() == 2)
    # Row 0 is the newest (PASS), row 1 the FAIL with a kept image.
    fail_row = 1
    assert v.model.record(fail_row).verdict == "FAIL"
    v.override(fail_row, "PASS", "anna")
    rec = ctx.history.get(v.model.record(fail_row).id)
    assert rec.override_verdict == "PASS" and rec.override_operator == "anna"
    assert v.model.data(v.model.index(fail_row, 3)) == "PASS (anna)"
    with qtbot.waitSignal(v.imageOpened, timeout=3000) as sig:
        v._open_index(v.model.index(fail_row, 0))
    assert Path(sig.args[0]).is_file()
    assert v._dialog.pane.has_image


def test_model_picks_up_new_rows_on_refresh(ctx) -> None:
    m = HistoryTableModel(ctx.history)
    assert m.rowCount() == 0
    ctx.history.record(score=0.2, verdict="PASS", threshold_high=0.5)
    assert m.rowCount() == 0
    m.refresh()
    assert m.rowCount() == 1 and m.record(0).verdict == "PASS"
    assert PAGE_SIZE >= 100


@pytest.mark.fault("app", "the History view's history cannot be read: the database was closed",
                   "the summary line says 'History not available' and why; filters and Refresh raise nothing")
def test_a_closed_history_is_said_in_the_view(ctx, qtbot) -> None:
    ctx.history.record(score=0.9, verdict="FAIL", threshold_high=0.5, defect_type="scratch")
    v = HistoryView(ctx)
    qtbot.addWidget(v)
    v.show()
    qtbot.waitUntil(lambda: v.model is not None and v.model.rowCount() == 1)
    ctx.history.close()
    v.overridden_check.setChecked(True)  # a filter slot
    assert "History not available" in v.summary.text() and "the database is closed" in v.summary.text()
    v.summary.setText("")
    v.refresh_btn.click()
    assert "History not available" in v.summary.text() and "the database is closed" in v.summary.text()
    assert v.model.rowCount() == 1  # the table keeps what it showed


@pytest.mark.fault("app", "the line's history server stops while the History view shows its rows",
                   "the summary line says the server cannot be reached; Refresh shows the rows once it is back")
def test_an_unreachable_server_is_said_in_the_view(qtbot, pg_server, isolated_dirs) -> None:
    from _postgres import STATIONS, make_line_db

    from app.context import AppContext
    from app.settings import StationSettings

    line = make_line_db(pg_server)
    ctx = AppContext(StationSettings(history_server=line.dsn(STATIONS[0]), station_name="S1"), role="operator")
    try:
        ctx.history.record(score=0.9, verdict="FAIL", threshold_high=0.5, defect_type="scratch")
        ctx.history.record(score=0.1, verdict="PASS", threshold_high=0.5)
        v = HistoryView(ctx)
        qtbot.addWidget(v)
        v.ensure_model()
        assert v.model.total() == 2 and v.type_combo.findData("scratch") > 0
        pg_server.stop("immediate")
        try:
            v.type_combo.setCurrentIndex(v.type_combo.findData("scratch"))  # a filter slot
            assert "History not available" in v.summary.text() and "cannot be reached" in v.summary.text()
            v.summary.setText("")
            v.refresh_btn.click()
            assert "cannot be reached" in v.summary.text()
        finally:
            pg_server.start()
        v.refresh_btn.click()
        assert v.model.total() == 1 and v.model.record(0).defect_type == "scratch"
        assert "History not available" not in v.summary.text() and "1 records" in v.summary.text()
    finally:
        ctx.shutdown(10000)
