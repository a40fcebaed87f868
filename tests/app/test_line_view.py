"""The Line view over a real PostgreSQL line history: two stations, counts,
yield, shifts, the FAIL-rate trend, the approved-bundle warning, filters and
the CSV export; the app records to the server and the History view reads it."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import pytest
from _postgres import ENGINEER, STATIONS, LineDB

from inspection_core.history import open_history

pytestmark = pytest.mark.gui

ROW = dict(threshold_high=0.5, source="cam", bundle="washers", bundle_id="b1")


def _fill_line(db: LineDB) -> None:
    now = time.time()
    with open_history(db.dsn(STATIONS[0])) as a, open_history(db.dsn(STATIONS[1])) as b:
        for k in range(10):
            a.record(**ROW, score=0.9 if k < 3 else 0.1, verdict="FAIL" if k < 3 else "PASS", station="Station 1",
                     image_ref=f"a{k}.png", time=now - 3600 + k * 60)
        for k in range(5):
            b.record(**{**ROW, "bundle": "washers-old", "bundle_id": "b0"}, score=0.1, verdict="PASS",
                     station="Station 2", image_ref=f"b{k}.png", time=now - 1800 + k)
    with open_history(db.dsn(ENGINEER)) as eng:
        eng.approve_bundle("washers", "b1", "cd" * 32, "Q. Engineer")


def _loaded(view, qtbot, before=None) -> None:
    qtbot.waitUntil(lambda: (view.snapshot is not before and view.snapshot is not None
                             and (view._job is None)) or bool(view.error), timeout=20000)
    assert not view.error, view.error


def test_line_view_shows_every_station(engineer_ctx, qtbot, line_db: LineDB, tmp_path: Path):
    from app.views.line import LineView

    _fill_line(line_db)
    view = LineView(engineer_ctx)
    qtbot.addWidget(view)
    view.server_edit.setText(line_db.dsn(ENGINEER))
    view.connect_server()
    _loaded(view, qtbot)
    assert engineer_ctx.settings.line_server == line_db.dsn(ENGINEER)  # kept for the next start
    t = view.station_table
    rows = {t.item(r, 0).text(): [t.item(r, c).text() for c in range(t.columnCount())] for r in range(t.rowCount())}
    assert rows["Station 1"][1:5] == ["10", "7", "0", "3"] and rows["Station 1"][6] == "70.0 %"
    assert rows["Station 2"][1] == "5" and rows["Station 2"][6] == "100.0 %"
    assert view.shift_table.rowCount() >= 2
    assert view.warning.isVisibleTo(view)
    assert "Station 2 runs washers-old (b0)" in view.warning.text() and "Station 1" not in view.warning.text()
    curves = view.plot.getPlotItem().listDataItems()
    assert sorted(c.name() for c in curves) == ["Station 1", "Station 2"]
    ys = [y for c in curves if c.name() == "Station 1" for y in c.getData()[1]]
    assert max(ys) > 0 and view.rows_table.rowCount() == 15

    by_shift = {}
    for r in range(view.shift_table.rowCount()):
        shift = view.shift_table.item(r, 1).text()
        by_shift[shift] = by_shift.get(shift, 0) + int(view.shift_table.item(r, 2).text())
    assert sum(by_shift.values()) == 15
    shift = max(by_shift, key=by_shift.get)
    before = view.snapshot
    view.shift_combo.setCurrentIndex(view.shift_combo.findData(shift))  # the shift filter: that shift's verdicts only
    _loaded(view, qtbot, before)
    qtbot.waitUntil(lambda: view._job is None and not view._pending, timeout=20000)
    assert view.snapshot.total == by_shift[shift] and view.rows_table.rowCount() == by_shift[shift]
    view.shift_combo.setCurrentIndex(0)
    qtbot.waitUntil(lambda: view._job is None and not view._pending and view.snapshot.total == 15, timeout=20000)

    before = view.snapshot
    view.station_combo.setCurrentIndex(view.station_combo.findData("Station 1"))
    view.verdict_combo.setCurrentIndex(view.verdict_combo.findData("FAIL"))
    _loaded(view, qtbot, before)
    while view._job is not None or view._pending:
        qtbot.wait(50)
    assert view.rows_table.rowCount() == 3
    assert {view.rows_table.item(r, 1).text() for r in range(3)} == {"Station 1"}

    view.rows_table.setCurrentCell(0, 0)
    rec = view.selected_record()
    job = view.override(rec.id, "PASS", "Q. Engineer")
    qtbot.waitUntil(lambda: not job.running, timeout=20000)
    with open_history(line_db.dsn(ENGINEER)) as eng:
        assert eng.get(rec.id).override_operator == "Q. Engineer"
    qtbot.waitUntil(lambda: view.rows_table.rowCount() == 3 and "PASS" in [
        view.rows_table.item(r, 6).text() for r in range(3)], timeout=20000)  # read again: the override is listed

    out = tmp_path / "line.csv"
    job = view.export_to(out)
    qtbot.waitUntil(lambda: not job.running and out.exists(), timeout=20000)
    with out.open(encoding="utf-8") as fh:
        exported = list(csv.DictReader(fh))
    assert len(exported) == 3 and {r["station"] for r in exported} == {"Station 1"}


@pytest.mark.fault("app", "the Line view pointed at a server that is down, or given a password in its server",
                   "one line in the view that says so; the password refused and never kept")
def test_line_view_says_when_the_server_cannot_be_read(engineer_ctx, qtbot, pg_server):
    from app.views.line import LineView

    view = LineView(engineer_ctx)
    qtbot.addWidget(view)
    view.server_edit.setText("postgresql://quality:hunter2@127.0.0.1/line")
    view.connect_server()
    assert ".pgpass" in view.status.text() and "hunter2" not in engineer_ctx.settings.line_server
    view.server_edit.setText(f"postgresql://{ENGINEER}@127.0.0.1:1/line")
    view.connect_server()
    qtbot.waitUntil(lambda: bool(view.error), timeout=20000)
    assert "cannot be reached" in view.status.text()


def test_the_app_records_to_the_server_and_history_reads_it(qtbot, line_db: LineDB, isolated_dirs):
    """A station's settings name the server: the recorder writes there and the
    History view (either backend) lists the station's own verdicts."""
    from app.context import AppContext
    from app.settings import StationSettings
    from app.views.history import HistoryView

    settings = StationSettings(history_server=line_db.dsn(STATIONS[0]), station_name="Station 1")
    ctx = AppContext(settings, role="engineer")
    try:
        for k in range(3):
            assert ctx.recorder.record(score=0.2, verdict="PASS", threshold_high=0.5, station="Station 1",
                                       image_ref=f"p{k}.png").record_id is not None
        view = HistoryView(ctx)
        qtbot.addWidget(view)
        view.ensure_model()
        assert view.model.total() == 3 and "postgresql://" in view.summary.text()
        view.override(0, "FAIL", "operator 7")  # the station's operator decides on its own verdict
        rec = view.model.record(0)
        assert (rec.override_verdict, rec.override_operator) == ("FAIL", "operator 7")
    finally:
        ctx.shutdown(10000)


