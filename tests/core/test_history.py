"""Inspection history on a real SQLite file: recording, filters, paging, overrides,
CSV export, kept images, crash safety, speed at 100,000 rows, corrupt files."""

from __future__ import annotations

import csv
import datetime as dt
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspection_core.history import (
    SCHEMA_VERSION,
    HistoryDB,
    HistoryError,
    default_history_path,
)
from inspection_core.types import Verdict

REPO = Path(__file__).resolve().parents[2]
T0 = dt.datetime(2024, 5, 1, 8, 0, 0, tzinfo=dt.timezone.utc).timestamp()


def _fill(db: HistoryDB) -> list[int]:
    """Six inspections one minute apart over two bundles and two sources."""
    rows = [
        ("PASS", 0.1, "disc-v1", "camera:0", "camera:0#frame=1"),
        ("FAIL", 0.9, "disc-v1", "camera:0", "camera:0#frame=2"),
        ("REVIEW", 0.5, "disc-v2", "line2.mp4", "line2.mp4#frame=7"),
        ("PASS", 0.2, "disc-v2", "/data/in", "/data/in/part_0004.png"),
        ("FAIL", 0.8, "disc-v2", "/data/in", "/data/in/part_0005.png"),
        ("PASS", 0.15, "disc-v1", "camera:0", "camera:0#frame=9"),
    ]
    return [
        db.record(score=s, verdict=v, threshold_high=0.6, threshold_low=0.4, bundle=b, bundle_id="ab12",
                  source=src, image_ref=ref, station="st1", latency_ms=12.5, time=T0 + 60 * i)
        for i, (v, s, b, src, ref) in enumerate(rows)
    ]  # fmt: skip


def test_record_and_query_round_trip(tmp_path: Path) -> None:
    with HistoryDB(tmp_path / "h.sqlite3") as db:
        ids = _fill(db)
        recs = db.query()
        assert [r.id for r in recs] == ids[::-1]  # newest first
        first = db.query(newest_first=False)[0]
        assert first.id == ids[0] and first.verdict == "PASS" and first.score == pytest.approx(0.1)
        assert first.time == "2024-05-01T08:00:00.000Z" and first.epoch == pytest.approx(T0)
        assert (first.bundle, first.bundle_id, first.station) == ("disc-v1", "ab12", "st1")
        assert (first.threshold_high, first.threshold_low, first.latency_ms) == (0.6, 0.4, 12.5)
        assert first.override_verdict is None and first.stored_image is None
        assert db.get(ids[1]).verdict == "FAIL" and db.get(10_000) is None

    with HistoryDB(tmp_path / "h.sqlite3") as db:  # reopened: still there
        assert db.count() == 6
        assert db.bundles() == ["disc-v1", "disc-v2"]


def test_filters_counts_and_paging(tmp_path: Path) -> None:
    with HistoryDB(tmp_path / "h.sqlite3") as db:
        ids = _fill(db)
        assert db.count(verdict="FAIL") == 2
        assert db.count(verdict=Verdict.REVIEW) == 1
        assert {r.id for r in db.query(verdict=["FAIL", "REVIEW"])} == {ids[1], ids[2], ids[4]}
        assert db.count(bundle="disc-v2") == 3
        assert db.count(bundle="disc-v2", verdict="PASS") == 1
        # since inclusive, until exclusive; datetime, epoch and ISO strings alike
        since = dt.datetime.fromtimestamp(T0 + 60, tz=dt.timezone.utc)
        assert [r.id for r in db.query(since=since, until=T0 + 180, newest_first=False)] == ids[1:3]
        assert db.count(since="2024-05-01T08:04:00Z") == 2
        assert db.count(source_contains="PART_000") == 2  # matches image_ref, case-insensitive
        assert db.count(source_contains="camera") == 3
        assert db.count(source_contains="100%") == 0  # LIKE wildcards are escaped
        assert db.counts_by_verdict() == {"PASS": 3, "REVIEW": 1, "FAIL": 2, "INVALID": 0}
        assert db.counts_by_verdict(bundle="disc-v1") == {"PASS": 2, "REVIEW": 0, "FAIL": 1, "INVALID": 0}
        pages = [db.query(limit=4, offset=0), db.query(limit=4, offset=4), db.query(limit=4, offset=8)]
        assert [len(p) for p in pages] == [4, 2, 0]
        assert [r.id for p in pages for r in p] == ids[::-1]
        with pytest.raises(ValueError, match="unknown verdict"):
            db.count(verdict="MAYBE")


