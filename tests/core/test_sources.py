"""Image sources on real files: folder, video written with cv2.VideoWriter,
watched folder with real writers, a camera that does not exist, dispatch."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspection_core.sources import (
    CameraSource,
    FolderSource,
    SourceError,
    VideoFileSource,
    WatchedFolderSource,
    open_source,
)


def _png_bytes(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


def _noise(seed: int, shape: tuple[int, ...] = (48, 64, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _write_video(path: Path, n: int = 12, fps: float = 10.0) -> list[int]:
    """An MJPG video whose frame i is a flat gray of level 20 * i; returns the levels."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (32, 24))
    assert writer.isOpened(), "this OpenCV build cannot write MJPG .avi"
    levels = [20 * i for i in range(n)]
    for level in levels:
        writer.write(np.full((24, 32, 3), level, np.uint8))
    writer.release()
    return levels


# --------------------------------------------------------------------------- folder


@pytest.mark.fault("sources", "a corrupt file in an image folder",
                   "skipped, logged with its name, listed in skipped; the other images delivered")
def test_folder_source_skips_corrupt_file_and_reports_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    imgs = {name: _noise(i) for i, name in enumerate(["a.png", "c.png", "d.bmp"])}
    for name, img in imgs.items():
        cv2.imwrite(str(tmp_path / name), img)
    (tmp_path / "b_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (tmp_path / "notes.txt").write_text("not an image")
    with caplog.at_level(logging.WARNING), FolderSource(tmp_path) as src:
        assert src.total == 4 and src.state == "running" and not src.is_live and src.fps is None
        frames = list(src)
        assert src.state == "ended" and src.read() is None
    assert [Path(f.ref).name for f in frames] == ["a.png", "c.png", "d.bmp"]
    assert [f.index for f in frames] == [0, 1, 2]
    for f in frames:
        assert np.array_equal(f.image, imgs[Path(f.ref).name])
    assert [p.name for p, _ in src.skipped] == ["b_broken.png"]
    assert "b_broken.png" in caplog.text


def test_folder_source_missing_folder(tmp_path: Path) -> None:
    src = FolderSource(tmp_path / "nowhere")
    with pytest.raises(SourceError, match="nowhere"):
        src.open()
    assert src.state == "error" and "nowhere" in src.last_error


# --------------------------------------------------------------------------- video


def test_video_file_frames_refs_and_end(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    levels = _write_video(path)
    with VideoFileSource(path) as src:
        assert src.fps == pytest.approx(10.0) and src.frame_count == len(levels)
        frames = list(src)
        assert src.state == "ended" and src.read() is None
    assert len(frames) == len(levels)
    assert [f.ref for f in frames] == [f"clip.avi#frame={i}" for i in range(len(levels))]
    means = [float(f.image.mean()) for f in frames]
    assert means == pytest.approx(levels, abs=3)  # the right frames, in order
    assert frames[0].image.shape == (24, 32, 3)


def test_video_loop_and_realtime(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    _write_video(path, n=5, fps=25.0)
    with VideoFileSource(path, loop=True) as src:
        refs = [src.read().ref for _ in range(12)]
    assert refs[4:7] == ["clip.avi#frame=4", "clip.avi#frame=0", "clip.avi#frame=1"]

    with VideoFileSource(path, realtime=True) as src:
        t = time.monotonic()
        n = sum(1 for _ in src)
        elapsed = time.monotonic() - t
    assert n == 5 and elapsed >= 4 / 25.0 * 0.9  # paced to 25 fps, not as fast as decoding


@pytest.mark.fault("sources", "a missing or undecodable video file",
                   "SourceError naming the file")
def test_video_missing_or_undecodable_gives_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="missing.mp4.*not found"):
        VideoFileSource(tmp_path / "missing.mp4").open()
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(SourceError, match="junk.mp4"):
        VideoFileSource(junk).open()


# --------------------------------------------------------------------------- watched folder


def test_watched_folder_sees_new_files_not_old_ones(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "old.png"), _noise(1))
    new = _noise(2)
    with WatchedFolderSource(tmp_path, poll_interval=0.05, settle_time=0.15) as src:
        assert src.is_live and src.poll(0.3) is None and not src.finished  # old file ignored
        tmp = tmp_path / ".incoming.tmp"  # hidden temp name, then renamed into place
        tmp.write_bytes(_png_bytes(new))
        os.replace(tmp, tmp_path / "part_001.png")
        frame = src.poll(3.0)
        assert frame is not None and Path(frame.ref).name == "part_001.png"
        assert np.array_equal(frame.image, new) and frame.index == 0
        assert src.poll(0.3) is None  # delivered once only
        # the same name rewritten with new content counts as a new part
        time.sleep(0.01)
        (tmp_path / "part_001.png").write_bytes(_png_bytes(_noise(3)))
        again = src.poll(3.0)
        assert again is not None and np.array_equal(again.image, _noise(3))


@pytest.mark.fault("sources", "a file still being written into a watched folder",
                   "read only after its size and time settle; never half a file")
def test_watched_folder_waits_for_slow_writer(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    img = _noise(4, (96, 128, 3))
    data = _png_bytes(img)
    done_at: list[float] = []

    def slow_writer() -> None:
        with open(tmp_path / "slow.png", "wb") as fh:
            fh.write(data[: len(data) // 2])
            fh.flush()
            time.sleep(0.35)  # longer than several polls, shorter than settle_time
            fh.write(data[len(data) // 2 :])
        done_at.append(time.time())

    src = WatchedFolderSource(tmp_path, poll_interval=0.05, settle_time=0.6)
    with caplog.at_level(logging.WARNING), src:
        th = threading.Thread(target=slow_writer)
        th.start()
        frame = src.poll(5.0)
        th.join()
    assert frame is not None, "the finished file was never delivered"
    assert frame.timestamp >= done_at[0]  # not read while half-written
    assert np.array_equal(frame.image, img)
    assert src.skipped == [] and "slow.png" not in caplog.text  # never even tried half-written


def test_watched_folder_close_releases_blocked_read(tmp_path: Path) -> None:
    src = WatchedFolderSource(tmp_path, poll_interval=0.05).open()
    result: list[object] = []
    th = threading.Thread(target=lambda: result.append(src.read()))
    th.start()
    time.sleep(0.2)
    t = time.monotonic()
    src.close()
    th.join(2.0)
    assert not th.is_alive() and result == [None] and time.monotonic() - t < 1.0


# --------------------------------------------------------------------------- camera


@pytest.mark.fault("sources", "a missing camera or an unreachable stream",
                   "state 'reconnecting' with the reason, retried with backoff, close() within 2 s")
@pytest.mark.parametrize("spec", [99, "/nonexistent/dir/stream.mjpg"])
def test_missing_camera_reconnects_without_raising_and_stops_promptly(spec: object) -> None:
    src = CameraSource(spec, reconnect_delay=0.05, max_reconnect_delay=0.2)
    src.open()
    try:
        deadline = time.monotonic() + 5.0
        while src.state != "reconnecting" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert src.state == "reconnecting"
        assert str(spec) in src.last_error and "cannot open" in src.last_error
        assert src.poll(0.1) is None and not src.finished and src.is_live
    finally:
        t = time.monotonic()
        src.close()
        assert time.monotonic() - t < 2.0
    assert src.finished and src.read() is None


def test_camera_recovers_after_losing_its_stream(tmp_path: Path) -> None:
    """A video file opened as a 'stream': at its end the capture is lost, then reopened."""
    path = tmp_path / "cam.avi"
    _write_video(path, n=6)
    with CameraSource(str(path), reconnect_delay=0.05, max_reconnect_delay=0.1) as src:
        first = src.poll(3.0)
        assert first is not None and first.ref == f"{path}#frame=0"
        deadline = time.monotonic() + 5.0
        while src.reconnects == 0 and time.monotonic() < deadline:
            src.poll(0.05)
        assert src.reconnects >= 1 and "no frames" in src.last_error
        later = src.poll(3.0)  # frames again after the reconnect, without reopening by hand
        assert later is not None and later.index > first.index


# --------------------------------------------------------------------------- dispatch


def test_open_source_dispatch(tmp_path: Path) -> None:
    video = tmp_path / "line.MP4"
    other = tmp_path / "notes.txt"
    other.write_text("x")
    assert isinstance(open_source(0), CameraSource)
    cam = open_source("2")
    assert isinstance(cam, CameraSource) and cam.spec == 2 and cam.name == "camera:2"
    stream = open_source("rtsp://op:secret@10.0.0.5:554/line1")
    assert isinstance(stream, CameraSource) and "secret" not in stream.name
    assert isinstance(open_source(str(video)), VideoFileSource)
    assert isinstance(open_source(tmp_path), FolderSource)
    watched = open_source(f"watch:{tmp_path}")
    assert isinstance(watched, WatchedFolderSource) and watched.path == tmp_path
    assert open_source(tmp_path, recursive=True).recursive
    with pytest.raises(SourceError, match="no such file"):
        open_source(str(tmp_path / "nothing"))
    with pytest.raises(SourceError, match="notes.txt"):
        open_source(other)


@pytest.mark.parametrize("text, kind, target", [
    ("0", "camera", "0"),
    (" 2 ", "camera", "2"),
    ("camera:1", "camera", "1"),
    ("rtsp://cam/1", "camera", "rtsp://cam/1"),
    ("camera:rtsp://cam/1", "camera", "rtsp://cam/1"),
    ("watch:/data/incoming", "watch", "/data/incoming"),
    ("WATCH: /data/incoming", "watch", "/data/incoming"),
    ("part.mp4", "video", "part.mp4"),           # by its extension, before it exists
    ("video:/clips/part.avi", "video", "/clips/part.avi"),
    ("folder:/parts", "folder", "/parts"),
])
def test_one_parser_for_every_spec(text: str, kind: str, target: str) -> None:
    from inspection_core.sources import parse_source

    spec = parse_source(text)
    assert (spec.kind, spec.target) == (kind, target)
    assert parse_source(str(spec)) == spec  # the canonical text parses back


def test_an_unknown_path_is_an_error_not_a_camera(tmp_path: Path) -> None:
    from inspection_core.sources import parse_source

    assert parse_source(tmp_path).kind == "folder"
    assert parse_source(str(tmp_path), kind="watch").kind == "watch"  # a picker says what the text is
    for bad, message in ((str(tmp_path / "nothing"), "no such file or folder"), ("watch:", "needs a folder"),
                         ("", "no image source"), (True, "not an image source")):
        with pytest.raises(SourceError, match=message):
            parse_source(bad)
    with pytest.raises(SourceError, match="unknown source kind"):
        parse_source("x", kind="scanner")


# --------------------------------------------------------------------------- hostile specs and flaky streams (issue 13)


@pytest.mark.fault("sources", "open_source(-1), CameraSource(-1), 'camera:-1' (negative camera index)",
                   "SourceError 'camera index must be between 0 and 9999' before OpenCV sees it (it segfaulted)")
def test_a_negative_camera_index_is_an_error_not_a_crash() -> None:
    import subprocess
    import sys

    code = ("from inspection_core.sources import CameraSource, SourceError, open_source, parse_source\n"
            "for make in (lambda: open_source(-1), lambda: CameraSource(-1), lambda: parse_source('camera:-1'),\n"
            "             lambda: open_source('-3'), lambda: CameraSource(2**40)):\n"
            "    try:\n"
            "        s = make(); s.open(); import time; time.sleep(0.5); s.close(); print('opened', s)\n"
            "    except SourceError as exc:\n"
            "        print(exc)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr[-500:]}"  # a segfault is -11
    lines = r.stdout.splitlines()
    assert len(lines) == 5 and all(line.startswith("camera index must be between 0 and 9999") for line in lines), lines


class _FlakyCapture:
    """A scripted cv2.VideoCapture: frames, then a stall long enough to count as lost, then frames again."""

    script: list[bool] = []

    def __init__(self, *_a: object) -> None:
        self.opened = True

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return self.opened

    def read(self) -> tuple[bool, np.ndarray | None]:
        time.sleep(0.005)
        ok = _FlakyCapture.script.pop(0) if _FlakyCapture.script else True
        return (ok, np.zeros((4, 4, 3), np.uint8) if ok else None)

    def get(self, _prop: int) -> float:
        return 0.0

    def set(self, *_a: object) -> bool:
        return True

    def release(self) -> None:
        self.opened = False


@pytest.mark.fault("sources", "a stream that stalls (reconnects) and recovers",
                   "state back to 'running' and last_error cleared (it kept the old error)")
def test_a_recovered_stream_shows_no_old_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import inspection_core.sources.camera as camera

    _FlakyCapture.script = [True] * 3 + [False] * 4 + [True] * 1000
    monkeypatch.setattr(camera.cv2, "VideoCapture", _FlakyCapture)
    states = []
    with CameraSource("rtsp://cam/line", reconnect_delay=0.02, max_failed_reads=3) as src:
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and not (src.reconnects and src.state == "running" and len(states) > 3):
            if src.poll(0.05) is not None:
                states.append((src.state, src.last_error))
        assert src.reconnects == 1 and src.state == "running"
        assert src.last_error == "", src.last_error


@pytest.mark.fault("sources", "a refused stream URL with a password (rtsp://op:secret@…)",
                   "retried with backoff; the password appears in no message, log line or OpenCV output")
def test_a_stream_password_is_never_shown(capfd: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG), CameraSource("rtsp://op:secret@127.0.0.1:9/line", reconnect_delay=0.05,
                                                      open_timeout=0.5, read_timeout=0.5) as src:
        deadline = time.monotonic() + 5.0
        while src.state != "reconnecting" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert src.state == "reconnecting" and "op:***@127.0.0.1" in src.last_error
        assert "op:***@" in src.name
    out, err = capfd.readouterr()
    assert "secret" not in src.last_error + caplog.text + out + err


@pytest.mark.fault("sources", "a truncated AVI (half of the file)",
                   "every decodable frame delivered, then 'ended' with last_error 'ended at frame 19 of the 40 …'")
def test_a_truncated_video_says_so_when_it_ends(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    whole = tmp_path / "whole.avi"
    writer = cv2.VideoWriter(str(whole), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    for i in range(40):
        writer.write(_noise(i, (48, 64, 3)))
    writer.release()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with VideoFileSource(whole) as src:
        assert len(list(src)) == 40 and src.state == "ended" and src.last_error == ""
    with caplog.at_level(logging.WARNING), VideoFileSource(cut) as src:
        n = len(list(src))
        assert 10 < n < 40 and src.state == "ended"
        assert f"'cut.avi' ended at frame {n} of the 40" in src.last_error and "truncated" in src.last_error
    assert "truncated" in caplog.text
