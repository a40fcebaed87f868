"""The live line without Qt: what a headless station runs, the desktop app relays."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from inspection_core.data.images import list_images, read_image
from inspection_core.history import HistoryDB
from inspection_core.inference import Inspector
from inspection_core.sources import SourceError
from inspection_core.sources.video import VideoFileSource
from inspection_core.types import Threshold
from inspection_core.usecases.live import LiveLine, line_source


class Events:
    def __init__(self) -> None:
        self.kinds: list[str] = []
        self.results: list = []
        self.messages: list[str] = []

    def __call__(self, kind: str, payload: object) -> None:
        self.kinds.append(kind)
        if kind == "result":
            self.results.append(payload)
        elif kind in ("failed", "frame_error"):
            self.messages.append(str(payload))


def test_a_folder_line_scores_records_and_keeps_every_part(tiny_bundle: Path, demo_data: Path, tmp_path: Path) -> None:
    folder = demo_data / "test"
    images = list_images(folder, recursive=True)
    insp = Inspector(tiny_bundle, device="cpu")
    scores = [insp.predict(read_image(p)).score for p in images]
    insp.threshold = Threshold(float(np.median(scores)))  # about half the parts FAIL
    events = Events()
    with HistoryDB(tmp_path / "h.sqlite3", image_dir=tmp_path / "kept") as db:
        line = LiveLine(str(folder), insp, db, station="line 1", listener=events)  # a folder: lossless
        assert line.lossless and line_source(str(folder))[1].lossless
        assert line.run(timeout_s=60)
        assert "ready" in events.kinds and "state" in events.kinds
        assert events.kinds[-2:] == ["ended", "stopped"]
        assert len(events.results) == len(images) == db.count() == line.frames_scored
        rows = db.query(limit=1000)
        failed = [r for r in rows if r.verdict == "FAIL"]
        assert failed and all(db.image_path(r) is not None for r in failed), "every FAIL keeps its image"
        assert not any(r.stored_image for r in rows if r.verdict == "PASS")
        assert line.images_kept == len(failed) and {r.station for r in rows} == {"line 1"}
        assert sorted(r.score for r in rows) == pytest.approx(sorted(scores), rel=1e-6)  # the Inspector's own scores


def test_the_newest_frame_wins_when_scoring_is_slower(tiny_bundle: Path, demo_data: Path, tmp_path: Path) -> None:
    frames = [cv2.resize(read_image(p), (64, 64)) for p in list_images(demo_data / "test" / "good")] * 10
    video = tmp_path / "fast.avi"
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (64, 64))
    for f in frames:
        vw.write(f)
    vw.release()
    events = Events()
    line = LiveLine(VideoFileSource(video), str(tiny_bundle), lossless=False, device="cpu", listener=events)
    assert line.run(timeout_s=60)
    n = len(frames)
    assert line.frames_read == n and line.frames_dropped > 0
    assert line.frames_scored + line.frames_dropped + line.frames_skipped == n
    idx = [r.frame_index for r in events.results]
    assert idx == sorted(idx) and idx[-1] == n - 1  # in order, and the last frame is never dropped


def test_triggered_mode_scores_one_part_per_trigger(tiny_bundle: Path, demo_data: Path) -> None:
    import time

    events = Events()
    line = LiveLine(str(demo_data / "test" / "good"), str(tiny_bundle), mode="triggered", device="cpu",
                    listener=events).start()
    try:
        deadline = time.monotonic() + 30
        while "ready" not in events.kinds and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
        assert events.results == []
        for expected in (1, 2):
            line.trigger()
            while len(events.results) < expected and time.monotonic() < deadline:
                time.sleep(0.02)
        time.sleep(0.2)
        assert [Path(r.frame_ref).name for r in events.results] == ["000.png", "001.png"]
    finally:
        assert line.stop()


@pytest.mark.fault("live line", "a live line whose source cannot open; a mistyped source",
                   "'failed: cannot open source …'; a mistyped path is a SourceError at once")
def test_a_line_that_cannot_start_says_why(tiny_bundle: Path, tmp_path: Path) -> None:
    events = Events()
    line = LiveLine(f"watch:{tmp_path / 'gone'}", str(tiny_bundle), listener=events)
    line.run(timeout_s=30)
    assert any("cannot open source" in m for m in events.messages) and events.kinds[-1] == "stopped"
    with pytest.raises(SourceError, match="no such file"):
        LiveLine(str(tmp_path / "typo"), str(tiny_bundle))  # told at once, not by a thread


# --------------------------------------------------------------------------- a verdict shown is a verdict recorded (issue 13)


def _parts(tmp_path: Path, demo_data: Path, n: int = 8) -> Path:
    folder = tmp_path / "parts"
    folder.mkdir()
    for i, p in enumerate(list_images(demo_data / "test", recursive=True)[:n]):
        (folder / f"{i:03d}.png").write_bytes(p.read_bytes())
    return folder


class _Recording(Events):
    def __init__(self) -> None:
        super().__init__()
        self.recording: list[tuple] = []

    def __call__(self, kind: str, payload: object) -> None:
        super().__call__(kind, payload)
        if kind == "recording":
            self.recording.append(payload)


@pytest.mark.fault("live line", "the history locked by another writer during a run",
                   "every result shown is committed or spooled ('recording: spooling' at once); all in the database after")
def test_a_line_spools_while_the_history_is_locked(tiny_bundle: Path, demo_data: Path, tmp_path: Path) -> None:
    import sqlite3
    import threading
    import time

    folder = _parts(tmp_path, demo_data)
    path = tmp_path / "h.sqlite3"
    events = _Recording()
    with HistoryDB(path) as db:
        con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        con.execute("BEGIN IMMEDIATE")  # another writer holds the lock while the line runs
        released = threading.Timer(1.0, lambda: con.execute("ROLLBACK"))
        from inspection_core.history import Recorder

        rec = Recorder(db, busy_timeout_s=0.2, retry_s=0.2)
        line = LiveLine(str(folder), Inspector(tiny_bundle, device="cpu"), rec, listener=events)
        released.start()
        assert line.run(timeout_s=60)
        released.join()
        assert len(events.results) == 8 and any(r.spooled for r in events.results) and "failed" not in events.kinds
        assert events.recording[0][0] == "spooling" and "lock" in events.recording[0][1]
        deadline = time.monotonic() + 5
        while db.count() < 8 and time.monotonic() < deadline:
            rec.flush()
            time.sleep(0.1)
        assert sorted(Path(r.image_ref).name for r in db.query()) == [f"{i:03d}.png" for i in range(8)]
        rec.close()
        con.close()


@pytest.mark.fault("live line", "a verdict that can be recorded nowhere (history and spool unwritable)",
                   "not shown as a result: 'failed' names the part and its verdict, the line stops")
def test_a_verdict_recorded_nowhere_is_never_shown(tiny_bundle: Path, demo_data: Path, tmp_path: Path) -> None:
    from inspection_core.history import HistoryError, Recorder, VerdictSpool

    folder = _parts(tmp_path, demo_data, 4)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the history's folder would be")
    path = blocked / "h.sqlite3"
    rec = Recorder(path=path, spool=VerdictSpool(path, fallback_dir=blocked / "spool"), retry_s=60,
                   open_error=HistoryError(path, "the disk is full", "full"))
    events = _Recording()
    line = LiveLine(str(folder), Inspector(tiny_bundle, device="cpu"), rec, listener=events)
    line.run(timeout_s=60)
    assert events.results == [] and events.kinds[-1] == "stopped"
    assert any("scored" in m and "could not be recorded" in m and "the line is stopped" in m for m in events.messages)
    rec.close()


@pytest.mark.fault("live line", "on_history_failure = \'stop\' and the history cannot be written",
                   "the first verdict is spooled and shown, then the line stops saying why")
def test_a_line_set_to_stop_stops_at_the_first_spooled_verdict(tiny_bundle: Path, demo_data: Path,
                                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from inspection_core.history import HistoryError, Recorder

    monkeypatch.setenv("INSPECTOR_DATA_DIR", str(tmp_path / "data"))
    folder = _parts(tmp_path, demo_data, 6)
    path = tmp_path / "h.sqlite3"
    rec = Recorder(path=path, retry_s=60, open_error=HistoryError(path, "the database is read-only", "readonly"))
    events = _Recording()
    line = LiveLine(str(folder), Inspector(tiny_bundle, device="cpu"), rec, listener=events, on_unrecorded="stop")
    line.run(timeout_s=60)
    assert len(events.results) == 1 and events.results[0].spooled and rec.pending == 1
    assert any("the line is stopped because the history cannot be written" in m for m in events.messages)
    assert events.recording and events.recording[0][0] == "spooling"
    rec.close()