def test_override(tmp_path: Path) -> None:
    with HistoryDB(tmp_path / "h.sqlite3") as db:
        ids = _fill(db)
        db.set_override(ids[1], "PASS", "anna")
        rec = db.get(ids[1])
        assert (rec.verdict, rec.override_verdict, rec.override_operator) == ("FAIL", "PASS", "anna")
        assert rec.effective_verdict == "PASS" and rec.override_time.endswith("Z")
        db.set_override(ids[1], None, "anna")
        assert db.get(ids[1]).override_verdict is None and db.get(ids[1]).effective_verdict == "FAIL"
        with pytest.raises(KeyError):
            db.set_override(99_999, "PASS", "anna")
        with pytest.raises(ValueError):
            db.set_override(ids[0], "OK", "anna")


def test_export_csv(tmp_path: Path) -> None:
    out = tmp_path / "export" / "fails.csv"
    out.parent.mkdir()
    with HistoryDB(tmp_path / "h.sqlite3") as db:
        ids = _fill(db)
        db.set_override(ids[4], "PASS", "bo")
        n = db.export_csv(out, verdict="FAIL")
        assert n == 2
        assert db.export_csv(tmp_path / "all.csv") == 6
    with open(out, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["id"]) for r in rows] == [ids[1], ids[4]]  # oldest first
    assert rows[1]["image_ref"] == "/data/in/part_0005.png"
    assert rows[1]["override_verdict"] == "PASS" and rows[1]["override_operator"] == "bo"
    assert float(rows[0]["score"]) == pytest.approx(0.9)
    assert sorted(p.name for p in out.parent.iterdir()) == ["fails.csv"]  # no temp file left


