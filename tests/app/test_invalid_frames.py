"""Frames that carry no part (INVALID) in the app: a real tiny bundle, real
live lines on real folders of images (good parts with black or white frames
among them), a real history database. A blank frame never shows as PASS:
the banner, the strip of the last parts, the shift counters and History show
INVALID with its reason; frames in a row raise the camera warning; the
Calibrate view shows the frame check and turns it on or off in the bundle."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QTimer
from PySide6.QtGui import QColor, QFont, QFontMetrics
from PySide6.QtWidgets import QApplication, QMessageBox

from app.context import AppContext
from app.views.inspect import InspectView
from app.views.shift import ShiftCounters
from app.widgets.palette import BANNER, CAMERA_WARNING, VERDICT_TEXT
from inspection_core.bundle import read_manifest
from inspection_core.data.images import list_images, read_image
from inspection_core.frame_check import limits_of

pytestmark = pytest.mark.gui


def verdict_of(r) -> str:  # noqa: ANN001 - a LiveResult
    return str(getattr(r.prediction.verdict, "value", r.prediction.verdict))


def line_folder(root: Path, demo_data: Path, pattern: str) -> Path:
    """A folder of frames named in line order: ``pattern`` is one letter per
    frame, "g" a good demo part, "b" a black frame (lens cap), "w" a white one
    (overexposed)."""
    good = iter(list_images(demo_data / "test" / "good"))
    root.mkdir(parents=True, exist_ok=True)
    for i, kind in enumerate(pattern):
        out = root / f"{i:03d}_{ {'g': 'part', 'b': 'black', 'w': 'white'}[kind] }.png"
        if kind == "g":
            shutil.copy(next(good), out)
        else:
            cv2.imwrite(str(out), np.full((64, 64, 3), 0 if kind == "b" else 255, np.uint8))
    return root


def pixel(widget, x: int, y: int) -> QColor:  # noqa: ANN001 - any QWidget
    return widget.grab().toImage().pixelColor(x, y)


# ---------------------------------------------------------------------------- widgets alone
def test_invalid_is_counted_apart_and_never_as_a_pass() -> None:
    c = ShiftCounters()
    for v in ("PASS", "INVALID", "FAIL", "INVALID", "PASS", "SOMETHING NEW"):
        c.add(v)
    assert (c.inspected, c.passed, c.failed, c.review, c.invalid) == (4, 2, 2, 0, 2)
    assert c.frames == 6
    assert c.yield_pct == pytest.approx(50.0), "a frame with no part is no part: it stays out of the yield"


def test_the_banner_shows_invalid_on_grey_with_its_reason(qtbot) -> None:
    from app.widgets.verdict_banner import VerdictBanner

    b = VerdictBanner()
    qtbot.addWidget(b)
    b.resize(380, 170)
    b.set_verdict("INVALID", 0.01, 0.5, None, 0.0, "blank frame")
    assert b.text == "INVALID" and b.reason == "blank frame" and b.headline == "INVALID — blank frame"
    assert b.share == "", "a blank frame's score is no share of the threshold of any part"
    assert "lens cap" in b.detail and "INVALID. blank frame" in b.accessibleName()
    assert pixel(b, 6, b.height() // 2).name() == BANNER["INVALID"][0]
    b.resize(320, 170)  # the Inspect view's side column at its narrowest: the word is shrunk, never cut
    b.grab()
    big = QFont(b.font())
    big.setPointSizeF(b.painted_verdict_pt)
    big.setWeight(QFont.Weight.ExtraBold)
    big.setLetterSpacing(QFont.SpacingType.AbsoluteSpacing, 2)
    assert QFontMetrics(big).horizontalAdvance("INVALID") <= b.width() - 32 and b.painted_verdict_pt >= 20
    b.set_verdict("PASS", 0.1, 0.5)
    assert b.reason == "" and b.headline == "PASS" and b.share == "20 % of the threshold"
    assert pixel(b, 6, b.height() // 2).name() == BANNER["PASS"][0]


# ---------------------------------------------------------------------------- Inspect view
@pytest.mark.fault("app", "a black frame (lens cap) among good parts in a folder run in the Inspect view",
                   "banner 'INVALID — blank frame' on grey, counted in the Invalid tile (never PASS), grey "
                   "thumbnail, INVALID row with its reason in the history")
def test_a_black_frame_among_good_parts_shows_invalid_never_pass(inspect_view: InspectView, ctx: AppContext,
                                                                  qtbot, tmp_path: Path, demo_data: Path,
                                                                  tiny_bundle: Path) -> None:
    from inspection_core.inference import Inspector

    view = inspect_view
    folder = line_folder(tmp_path / "line", demo_data, "ggbgg")
    reference = Inspector(tiny_bundle, device="cpu")  # what each frame must get: the same bundle, scored here
    expected = [reference.predict(read_image(p)) for p in list_images(folder)]
    assert [p.verdict.value == "INVALID" for p in expected] == [False, False, True, False, False]

    assert view.start_source("folder", str(folder), mode="triggered")
    with qtbot.waitSignal(view.worker.ready, timeout=30000):
        pass
    for i, want in enumerate(expected):
        with qtbot.waitSignal(view.rendered, timeout=15000) as blocker:
            view.trigger_btn.click()
        r = blocker.args[0]
        assert Path(r.frame_ref).name == list_images(folder)[i].name
        assert view.banner.text == want.verdict.value == verdict_of(r)
        if want.verdict.value == "INVALID":
            assert view.banner.headline == "INVALID — blank frame"
            assert view.banner.verdict == "INVALID" and view.banner.share == ""
            assert view.recent.items()[0] == ("INVALID", "blank frame")
            assert not view.heat_pane.has_image and "no part" in view.heat_pane.placeholder
            assert pixel(view.banner, 6, view.banner.height() // 2).name() == BANNER["INVALID"][0]
        else:
            assert view.banner.reason == "" and view.heat_pane.has_image
    n_pass = sum(p.verdict.value == "PASS" for p in expected)
    c = view.counters
    assert (c.invalid, c.passed, c.inspected) == (1, n_pass, 4)
    assert view.shift_panel.tile_invalid.text() == "1"
    assert view.shift_panel.tile_pass.text() == str(n_pass), "the black frame is not counted as a PASS"
    assert view.shift_panel.tile_inspected.text() == "4"
    assert [v for v, _label in view.recent.items()] == [p.verdict.value for p in reversed(expected)]
    view.stop()
    rows = {Path(r.image_ref).name: r for r in ctx.history.query(limit=10)}
    assert rows["002_black.png"].verdict == "INVALID" and rows["002_black.png"].note == "blank frame"
    assert {n: r.verdict for n, r in rows.items()} == {p.name: e.verdict.value
                                                       for p, e in zip(list_images(folder), expected)}


@pytest.mark.fault("app", "the camera is covered: 6 black frames in a row in a live folder run",
                   "each INVALID; after the 5th a red camera warning over the banner ('5 frames in a row carry no "
                   "part (blank frame)…'), cleared by the next part")
def test_black_frames_in_a_row_raise_the_camera_warning_until_a_part_follows(
        inspect_view: InspectView, qtbot, tmp_path: Path, demo_data: Path) -> None:
    view = inspect_view
    folder = line_folder(tmp_path / "covered", demo_data, "ggbbbbbbgg")
    events: list[tuple[str, str, str]] = []  # (kind, verdict or message, the warning the view shows then)
    view.rate_spin.setValue(0)
    assert view.start_source("folder", str(folder))
    # connected after the view's own slots: each entry sees what the view shows after the event
    view.worker.result.connect(lambda r: events.append(("result", verdict_of(r), view.camera_warning_text)))
    view.worker.cameraWarning.connect(lambda m: events.append(("warning", m, view.camera_warning_text)))
    shown: list[tuple[bool, QColor, int, int]] = []

    def look(message: str) -> None:
        if message:  # the bar as the operator sees it, where the eye is: above the banner, in its column
            bar = view.camera_warning
            shown.append((bar.isVisible(), pixel(bar, 3, bar.height() // 2), bar.mapTo(view, bar.rect().bottomLeft()).y(),
                          view.banner.mapTo(view, view.banner.rect().topLeft()).y()))

    view.worker.cameraWarning.connect(look)
    qtbot.waitUntil(lambda: view.worker is None, timeout=60000)  # the view stops itself at the end
    kinds = [(k, v) for k, v, _ in events]
    results = [v for k, v in kinds if k == "result"]
    assert len(results) == 10 and results[2:8] == ["INVALID"] * 6
    assert all(v != "INVALID" for v in results[:2] + results[8:])
    warnings = [(i, v) for i, (k, v) in enumerate(kinds) if k == "warning"]
    assert len(warnings) == 2, kinds
    (i_on, message), (i_off, cleared) = warnings
    assert message.startswith("5 frames in a row carry no part (blank frame)") and cleared == ""
    assert [v for k, v in kinds[:i_on] if k == "result"] == results[:6], "said with the 5th blank frame in a row"
    assert [v for k, v in kinds[:i_off] if k == "result"] == results[:8], "cleared with the first part after"
    assert events[i_on][2].endswith(message[1:]) and "camera" in events[i_on][2]
    results_while_on = [shown_text for k, _v, shown_text in events[i_on + 1:i_off] if k == "result"]
    assert results_while_on and all(results_while_on), "the warning stands while the frames stay blank"
    assert events[i_off][2] == "" and view.camera_warning_text == "" and view.camera_warning.isHidden()
    visible, colour, bar_bottom, banner_top = shown[0]
    assert visible and colour.name() == CAMERA_WARNING[0] and bar_bottom <= banner_top
    assert view.counters.invalid == 6 and view.shift_panel.tile_invalid.text() == "6"
    assert "6 frames carried no part" in view.state_text


def test_turning_the_frame_check_off_applies_to_the_running_line(ctx: AppContext, qtbot, tmp_path: Path,
                                                                  demo_data: Path, tiny_bundle: Path) -> None:
    """Saved in Calibrate while the line runs: the next frame is judged with the bundle's new frame check."""
    from inspection_core.usecases.calibrate import save_frame_check

    bundle = Path(shutil.copy(tiny_bundle, tmp_path / "line.inspector"))
    ctx.set_bundle(bundle)
    view = InspectView(ctx)
    qtbot.addWidget(view)
    view.show()
    folder = line_folder(tmp_path / "black", demo_data, "bbb")
    assert view.start_source("folder", str(folder), mode="triggered")
    with qtbot.waitSignal(view.worker.ready, timeout=30000):
        pass
    with qtbot.waitSignal(view.rendered, timeout=15000):
        view.trigger_btn.click()
    assert view.banner.text == "INVALID"
    save_frame_check(bundle, False)
    ctx.notify_bundle_updated()
    with qtbot.waitSignal(view.rendered, timeout=15000) as blocker:
        view.trigger_btn.click()
    assert verdict_of(blocker.args[0]) != "INVALID" and view.banner.text in ("PASS", "REVIEW", "FAIL")
    view.shutdown()


