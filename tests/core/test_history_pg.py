"""The line history on a real PostgreSQL server: HistoryDB's interface, the
schema and its migrations, the roles and row-level security, parameters only,
the spool's exactly-once replay."""

from __future__ import annotations

import csv
import json
import os
import time
from typing import Any

import numpy as np
import pytest

from _postgres import ENGINEER, OWNER, STATIONS, LineDB, make_line_db

psycopg = pytest.importorskip("psycopg")

from inspection_core.history import HistoryDB, HistoryError, Recorder, VerdictSpool, open_history  # noqa: E402
from inspection_core.history.backend import check_target, display_target, is_server_target  # noqa: E402
from inspection_core.history.pg import PgHistory  # noqa: E402
from inspection_core.history.pg_schema import SCHEMA_VERSION, add_login, current_version, migrate  # noqa: E402

ROW = dict(score=0.5, threshold_high=0.4, threshold_low=None, source="cam", bundle="washers", bundle_id="b1")


def test_targets_tell_a_server_from_a_file_and_never_show_a_password():
    assert is_server_target("postgresql://station_a@db/line")
    assert is_server_target("service=line")
    assert is_server_target("host=db dbname=line user=station_a")
    assert not is_server_target("/var/lib/inspector/history.sqlite")
    assert not is_server_target("history=old.sqlite")
    assert display_target("postgresql://u:s3cret@db/line") == "postgresql://u@db/line"
    assert "s3cret" not in display_target("host=db user=u password=s3cret")
    with pytest.raises(ValueError, match=r"\.pgpass"):
        check_target("postgresql://u:s3cret@db/line", "settings file x.json")


def test_history_interface_round_trip(line_db: LineDB, tmp_path):
    """What the History view and the Recorder use, on the server: record with a
    kept image, query, count, counts, bundles, get, image_path, export_csv."""
    with open_history(line_db.dsn(), image_dir=tmp_path / "share") as db:
        assert isinstance(db, PgHistory) and db.role == "station"
        image = np.full((8, 8, 3), 200, np.uint8)
        fail_id = db.record(**ROW, verdict="FAIL", image_ref="a.png", station="st-1", image=image, time=1_700_000_000)
        pass_id = db.record(**ROW, verdict="PASS", image_ref="b.png", station="st-1", time=1_700_000_001)
        assert db.count() == 2 and db.count(verdict="FAIL") == 1
        assert db.counts_by_verdict() == {"PASS": 1, "REVIEW": 0, "FAIL": 1, "INVALID": 0}
        assert [r.id for r in db.query()] == [pass_id, fail_id]
        assert db.bundles() == ["washers"]
        rec = db.get(fail_id)
        assert rec is not None and rec.time == "2023-11-14T22:13:20.000Z" and rec.verdict == "FAIL"
        kept = db.image_path(rec)
        assert kept is not None and kept.is_file() and kept.is_relative_to(tmp_path / "share")
        assert db.image_path(db.get(pass_id)) is None
        later = db.attach_image(pass_id, image)  # the live line keeps an image after its row (never an UPDATE)
        assert later is not None and db.image_path(db.get(pass_id)) == later
        out = tmp_path / "x.csv"
        assert db.export_csv(out) == 2
        rows = list(csv.reader(out.open(encoding="utf-8")))
        assert rows[0][:4] == ["id", "time", "epoch", "station"] and [r[5] for r in rows[1:]] == ["a.png", "b.png"]


def test_hostile_names_are_data_not_sql(line_db: LineDB, tmp_path):
    """Station names, paths and notes full of quotes, semicolons and unicode
    are stored and found as they are (every value is a bind parameter)."""
    nasty = ["'; DROP TABLE inspections; --", 'st"1\\; SELECT 1', "Prüfstand 3 — «Nacht» ✓", "50%_off\\", "a\tb"]
    with open_history(line_db.dsn()) as db:
        for name in nasty:
            db.record(**{**ROW, "source": name}, verdict="PASS", station=name, image_ref=f"/parts/{name}.png",
                      note=name)
    with open_history(line_db.dsn(ENGINEER)) as eng:
        assert sorted(eng.stations()) == sorted(nasty)
        for name in nasty:
            (rec,) = eng.query(station=name)
            assert (rec.station, rec.image_ref, rec.note) == (name, f"/parts/{name}.png", name)
            assert eng.count(source_contains=name) == 1  # LIKE wildcards in a name match only themselves
    with line_db.owner() as conn:
        assert conn.execute("SELECT to_regclass('inspections') IS NOT NULL").fetchone()[0]