def test_fail_and_review_images_kept_pass_not(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
    images = tmp_path / "images"
    with HistoryDB(tmp_path / "h.sqlite3", image_dir=images) as db:
        when = dt.datetime(2024, 5, 1, 23, 59, tzinfo=dt.timezone.utc)
        f = db.record(score=0.9, verdict="FAIL", threshold_high=0.5, image=img, time=when)
        gray = img[:, :, 0]
        r = db.record(score=0.4, verdict=Verdict.REVIEW, threshold_high=0.5, threshold_low=0.3, image=gray)
        p = db.record(score=0.1, verdict="PASS", threshold_high=0.5, image=img)
        rec_f, rec_r, rec_p = db.get(f), db.get(r), db.get(p)
        assert rec_f.stored_image == f"2024-05-01/{f}_FAIL.png"
        assert np.array_equal(cv2.imread(str(db.image_path(rec_f)), cv2.IMREAD_UNCHANGED), img)
        assert rec_r.stored_image.endswith(f"/{r}_REVIEW.png") and db.image_path(rec_r).is_file()
        assert rec_p.stored_image is None and db.image_path(rec_p) is None
    kept = sorted(x.name for x in images.rglob("*") if x.is_file())
    assert kept == sorted([f"{f}_FAIL.png", f"{r}_REVIEW.png"])

    with HistoryDB(tmp_path / "h2.sqlite3") as db:  # no image folder: nothing kept, still recorded
        i = db.record(score=0.9, verdict="FAIL", threshold_high=0.5, image=img)
        assert db.get(i).stored_image is None


def test_image_attached_after_the_row_is_committed(tmp_path: Path) -> None:
    """The live view's order: commit the row, then keep the image from another thread."""
    img = np.random.default_rng(1).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    with HistoryDB(tmp_path / "h.sqlite3", image_dir=tmp_path / "images") as db:
        assert db.keeps_image_for("FAIL") and db.keeps_image_for(Verdict.REVIEW) and not db.keeps_image_for("PASS")
        when = dt.datetime(2024, 5, 2, 10, 0, tzinfo=dt.timezone.utc)
        rid = db.record(score=0.9, verdict="FAIL", threshold_high=0.5, time=when)
        assert db.get(rid).stored_image is None  # committed, image not yet there
        out: list = []
        t = threading.Thread(target=lambda: out.append(db.attach_image(rid, img)))
        t.start()
        t.join()
        rec = db.get(rid)
        assert out == [tmp_path / "images" / "2024-05-02" / f"{rid}_FAIL.png"] and rec.stored_image == f"2024-05-02/{rid}_FAIL.png"
        assert np.array_equal(cv2.imread(str(db.image_path(rec)), cv2.IMREAD_UNCHANGED), img)
        with pytest.raises(HistoryError, match="no inspection with id 999"):
            db.attach_image(999, img)
    with HistoryDB(tmp_path / "h.sqlite3") as db:  # no image folder: nothing to keep
        assert not db.keeps_image_for("FAIL") and db.attach_image(rid, img) is None


def test_100k_rows_page_query_is_fast(tmp_path: Path) -> None:
    verdicts = ["PASS"] * 8 + ["REVIEW", "FAIL"]
    rows = (
        dict(score=i % 97 / 97, verdict=verdicts[i % 10], threshold_high=0.9, bundle=f"b{i % 3}",
             source="camera:0", image_ref=f"camera:0#frame={i}", time=T0 + i)
        for i in range(100_000)
    )  # fmt: skip
    with HistoryDB(tmp_path / "h.sqlite3") as db:
        ids = db.record_many(rows)
        assert len(ids) == 100_000
        t = time.perf_counter()
        page = db.query(verdict="FAIL", bundle="b1", since=T0 + 50_000, limit=200, offset=1000)
        n = db.count(verdict="FAIL", bundle="b1", since=T0 + 50_000)
        elapsed = time.perf_counter() - t
        # i % 10 == 9 and i % 3 == 1 <=> i % 30 == 19, for i in [50000, 100000)
        assert n == sum(1 for i in range(50_000, 100_000) if i % 30 == 19)
        assert len(page) == 200 and all(r.verdict == "FAIL" and r.bundle == "b1" for r in page)
        assert page[0].epoch > page[-1].epoch
        assert elapsed < 0.2, f"filtered page + count took {elapsed:.3f} s on 100,000 rows"
        assert db.count() == 100_000


@pytest.mark.fault("history", "the process dies right after record() (no close, no checkpoint)",
                   "the committed row is in the database")
def test_recorded_row_survives_a_crash(tmp_path: Path) -> None:
    db_path = tmp_path / "h.sqlite3"
    script = textwrap.dedent(
        f"""
        import os, sys
        from inspection_core.history import HistoryDB
        db = HistoryDB({str(db_path)!r})
        i = db.record(score=0.77, verdict="FAIL", threshold_high=0.5, image_ref="crash.png")
        sys.stdout.write(str(i)); sys.stdout.flush()
        os._exit(0)  # no close(), no checkpoint: as if the app died here
        """
    )
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    row_id = int(proc.stdout)
    with HistoryDB(db_path) as db:
        rec = db.get(row_id)
        assert rec is not None and rec.verdict == "FAIL" and rec.image_ref == "crash.png"


def test_worker_thread_records_while_main_thread_reads(tmp_path: Path) -> None:
    errors: list[BaseException] = []
    with HistoryDB(tmp_path / "h.sqlite3") as db:

        def worker() -> None:
            try:
                for i in range(200):
                    db.record(score=i / 200, verdict="PASS", threshold_high=0.5)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        th = threading.Thread(target=worker)
        th.start()
        while th.is_alive():
            db.query(limit=50)
            db.count(verdict="PASS")
            time.sleep(0.002)  # a GUI refreshes now and then, not in a tight loop
        th.join()
        assert not errors and db.count() == 200


@pytest.mark.fault("history", "a history file that is not a database",
                   "HistoryError naming the file")
def test_corrupt_file_gives_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "broken.sqlite3"
    bad.write_bytes(b"this is not an sqlite database" * 200)
    with pytest.raises(HistoryError, match="broken.sqlite3") as info:
        HistoryDB(bad)
    assert info.value.path == bad


@pytest.mark.fault("history", "a history written by a newer Inspector",
                   "HistoryError 'written by a newer Inspector'")
def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    HistoryDB(path).close()
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    con.commit()
    con.close()
    with pytest.raises(HistoryError, match="newer"):
        HistoryDB(path)


def test_default_history_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("INSPECTOR_DATA_DIR", str(tmp_path / "data"))
    assert default_history_path().parent == tmp_path / "data"
    monkeypatch.delenv("INSPECTOR_DATA_DIR")
    if sys.platform.startswith("linux"):
        monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
        assert default_history_path().parent == tmp_path / "xdg" / "inspector"
        monkeypatch.delenv("XDG_DATA_HOME")
        assert default_history_path().parent == Path.home() / ".local" / "share" / "inspector"



# --------------------------------------------------------------------------- faults (issue 13)


def _record_one(db: HistoryDB, i: int = 0) -> int:
    return db.record(score=0.1 * i, verdict="PASS", threshold_high=0.5, image_ref=f"p{i}.png", time=T0 + i)


@pytest.mark.fault("history", "--record other.db: an SQLite file of another program",
                   "HistoryError 'is an SQLite database of another program (tables: …)'; the file is not touched")
def test_another_programs_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, amount REAL)")
    con.execute("INSERT INTO invoices (amount) VALUES (12.5)")
    con.commit()
    con.close()
    before = other.read_bytes()
    with pytest.raises(HistoryError, match=r"SQLite database of another program \(tables: invoices\)") as info:
        HistoryDB(other)
    assert info.value.kind == "foreign" and other.read_bytes() == before
    con = sqlite3.connect(other)
    con.execute("PRAGMA application_id=1234")  # another program that marks its files
    con.close()
    HistoryDB(tmp_path / "ours.sqlite3").close()
    with sqlite3.connect(tmp_path / "ours.sqlite3") as c:
        assert c.execute("PRAGMA application_id").fetchone()[0] == 0x494E5350  # ours are marked "INSP"


