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


def test_a_line_that_cannot_start_says_why(tiny_bundle: Path, tmp_path: Path) -> None:
    events = Events()
    line = LiveLine(f"watch:{tmp_path / 'gone'}", str(tiny_bundle), listener=events)
    line.run(timeout_s=30)
    assert any("cannot open source" in m for m in events.messages) and events.kinds[-1] == "stopped"
    with pytest.raises(SourceError, match="no such file"):
        LiveLine(str(tmp_path / "typo"), str(tiny_bundle))  # told at once, not by a thread