# ---------------------------------------------------------------------------- History
def test_history_shows_invalid_rows_with_their_reason_and_filters_them(ctx: AppContext, qtbot, tmp_path: Path,
                                                                       demo_data: Path, tiny_bundle: Path) -> None:
    from app.views.history import HistoryView
    from app.workers import ScoringWorker

    folder = line_folder(tmp_path / "line", demo_data, "gbgw")
    worker = ScoringWorker(str(folder), str(tiny_bundle), ctx.recorder, source_label="folder:line")
    with qtbot.waitSignal(worker.stopped, timeout=60000):
        worker.start()
    assert worker.stop() and worker.frames_invalid == 2

    view = HistoryView(ctx)
    qtbot.addWidget(view)
    view.resize(1200, 500)
    view.show()
    model = view.ensure_model()
    assert model.total() == 4
    cells = {Path(model.record(r).image_ref).name: model.data(model.index(r, 2)) for r in range(4)}
    assert cells["001_black.png"] == "INVALID — blank frame"
    assert cells["003_white.png"] == "INVALID — overexposed"
    assert cells["000_part.png"] in ("PASS", "REVIEW", "FAIL") and cells["002_part.png"] in ("PASS", "REVIEW", "FAIL")
    black = next(r for r in range(4) if model.record(r).image_ref.endswith("001_black.png"))
    from PySide6.QtCore import Qt

    assert model.data(model.index(black, 2), Qt.ItemDataRole.ForegroundRole).color().name() == VERDICT_TEXT["INVALID"]
    assert "lens cap" in model.data(model.index(black, 2), Qt.ItemDataRole.ToolTipRole)
    i = view.verdict_combo.findData("INVALID")
    assert i > 0 and "INVALID" in view.verdict_combo.itemText(i)
    view.verdict_combo.setCurrentIndex(i)
    assert model.rowCount() == 2
    assert {model.record(r).note for r in range(2)} == {"blank frame", "overexposed"}
    assert "INVALID 2" in view.summary.text()
    view.verdict_combo.setCurrentIndex(0)
    n_pass = sum(1 for v in cells.values() if v == "PASS")
    assert f"yield {100.0 * n_pass / 2:.1f} %" in view.summary.text(), "the yield counts parts, not blank frames"