@pytest.mark.fault("history", "thousands of verdicts (the WAL grew about 21 KB per verdict, to 4 MB)",
                   "the WAL stays under about 1 MB and is folded back on close")
def test_the_wal_stays_small(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    wal = Path(str(path) + "-wal")
    biggest = 0
    with HistoryDB(path) as db:
        for i in range(150):
            _record_one(db, i)
            if i % 10 == 0:
                biggest = max(biggest, wal.stat().st_size)
        assert db.count() == 150
    assert biggest < 1.2 * (1 << 20), f"WAL reached {biggest} bytes"
    assert not wal.exists() or wal.stat().st_size == 0


def _immutable(path: Path) -> bool:
    return subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0


@pytest.mark.fault("history", "an immutable (chattr +i) or read-only history file",
                   "HistoryError 'cannot be written: the database is read-only' at open, not after the first part")
def test_a_read_only_database_is_found_out_at_open(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    with HistoryDB(path) as db:
        _record_one(db)
    if os.geteuid() != 0:
        path.chmod(0o444)
        tmp_path.chmod(0o555)
        try:
            with pytest.raises(HistoryError, match="read-only") as info:
                HistoryDB(path)
            assert info.value.kind == "readonly"
        finally:
            tmp_path.chmod(0o755)
            path.chmod(0o644)
        return
    if not _immutable(path):
        pytest.skip("chattr +i is not available on this file system")
    try:
        with pytest.raises(HistoryError, match="cannot be written: the database is read-only") as info:
            HistoryDB(path)
        assert info.value.kind == "readonly"
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


_WRITER = """
import sys
from inspection_core.history import HistoryDB
db = HistoryDB(sys.argv[1])
for i in range(100):
    db.record(score=i / 100, verdict="PASS", threshold_high=0.5, station=sys.argv[2], image_ref=f"{sys.argv[2]}-{i}")
db.close()
"""


@pytest.mark.fault("history", "4 concurrent writers (3 processes and a thread) on one history",
                   "every verdict recorded once; the database passes integrity_check")
def test_concurrent_writers_all_land(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    HistoryDB(path).close()
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(path), f"w{k}"], env=env) for k in range(3)]
    with HistoryDB(path) as db:
        for i in range(100):
            db.record(score=0.5, verdict="FAIL", threshold_high=0.5, station="main", image_ref=f"main-{i}")
        assert [p.wait(60) for p in procs] == [0, 0, 0]
        assert db.count() == 400
        assert {s: n for s, n in db._select("SELECT station, COUNT(DISTINCT image_ref) FROM inspections GROUP BY station",
                                            [])} == {"main": 100, "w0": 100, "w1": 100, "w2": 100}
        assert db._select("PRAGMA integrity_check", []) == [("ok",)]