@pytest.mark.fault("history", "a station's login tries to read another station's rows, update, delete, "
                   "truncate, drop or override", "refused by the server; it reads and records only its own rows")
def test_station_role_reads_only_its_own_rows_and_cannot_change_any(line_db: LineDB):
    with open_history(line_db.dsn(STATIONS[0])) as a, open_history(line_db.dsn(STATIONS[1])) as b:
        a_id = a.record(**ROW, verdict="FAIL", station="A")
        b.record(**ROW, verdict="PASS", station="B")
        b_id = b.record(**ROW, verdict="PASS", station="B2")
        assert [r.station for r in a.query()] == ["A"] and a.count() == 1
        assert b.get(a_id) is None  # another station's row is not there for it
        with pytest.raises(KeyError):
            a.set_override(b_id, "FAIL", "mallory")  # nor can it decide on one
        a.set_override(a_id, "PASS", "operator 7")  # its own: yes, who and when kept
        assert a.get(a_id).override_operator == "operator 7"
    with psycopg.connect(line_db.dsn(STATIONS[0]), autocommit=True) as conn:
        for stmt in ("UPDATE inspections SET verdict = 'PASS'", "DELETE FROM inspections", "TRUNCATE inspections",
                     "DROP TABLE inspections", "ALTER TABLE inspections DISABLE ROW LEVEL SECURITY",
                     "INSERT INTO inspections (uid, login, time, epoch, verdict)"
                     " VALUES ('x', 'station_b', '', 0, 'PASS')",
                     f"INSERT INTO overrides (inspection_id, verdict) VALUES ({b_id}, 'FAIL')",
                     f"INSERT INTO overrides (inspection_id, verdict, login) VALUES ({a_id}, 'FAIL', 'engineer_1')",
                     "UPDATE overrides SET verdict = 'FAIL'", "DELETE FROM overrides",
                     "INSERT INTO bundle_approvals (bundle, bundle_id, approved_by) VALUES ('x', 'x', 'x')",
                     "DELETE FROM inspector_schema", "CREATE TABLE mine (x int)"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(stmt)
        assert conn.execute("SELECT COUNT(*) FROM inspections").fetchone()[0] == 1
    with open_history(line_db.dsn(ENGINEER)) as eng:
        assert eng.count() == 3 and eng.get(b_id).override_verdict is None  # nothing was changed or removed


def test_engineer_reads_every_station_and_overrides_with_who_and_when(line_db: LineDB):
    with open_history(line_db.dsn(STATIONS[0])) as a, open_history(line_db.dsn(STATIONS[1])) as b:
        a_id = a.record(**ROW, verdict="FAIL", station="A")
        b.record(**ROW, verdict="PASS", station="B")
    with open_history(line_db.dsn(ENGINEER)) as eng:
        assert eng.role == "engineer" and eng.count() == 2
        eng.set_override(a_id, "PASS", "Q. Engineer")
        rec = eng.get(a_id)
        assert (rec.override_verdict, rec.override_operator, rec.effective_verdict) == ("PASS", "Q. Engineer", "PASS")
        assert rec.override_time and rec.override_time.endswith("Z")
        with pytest.raises(KeyError):
            eng.set_override(10**9, "PASS", "x")
        eng.set_override(a_id, None, "Q. Engineer")  # cleared: the model's verdict again, the decisions kept
        assert eng.get(a_id).effective_verdict == "FAIL"
        with psycopg.connect(line_db.dsn(ENGINEER), autocommit=True) as conn:
            assert conn.execute("SELECT login, verdict FROM overrides WHERE inspection_id = %s ORDER BY id",
                                (a_id,)).fetchall() == [(ENGINEER, "PASS"), (ENGINEER, None)]
            for stmt in ("UPDATE inspections SET verdict = 'PASS'", "DELETE FROM inspections",
                         "UPDATE overrides SET verdict = 'FAIL'", "DELETE FROM overrides"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(stmt)


@pytest.mark.fault("history", "a station is pointed at the line's server as its owner (a superuser)",
                   "refused: a station records with a login of its own")
def test_the_owner_does_not_record(line_db: LineDB):
    with open_history(line_db.dsn(OWNER)) as db:
        assert db.role == "owner"
        with pytest.raises(HistoryError, match="login of its own"):
            db.record(**ROW, verdict="PASS")


@pytest.mark.fault("history", "the line's database has no Inspector schema, or an older one",
                   "refused with the command that creates or migrates it")
def test_schema_missing_older_newer(pg_server):
    fresh = make_line_db(pg_server)
    with fresh.owner() as conn:
        assert current_version(conn) == SCHEMA_VERSION
        assert migrate(conn) == (SCHEMA_VERSION, SCHEMA_VERSION)  # a second run has nothing to do
        conn.execute("INSERT INTO inspector_schema (version, name) VALUES (%s, 'future')", (SCHEMA_VERSION + 1,))
    with pytest.raises(HistoryError, match="newer Inspector"):
        open_history(fresh.dsn())
    with psycopg.connect(pg_server.dsn(OWNER), autocommit=True) as conn:
        conn.execute("CREATE DATABASE empty_line")
    with pytest.raises(HistoryError, match="inspector history init"):
        open_history(pg_server.dsn(STATIONS[0], "empty_line"))


def test_migrating_from_schema_2_keeps_the_overrides(pg_server):
    """Schema 2 kept overrides in columns an engineer updated; 3 moves them to rows of their own."""
    name = "line_schema2"
    with psycopg.connect(pg_server.dsn(OWNER), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    with psycopg.connect(pg_server.dsn(OWNER, name), autocommit=True) as conn:
        assert migrate(conn, target=2) == (0, 2)
        conn.execute("INSERT INTO inspections (uid, login, time, epoch, verdict, override_verdict, override_operator,"
                     " override_login, override_time) VALUES ('u', 'station_a', '2024-01-01T00:00:00.000Z', 1704067200,"
                     " 'FAIL', 'PASS', 'old operator', 'engineer_1', '2024-01-02T00:00:00Z')")
    with pytest.raises(HistoryError, match="inspector history migrate"):
        open_history(pg_server.dsn(STATIONS[0], name))
    with psycopg.connect(pg_server.dsn(OWNER, name), autocommit=True) as conn:
        assert migrate(conn) == (2, SCHEMA_VERSION)
    with open_history(pg_server.dsn(ENGINEER, name)) as eng:
        (rec,) = eng.query()
        assert (rec.verdict, rec.override_verdict, rec.override_operator, rec.override_time) == \
            ("FAIL", "PASS", "old operator", "2024-01-02T00:00:00.000Z")


def test_replayed_verdict_is_recorded_once(line_db: LineDB):
    """A verdict whose commit answer was lost is sent again with its uid: one row."""
    with open_history(line_db.dsn()) as db:
        first = db.record(**ROW, verdict="FAIL", uid="u-1")
        again = db.record_many([{**ROW, "verdict": "FAIL", "uid": "u-1"}, {**ROW, "verdict": "PASS", "uid": "u-2"}])
        assert again[0] == first and db.count() == 2


@pytest.mark.fault("history", "the line's server is down when a station starts and while it records",
                   "verdicts go to the station's spool, one notice, written once each when the server is back")
def test_recorder_spools_while_the_server_is_down_and_writes_each_verdict_once(pg_server, tmp_path, monkeypatch):
    monkeypatch.setenv("INSPECTOR_DATA_DIR", str(tmp_path / "data"))
    db = make_line_db(pg_server)
    states: list[tuple[str, str]] = []
    pg_server.stop("immediate")
    try:
        rec = Recorder(path=db.dsn(), on_change=lambda s, m, n: states.append((s, m)), retry_s=0.2,
                       start_retrying=False)
        assert rec.state == "spooling" and "cannot be reached" in rec.message and "spool" in rec.message
        for i in range(5):
            assert rec.record(**ROW, verdict="PASS", image_ref=f"{i}.png").spooled
        assert rec.pending == 5 and rec.spool.files[0].is_relative_to(tmp_path / "data")
        assert len(set(states)) == 1  # one notice, not one per verdict
    finally:
        pg_server.start()
    assert rec.flush_until(10)
    assert rec.state == "ok" and rec.written_from_spool == 5
    rec.record(**ROW, verdict="FAIL", image_ref="6.png")
    rec.close()
    with open_history(db.dsn(ENGINEER)) as eng:
        refs = sorted(r.image_ref for r in eng.query())
    assert refs == ["0.png", "1.png", "2.png", "3.png", "4.png", "6.png"]


def test_line_summaries_and_the_approved_bundle(line_db: LineDB):
    base = 1_700_000_000.0  # a Tuesday, 22:13 UTC
    with open_history(line_db.dsn(STATIONS[0])) as a, open_history(line_db.dsn(STATIONS[1])) as b:
        for k in range(6):
            a.record(**ROW, verdict="FAIL" if k < 2 else "PASS", station="A", time=base + k * 60)
        for k in range(4):
            b.record(**{**ROW, "bundle_id": "b2"}, verdict="INVALID" if k == 0 else "PASS", station="B",
                     time=base + 3600 + k)
    with open_history(line_db.dsn(ENGINEER)) as eng:
        by_station = {c.station: c for c in eng.counts_by_station()}
        assert by_station["A"].by_verdict["FAIL"] == 2 and round(by_station["A"].yield_pct, 1) == 66.7
        assert by_station["B"].parts == 3 and by_station["B"].yield_pct == 100.0
        shifts = eng.counts_by_shift(offset_s=0)  # UTC: A at 22:13 is the night shift, B at 23:13 too
        assert {(c.station, c.shift, c.total) for c in shifts} == {("A", "night", 6), ("B", "night", 4)}
        trend = eng.fail_trend(bucket_s=3600, station="A")
        assert list(trend) == ["A"] and sum(n for _b, n, _f in trend["A"]) == 6
        assert sum(f for _b, _n, f in trend["A"]) == 2
        assert all(sb.approved is None for sb in eng.station_bundles())
        eng.approve_bundle("washers", "b1", "ab" * 32, "Q. Engineer")
        found = {sb.station: sb for sb in eng.station_bundles()}
        assert found["A"].approved and found["A"].sha256 == "ab" * 32
        assert found["B"].approved is False and found["B"].bundle_id == "b2"
    with open_history(line_db.dsn(STATIONS[0])) as a, pytest.raises(HistoryError, match="may not"):
        a.approve_bundle("x", "x", "", "mallory")


def test_a_dropped_connection_is_opened_again_on_the_next_call(line_db: LineDB):
    with open_history(line_db.dsn()) as db:
        db.record(**ROW, verdict="PASS")
        with line_db.owner() as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (STATIONS[0],))
        time.sleep(0.2)
        db.record(**ROW, verdict="PASS")  # the idle connection was gone: a new one, no verdict spooled
        assert db.count() == 2


def test_defect_types_are_recorded_filtered_and_listed_on_the_server(line_db: LineDB, tmp_path):
    """Schema 4: a verdict's defect type as the SQLite history keeps it; the
    History view's type and "Overridden only" filters on the server."""
    with open_history(line_db.dsn()) as db:
        scratch = db.record(**ROW, verdict="FAIL", defect_type="scratch", time=1_700_000_000)
        dent = db.record(**ROW, verdict="FAIL", defect_type="dent", time=1_700_000_001)
        plain = db.record(**ROW, verdict="PASS", time=1_700_000_002)
        assert [(r.id, r.defect_type) for r in db.query()] == [(plain, None), (dent, "dent"), (scratch, "scratch")]
        assert db.defect_types() == ["dent", "scratch"]
        assert [r.id for r in db.query(defect_type="scratch")] == [scratch]
        assert db.count(defect_type="dent") == 1 and db.count(defect_type="crack") == 0
        assert db.counts_by_verdict(defect_type="scratch") == {"PASS": 0, "REVIEW": 0, "FAIL": 1, "INVALID": 0}
        db.set_override(dent, "PASS", "operator 7")  # a station overrides its own verdict
        assert [r.id for r in db.query(overridden=True)] == [dent]
        assert db.count(overridden=False) == 2 and db.count(overridden=True, defect_type="scratch") == 0
        out = tmp_path / "types.csv"
        assert db.export_csv(out, defect_type="dent") == 1
        header, row = list(csv.reader(out.open(encoding="utf-8")))
        assert row[header.index("defect_type")] == "dent" and row[header.index("override_verdict")] == "PASS"
        db.set_override(dent, None, "operator 7")  # cleared: the override in force has no verdict
        assert db.count(overridden=True) == 0 and db.count(overridden=False) == 3
    with open_history(line_db.dsn(STATIONS[1])) as other:  # row-level security covers the types too
        assert other.defect_types() == [] and other.count(defect_type="scratch") == 0
    with open_history(line_db.dsn(ENGINEER)) as eng:
        assert eng.defect_types() == ["dent", "scratch"] and eng.get(scratch).defect_type == "scratch"


def test_migrating_from_schema_3_keeps_the_rows_and_adds_defect_types(pg_server):
    name = f"line_schema3_{os.getpid()}"
    with psycopg.connect(pg_server.dsn(OWNER), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    with psycopg.connect(pg_server.dsn(OWNER, name), autocommit=True) as conn:
        assert migrate(conn, target=3) == (0, 3)
        for st in STATIONS:
            add_login(conn, st, "station")
        conn.execute("INSERT INTO inspections (uid, login, time, epoch, verdict, image_ref) VALUES"
                     " ('old', 'station_a', '2024-01-01T00:00:00.000Z', 1704067200, 'FAIL', 'old.png')")
    with pytest.raises(HistoryError, match="inspector history migrate"):
        open_history(pg_server.dsn(STATIONS[0], name))
    with psycopg.connect(pg_server.dsn(OWNER, name), autocommit=True) as conn:
        assert migrate(conn) == (3, SCHEMA_VERSION) and SCHEMA_VERSION >= 4
    with open_history(pg_server.dsn(STATIONS[0], name)) as db:
        (old,) = db.query()
        assert (old.image_ref, old.verdict, old.defect_type) == ("old.png", "FAIL", None)
        new = db.record(**ROW, verdict="FAIL", defect_type="scratch")  # a station inserts the new column
        assert db.get(new).defect_type == "scratch" and db.defect_types() == ["scratch"]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_spooled_verdict_keeps_its_defect_type_through_the_replay(backend, request, tmp_path):
    """A verdict spooled with its type is written with it; a spool line of an
    Inspector that did not spool types replays with none."""
    if backend == "sqlite":
        db: Any = HistoryDB(tmp_path / "history.sqlite3")
        spool = VerdictSpool(db.path, tmp_path / "fallback")
    else:
        line = make_line_db(request.getfixturevalue("pg_server"))
        db = open_history(line.dsn())
        spool = VerdictSpool.for_server("line", tmp_path / "spool")
    with db:
        spool.append({**ROW, "verdict": "FAIL", "image_ref": "new.png", "defect_type": "scratch", "time": 1_700_000_000})
        old_line = {"v": 1, "uid": "old-1", "row": {**ROW, "verdict": "FAIL", "image_ref": "old.png",
                                                    "time": 1_700_000_001}}
        with spool.files[0].open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(old_line) + "\n")
        rec = Recorder(db, spool=spool, start_retrying=False)
        assert rec.flush_until(10) and rec.written_from_spool == 2
        rec.close()
        assert {r.image_ref: r.defect_type for r in db.query()} == {"new.png": "scratch", "old.png": None}
        assert db.defect_types() == ["scratch"]