def test_main_window_shows_the_line_view_in_engineer_mode_only(qtbot, isolated_dirs):
    from app.context import AppContext
    from app.main_window import MainWindow
    from app.settings import StationSettings

    ctx = AppContext(StationSettings.load(), role="operator")
    win = MainWindow(ctx)
    qtbot.addWidget(win)
    titles = [win.tabs.tabText(i) for i in range(win.tabs.count())]
    index = titles.index("Line")
    assert not win.tabs.isTabVisible(index)
    ctx.set_role("engineer")
    assert win.tabs.isTabVisible(index)
    from app.views.line import LineView

    assert isinstance(win.engineer_view("Line"), LineView)
    win.close()
    ctx.shutdown(10000)


@pytest.mark.fault("app", "a settings file whose history_server holds a password, or is no server at all",
                   "refused at start naming the file and the key; the password is not repeated")
def test_settings_refuse_a_server_with_a_password(tmp_path: Path):
    import json

    from app.settings import StationSettings

    f = tmp_path / "settings.json"
    f.write_text(json.dumps({"history_server": "postgresql://station1:hunter2@db/line"}), encoding="utf-8")
    with pytest.raises(ValueError, match=r"\.pgpass") as err:
        StationSettings.load(f)
    assert str(f) in str(err.value) and "hunter2" not in str(err.value)
    f.write_text(json.dumps({"line_server": "/mnt/share/history.sqlite3"}), encoding="utf-8")
    with pytest.raises(ValueError, match="line_server must be a postgresql://"):
        StationSettings.load(f)
    f.write_text(json.dumps({"history_server": "service=line"}), encoding="utf-8")
    assert StationSettings.load(f).history_target() == "service=line"


def test_self_test_records_to_a_server_when_one_is_given(line_db: LineDB, isolated_dirs):
    from types import SimpleNamespace

    from app.selftest import SelfTestFailure, record_to_server
    from inspection_core.types import Threshold

    results = [SimpleNamespace(frame_ref=f"/demo/{k:03d}_good.png",
                               prediction=SimpleNamespace(score=0.1 * k, verdict="PASS",
                                                          threshold=Threshold(high=0.5, low=None)))
               for k in range(4)]
    said = record_to_server(results, line_db.dsn(STATIONS[1]))
    assert said.startswith("recorded 4 to postgresql://")
    with open_history(line_db.dsn(ENGINEER)) as eng:
        assert eng.count(station="self-test") == 4
    with pytest.raises(SelfTestFailure, match="login of its own|spool"):
        record_to_server(results[:1], line_db.dsn("inspector_owner"), timeout_s=1)


@pytest.mark.fault("app", "the station app starts while the line's server is down",
                   "one notice (recordingChanged 'spooling'), verdicts in the station's spool under its data folder, "
                   "written in once each when the server is back")
def test_the_app_spools_while_the_server_is_down(qtbot, pg_server, tmp_path: Path, isolated_dirs):
    from _postgres import make_line_db

    from app.context import AppContext
    from app.settings import StationSettings

    db = make_line_db(pg_server)
    settings = StationSettings(history_server=db.dsn(STATIONS[0]), data_dir=str(tmp_path / "station-data"))
    ctx = AppContext(settings, role="operator")
    notices: list[tuple[str, str, int]] = []
    ctx.recordingChanged.connect(lambda *a: notices.append(a))
    pg_server.stop("immediate")
    try:
        for k in range(3):
            assert ctx.recorder.record(score=0.2, verdict="PASS", threshold_high=0.5, station="S",
                                       image_ref=f"down{k}.png").spooled
        assert ctx.recorder.spool.files[0].is_relative_to(tmp_path / "station-data")
        assert notices and notices[0][0] == "spooling" and "cannot be reached" in notices[0][1]
    finally:
        pg_server.start()
    try:
        assert ctx.recorder.flush_until(15)
        qtbot.waitUntil(lambda: notices[-1][0] == "ok", timeout=5000)
    finally:
        ctx.shutdown(10000)
    with open_history(db.dsn(ENGINEER)) as eng:
        assert sorted(r.image_ref for r in eng.query()) == ["down0.png", "down1.png", "down2.png"]