# ---------------------------------------------------------------------------- Calibrate
@pytest.mark.fault("app", "the frame check turned off (and on again) in the Calibrate view",
                   "asked to confirm; the bundle's frame_check.enabled saved atomically (limits, training "
                   "statistics and weights kept); a black frame then scored as a part")
def test_calibrate_shows_the_frame_limits_and_the_check_round_trips_to_the_bundle(
        engineer_ctx: AppContext, qtbot, tmp_path: Path, tiny_ganomaly_bundle: Path) -> None:
    from app.views.calibrate import CalibrateView
    from app.views.calibrate_dialogs import SaveCalibrationDialog
    from inspection_core.inference import Inspector

    ctx = engineer_ctx
    bundle = Path(shutil.copy(tiny_ganomaly_bundle, tmp_path / "gan.inspector"))
    before = read_manifest(bundle)
    section = before["frame_check"]
    assert section["enabled"] is True and section.get("training")
    ctx.set_bundle(bundle)
    view = CalibrateView(ctx)
    qtbot.addWidget(view)
    view.resize(1400, 900)
    view.show()
    panel = view.frame_check
    assert " ".join(panel.check.text().split()) == "Refuse frames that carry no part (blank, overexposed, no part)"
    assert panel.check.isChecked() and panel.check.isEnabled() and not panel.save_button.isEnabled()
    described = limits_of(before).describe()
    assert described[1:] in panel.limits_label.text()
    level = section["training"]["level"]
    assert f"mean gray level {level[0]:.0f}–{level[-1]:.0f}" in panel.training_label.text()
    contrast = section["training"]["contrast"]
    assert f"contrast {contrast[0]:.1f}–{contrast[-1]:.1f}" in panel.training_label.text()
    assert panel.isVisible() and panel.limits_label.isVisible()

    def save_frame_check(confirm: bool) -> dict:
        updated: list[object] = []
        ctx.bundleUpdated.connect(updated.append)
        asked: list[str] = []

        def answer() -> None:
            box = QApplication.activeModalWidget()
            assert isinstance(box, QMessageBox)
            asked.append(box.text())
            box.button(QMessageBox.StandardButton.Yes).click()

        if confirm:
            QTimer.singleShot(200, answer)
        panel.save_button.click()
        qtbot.waitUntil(lambda: bool(updated), timeout=20000)
        ctx.bundleUpdated.disconnect(updated.append)
        assert bool(asked) == confirm
        return read_manifest(bundle)

    panel.check.setChecked(False)
    assert panel.save_button.isEnabled() and "may PASS" in panel.pending_label.text()
    m = save_frame_check(confirm=True)
    assert m["frame_check"] == {**section, "enabled": False}, "only the switch changes: limits and statistics kept"
    assert m["weights"] == before["weights"] and m["threshold"] == before["threshold"]
    assert not panel.check.isChecked() and not panel.save_button.isEnabled() and panel.pending_label.text() == ""
    assert panel.limits_label.text().startswith("Frame check off")
    black = np.zeros((64, 64, 3), np.uint8)
    assert Inspector(bundle, device="cpu").predict(black).verdict.value != "INVALID", "off: scored as a part"

    panel.check.setChecked(True)
    m = save_frame_check(confirm=False)  # turning it on needs no confirmation
    assert m["frame_check"] == section
    assert Inspector(bundle, device="cpu").predict(black).reason == "blank frame"

    # saved with a threshold: both in one rewrite of the bundle
    rng = np.random.default_rng(0)
    view.set_scores(np.r_[rng.normal(0, 1, 40), rng.normal(3, 1, 20)], np.r_[np.zeros(40, int), np.ones(20, int)])
    panel.check.setChecked(False)
    updated: list[object] = []
    ctx.bundleUpdated.connect(updated.append)
    seen: list[str] = []

    def confirm_threshold() -> None:
        dlg = QApplication.activeModalWidget()
        assert isinstance(dlg, SaveCalibrationDialog)
        seen.extend(lbl.text() for lbl in dlg.findChildren(type(panel.limits_label)))
        dlg.accept()

    QTimer.singleShot(200, confirm_threshold)
    view.save_to_bundle()
    qtbot.waitUntil(lambda: bool(updated), timeout=20000)
    m = read_manifest(bundle)
    assert m["frame_check"]["enabled"] is False and m["threshold"]["high"] == pytest.approx(view.thresholds().high)
    assert any("frame check is turned OFF" in t for t in seen), "the confirmation says so"
    view.stop(10000)
