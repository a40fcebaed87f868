"""Inspect view and the live pipeline, with a real tiny bundle, real sources
(a video written with cv2.VideoWriter, folders) and a real history database."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from app.views.inspect import InspectView, ShiftCounters, bundle_summary
from app.workers import ScoringWorker
from tests.app.conftest import write_video

pytestmark = pytest.mark.gui


@pytest.fixture
def view(inspect_view: InspectView) -> InspectView:
    return inspect_view


def test_view_builds_and_shows_the_bundle(view: InspectView, tiny_bundle: Path) -> None:
    assert view.banner.text == "WAITING"
    assert not view.image_pane.has_image
    assert "skip-ganomaly" in view.bundle_panel.model_label.text() and "32 px" in view.bundle_panel.model_label.text()
    assert view.bundle_panel.threshold_label.text() not in ("", "—")
    assert view.bundle_panel.data_label.text().endswith("good images)") and view.bundle_panel.data_label.toolTip().endswith("good images)")
    assert view.bundle_panel.bundle_combo.currentData() == str(tiny_bundle.resolve())


def test_video_plays_through_and_every_scored_frame_is_recorded(view: InspectView, ctx, qtbot, tmp_path: Path,
                                                                part_images: list, gap_meter, tiny_bundle: Path) -> None:
    video = write_video(tmp_path / "line.avi", (part_images * 3)[:40], fps=25.0)
    assert view.start_source("video", str(video))
    with qtbot.waitSignal(view.worker.ready, timeout=30000):
        pass
    gap_meter.start()
    with qtbot.waitSignal(view.runningChanged, timeout=30000, check_params_cb=lambda running: not running):
        pass  # the view stops itself when the video has ended
    gap_meter.stop()
    scored = view.results_received
    assert scored > 0
    assert view.counters.inspected + view.counters.invalid == scored
    assert ctx.history.count() == scored, "each scored frame must be a committed history row"
    rows = ctx.history.query(limit=1000)
    assert all(r.image_ref.startswith("line.avi#frame=") for r in rows)
    assert {r.bundle for r in rows} == {"tiny_skip"}
    kept = [r for r in rows if r.verdict in ("FAIL", "REVIEW")]
    assert kept and all(ctx.history.image_path(r) is not None for r in kept), "every FAIL/REVIEW part keeps its image"
    assert not any(r.stored_image for r in rows if r.verdict == "PASS")
    view._render_latest()
    # the banner shows the verdict the bundle gives the last frame (scored again here, as decoded)
    from inspection_core.inference import Inspector

    last = view._latest
    want = Inspector(tiny_bundle, device="cpu").predict(last.image)
    assert view.banner.text == want.verdict.value != "INVALID"
    assert ctx.history.get(last.record_id).verdict == want.verdict.value
    assert f"score {want.score:.4g}" in view.banner.detail
    assert "threshold" in view.banner.detail or "review band" in view.banner.detail
    assert view.image_pane.has_image and view.recon_pane.has_image and view.heat_pane.has_image
    assert "finished" in view.state_strip.text()
    c = view.counters
    assert c.passed + c.review + c.failed == c.inspected
    assert view.shift_panel.tile_inspected.text() == str(scored)
    # The GUI thread never waited on scoring.
    assert gap_meter.ticks > 20
    gap_meter.assert_responsive()


def test_the_relay_delivers_the_lines_events_in_the_gui_thread(ctx, qtbot, demo_data: Path,
                                                               tiny_bundle: Path) -> None:
    """ScoringWorker is only a relay: the core's LiveLine runs the line, every
    signal (even to a lambda) arrives in the GUI thread, ``stopped`` comes last."""
    from PySide6.QtCore import QThread
    from PySide6.QtWidgets import QApplication

    gui = QApplication.instance().thread()
    seen: list[tuple[str, bool]] = []
    worker = ScoringWorker(str(demo_data / "test" / "good"), str(tiny_bundle), ctx.history, source_label="relay")
    for name in ("ready", "result", "ended"):
        getattr(worker, name).connect(lambda *_a, n=name: seen.append((n, QThread.currentThread() is gui)))
    with qtbot.waitSignal(worker.stopped, timeout=60000):
        worker.start()
    assert worker.stop() and not worker.running
    assert all(in_gui for _n, in_gui in seen)
    assert [n for n, _ in seen].count("result") == worker.frames_scored == 12 == ctx.history.count()
    assert seen[0][0] == "ready" and seen[-1][0] == "ended"


def test_folder_source_in_triggered_mode_scores_one_part_per_trigger(view: InspectView, ctx, qtbot,
                                                                    demo_data: Path) -> None:
    assert view.start_source("folder", str(demo_data / "test" / "good"), mode="triggered")
    with qtbot.waitSignal(view.worker.ready, timeout=30000):
        pass
    qtbot.wait(300)
    assert view.results_received == 0, "triggered mode must wait for a trigger"
    assert view.trigger_btn.isEnabled()
    for expected in (1, 2):
        with qtbot.waitSignal(view.resultShown, timeout=10000):
            view.trigger_btn.click()
        assert view.results_received == expected
    qtbot.wait(200)
    assert view.results_received == 2
    assert ctx.history.count() == 2
    first, second = sorted(r.image_ref for r in ctx.history.query())
    assert Path(first).name == "000.png" and Path(second).name == "001.png"


def test_pause_resume_and_stop(view: InspectView, qtbot, demo_data: Path) -> None:
    view.rate_spin.setValue(20)
    assert view.start_source("folder", str(demo_data / "test"))
    qtbot.waitUntil(lambda: view.results_received >= 2, timeout=30000)
    view.pause_btn.click()
    assert view.banner.text == "PAUSED"
    qtbot.wait(150)
    n = view.results_received
    qtbot.wait(400)
    assert view.results_received == n, "no part is scored while paused"
    view.start_btn.click()  # "Resume"
    qtbot.waitUntil(lambda: view.results_received > n, timeout=10000)
    worker = view.worker
    view.stop_btn.click()
    assert view.worker is None and not worker.running
    assert not view.stop_btn.isEnabled() and view.start_btn.isEnabled()


def test_lost_camera_shows_reconnecting_state(view: InspectView, qtbot) -> None:
    # A stream nobody serves: the source reports "reconnecting" and keeps trying.
    assert view.start_source("camera", "rtsp://127.0.0.1:9/none")
    qtbot.waitUntil(lambda: view.state_kind == "reconnecting", timeout=20000)
    assert "reconnecting" in view.state_strip.text().lower()
    assert view.banner.text == "NO SIGNAL"
    t = time.monotonic()
    view.stop()
    assert time.monotonic() - t < 6.0, "stopping a reconnecting camera must not hang"


def test_long_data_set_names_are_cut_but_keep_the_image_count() -> None:
    from app.views.inspect_panels import short_data_text as _short_data_text

    assert _short_data_text("washers (108 good images)") == "washers (108 good images)"
    short = _short_data_text("generated demo data (make_demo_dataset seed=0, size=128) (108 good images)")
    assert short == "generated demo data… (108 good images)"  # cut between words, never inside one
    assert _short_data_text("a_single_very_long_folder_name_without_spaces") == "a_single_very_long_folder_n…"


def test_shift_counters_and_bundle_summary() -> None:
    c = ShiftCounters()
    assert c.yield_pct is None
    for v in ("PASS", "PASS", "FAIL", "REVIEW"):
        c.add(v)
    assert (c.inspected, c.passed, c.failed, c.review) == (4, 2, 1, 1)
    assert c.yield_pct == pytest.approx(50.0)
    info = bundle_summary({"name": "x", "model": {"model": "ganomaly", "image_size": 64},
                           "created": "2024-05-01T12:00:00+00:00",
                           "training": {"data": {"root": "/data/washers", "n_train": 108}},
                           "threshold": {"high": 0.5, "low": 0.25, "strategy": "youden"}})
    assert info["model"] == "ganomaly · 64 px"
    assert info["data"] == "washers (108 good images)"
    assert info["threshold"].startswith("0.25 / 0.5") and "youden" in info["threshold"]


def test_camera_sized_frames_are_drawn_at_display_size_as_soon_as_scored(view: InspectView, qtbot, tmp_path: Path,
                                                                         part_images: list) -> None:
    import cv2

    big = [cv2.resize(im, (1600, 1200), interpolation=cv2.INTER_LINEAR) for im in part_images[:6]]
    video = write_video(tmp_path / "camera.avi", big, fps=25.0)
    assert view.start_source("video", str(video))
    with qtbot.waitSignal(view.rendered, timeout=30000) as blocker:
        pass
    r = blocker.args[0]
    assert r.image.shape[:2] == (1200, 1600), "the full frame is what was scored and recorded"
    assert view.banner.text == str(getattr(r.prediction.verdict, "value", r.prediction.verdict))
    for pane in (view.image_pane, view.heat_pane):
        h, w = pane.image_array().shape[:2]
        assert w <= pane.width() * pane.devicePixelRatioF() and h <= pane.height() * pane.devicePixelRatioF()
        assert abs(w / h - 1600 / 1200) < 0.02, "shrunk for display with its aspect ratio kept"


def test_heat_overlay_colours_hot_regions_and_keeps_cold_ones_readable() -> None:
    import numpy as np

    from app.widgets.image_pane import heat_overlay

    gray = np.full((40, 60), 128, np.uint8)
    heat = np.zeros((20, 30), np.float32)
    heat[:, 15:] = 1.0  # right half hot (heat maps come at model resolution)
    out = heat_overlay(gray, heat)
    assert out.shape == (40, 60, 3) and out.dtype == np.uint8
    cold, hot = out[:, :20].reshape(-1, 3), out[:, 40:].reshape(-1, 3)
    assert np.abs(cold.astype(int) - 128).max() <= 40, "a cold region stays close to the part"
    b, g, r = hot.mean(axis=0)
    assert r > b + 50 and r > g + 50, "a hot region turns red (JET, BGR)"


@pytest.mark.fault("app", "a truncated video file played in the Inspect view",
                   "every decodable frame scored and recorded, then 'Source finished … truncated or damaged' (warning)")
def test_a_truncated_video_ends_with_a_warning(view: InspectView, ctx, qtbot, tmp_path: Path,
                                               part_images: list) -> None:
    whole = write_video(tmp_path / "whole.avi", (part_images * 4)[:30], fps=200.0)
    cut = tmp_path / "cut.avi"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert view.start_source("video", str(cut), lossless=True)
    with qtbot.waitSignal(view.runningChanged, timeout=30000, check_params_cb=lambda running: not running):
        pass
    assert 0 < view.results_received < 30 and ctx.history.count() == view.results_received
    assert view.state_kind == "warning" and "truncated or damaged" in view.state_text
    assert "Source finished" in view.state_text


@pytest.mark.fault("app", "the station's history file is immutable when the operator presses Start",
                   "'History not writable — N verdict(s) kept in the spool' at once; every shown verdict in the "
                   "history once it is writable again")
def test_the_view_says_at_once_when_the_history_cannot_be_written(view: InspectView, ctx, qtbot, tmp_path: Path,
                                                                  part_images: list) -> None:
    import os
    import subprocess

    from inspection_core.history import HistoryDB

    db_path = ctx.settings.history_db_path()
    HistoryDB(db_path).close()
    if os.geteuid() != 0 or subprocess.run(["chattr", "+i", str(db_path)], capture_output=True).returncode:
        pytest.skip("needs chattr +i (root)")
    shown = []
    view.rendered.connect(lambda r: shown.append(r.frame_ref))
    try:
        folder = tmp_path / "parts"
        folder.mkdir()
        import cv2

        for i, im in enumerate(part_images[:5]):
            cv2.imwrite(str(folder / f"{i}.png"), im)
        assert view.start_source("folder", str(folder))
        assert view.state_kind == "error" and "History not writable" in view.state_text  # before the first part
        with qtbot.waitSignal(view.runningChanged, timeout=30000, check_params_cb=lambda running: not running):
            pass
        assert view.results_received == 5 and ctx.recorder.pending == 5
        assert view.state_kind == "error" and "5 verdict(s) kept in the spool" in view.state_text
    finally:
        subprocess.run(["chattr", "-i", str(db_path)], check=True)
    assert ctx.recorder.flush(wait_s=1.0)
    assert ctx.history.count() == 5 and set(shown) <= {r.image_ref for r in ctx.history.query()}


def test_a_registered_source_kind_shows_in_the_picker_with_its_hint(view: InspectView) -> None:
    """A new kind is one module: the picker lists it, with its hint and its browse rule, unchanged."""
    from inspection_core.sources import register_source_kind, unregister_source_kind
    from tests.core.test_source_kinds import PATTERN

    register_source_kind(PATTERN)
    try:
        other = InspectView(view.ctx)
        i = other.kind_combo.findData("pattern")
        assert i >= 0 and other.kind_combo.itemText(i) == "Test pattern"
        other.kind_combo.setCurrentIndex(i)
        assert other.spec_edit.placeholderText() == "stripes" and other.spec_edit.isEnabled()
        assert not other.browse_btn.isEnabled()  # typed, no dialog
        other.kind_combo.setCurrentIndex(other.kind_combo.findData("video"))
        assert other.browse_btn.isEnabled() and "video file" in other.spec_edit.placeholderText()
        other.shutdown()
        other.deleteLater()
    finally:
        unregister_source_kind("pattern")
