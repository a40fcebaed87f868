"""What a newcomer meets in the views (issue 14): a measure an operator can
read, the heat map's colour scale, images that fill their panes, a window that
fits a 1366 x 768 screen, Start that switches sources, a warning when the
parts are unlike the training data, and a bundle name that means one file."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.views.inspect import InspectView
from app.widgets.image_pane import HEAT_LEGEND, ImagePane
from app.widgets.recent_strip import RecentStrip
from app.widgets.verdict_banner import VerdictBanner, share_of_threshold

pytestmark = pytest.mark.gui


@pytest.fixture
def view(inspect_view: InspectView) -> InspectView:
    return inspect_view


def _folder(root: Path, images: list[np.ndarray], gray: bool = False) -> Path:
    root.mkdir(parents=True)
    for i, im in enumerate(images):
        cv2.imwrite(str(root / f"{i:03d}.png"), cv2.cvtColor(im, cv2.COLOR_BGR2GRAY) if gray else im)
    return root


def test_the_banner_says_how_far_from_the_threshold(qtbot) -> None:
    banner = VerdictBanner()
    qtbot.addWidget(banner)
    banner.set_verdict("FAIL", 0.002865, 0.002593)
    assert banner.share == "110 % of the threshold"
    assert "0.002865" in banner.detail and "0.002593" in banner.detail  # the raw figures stay, smaller
    banner.set_verdict("PASS", 0.0013, 0.0026)
    assert banner.share == "50 % of the threshold"
    banner.set_idle("READY")
    assert banner.share == ""
    assert share_of_threshold(1.0, 0.0) == ""  # no share of a threshold at zero


def test_the_banner_says_when_the_whole_parts_texture_decides(qtbot) -> None:
    """PatchCore's global texture term can fail a part whose hottest spot
    alone would pass: the banner says so, and only then."""
    banner = VerdictBanner()
    qtbot.addWidget(banner)
    banner.set_verdict("FAIL", 1.2, 1.0, texture_part=0.5)  # the spot alone (0.7) would pass
    assert banner.note == "whole-part texture +0.5; spot alone 0.7"
    banner.set_verdict("FAIL", 1.6, 1.0, texture_part=0.5)  # the spot alone fails too
    assert banner.note == ""
    banner.set_verdict("REVIEW", 0.95, 1.0, 0.9, texture_part=0.2)  # in the review band only by the texture
    assert banner.note.startswith("whole-part texture +0.2")
    banner.set_verdict("PASS", 0.5, 1.0, texture_part=0.2)
    assert banner.note == ""


def test_the_last_parts_are_labelled_by_their_share(qtbot) -> None:
    strip = RecentStrip()
    qtbot.addWidget(strip)
    strip.add(np.zeros((20, 20, 3), np.uint8), "FAIL", 0.003, 0.002)
    strip.add(np.zeros((20, 20, 3), np.uint8), "PASS", 0.0011, None)
    assert [label for _img, _v, label in strip._items] == ["0.0011", "150 %"]


def test_the_heat_map_has_its_colour_scale_and_panes_fit_their_images(qtbot) -> None:
    heat = ImagePane("Heat map", legend=HEAT_LEGEND)
    plain = ImagePane("Image")
    for p in (heat, plain):
        qtbot.addWidget(p)
    assert heat.hasHeightForWidth() and heat.heightForWidth(400) > plain.heightForWidth(400)  # room for the bar
    assert plain.heightForWidth(400) == 388 + 28 + 8  # square until an image says otherwise: no empty band
    plain.set_image(np.zeros((300, 600, 3), np.uint8))
    assert plain.heightForWidth(400) == 194 + 28 + 8
    heat.resize(300, heat.heightForWidth(300))
    heat.show()
    heat.set_image(np.zeros((64, 64, 3), np.uint8))
    img = heat.grab().toImage()
    bar_y = heat.height() - 34 + 4  # the middle of the colour bar under the image
    left, right = img.pixelColor(14, bar_y), img.pixelColor(heat.width() - 14, bar_y)
    assert left.blue() > left.red() and right.red() > right.blue()  # blue (as good parts) to red


def test_start_with_another_source_switches_to_it(view: InspectView, qtbot, tmp_path: Path,
                                                  part_images: list) -> None:
    a = _folder(tmp_path / "a", part_images[:4])
    b = _folder(tmp_path / "b", part_images[4:8])
    assert view.start_source("folder", str(a), loop=True)
    qtbot.waitUntil(lambda: view.results_received > 0, timeout=30000)
    assert not view.start_btn.isEnabled()  # running, and the same source is chosen
    view.spec_edit.setText(str(b))
    assert view.start_btn.isEnabled() and view.start_btn.text().endswith("Start")
    view.start_btn.click()
    assert view._source_desc == ("folder", str(b)) and view.worker is not None
    qtbot.waitUntil(lambda: "b" in Path(view.ref_label.text().split()[-1]).parent.name if view.ref_label.text() else False,
                    timeout=30000)
    assert not view.start_btn.isEnabled()
    view.pause()
    view.spec_edit.setText(str(a))  # paused, another source chosen: Start (not Resume) switches
    assert view.start_btn.text().endswith("Start") and view.start_btn.isEnabled()


def test_parts_unlike_the_training_data_are_said_once_and_stay_said(view: InspectView, qtbot, tmp_path: Path,
                                                                   part_images: list) -> None:
    gray = _folder(tmp_path / "gray", part_images[:12], gray=True)
    assert view.start_source("folder", str(gray))
    qtbot.waitUntil(lambda: view.state_kind == "input", timeout=30000)
    assert "gray and the model was trained on colour images" in view.state_text
    n = view.results_received
    qtbot.waitUntil(lambda: view.results_received > n, timeout=30000)
    assert view.state_kind == "input"  # a later part does not hide it


def test_a_bundle_name_opens_the_bundle_file(ctx, tiny_bundle: Path, tmp_path: Path) -> None:
    from app.manifest import read_manifest_light

    shutil.copy(tiny_bundle, tmp_path / "line3.inspector")
    (tmp_path / "line3").mkdir()  # a data folder of the same name beside it
    assert read_manifest_light(tmp_path / "line3")["model"]["model"] == "skip-ganomaly"
    ctx.set_bundle(tmp_path / "line3")
    assert ctx.bundle_path == (tmp_path / "line3.inspector").resolve()


def test_the_window_fits_a_1366x768_screen(qtbot, ctx) -> None:
    """Every view built (engineer mode): the window can be as small as a laptop screen, menus and status bar included."""
    from app.main_window import MainWindow

    ctx.set_role("engineer")
    win = MainWindow(ctx)
    qtbot.addWidget(win)
    for title in ("Calibrate", "Train"):
        win.engineer_view(title)
    hint = win.minimumSizeHint()
    assert hint.width() <= 1366 and hint.height() <= 768 - 48, hint  # a panel or task bar takes some height
    win.resize(1366, 720)
    win.show()
    assert win.statusBar().isVisible() and win.height() <= 720


# ---------------------------------------------------------------- Calibrate

@pytest.fixture
def calibrate_view(engineer_ctx, qtbot):
    from app.startup import load_style
    from app.views.calibrate import CalibrateView

    v = CalibrateView(engineer_ctx)
    v.setStyleSheet(load_style())  # the application's theme, as the window has it
    qtbot.addWidget(v)
    v.resize(1366, 700)
    v.show()
    yield v
    v.stop(10000)


def _calibrated_copy(tiny_bundle: Path, data: Path, out: Path) -> Path:
    from inspection_core.usecases.calibrate import calibrate_bundle

    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(tiny_bundle, out)
    calibrate_bundle(out, data, "youden", bootstrap=0, device="cpu")
    return out


def test_a_stored_calibration_finds_its_images_where_it_scored_them(calibrate_view, engineer_ctx, qtbot,
                                                                    tiny_bundle: Path, demo_data: Path,
                                                                    tmp_path: Path) -> None:
    engineer_ctx.set_bundle(_calibrated_copy(tiny_bundle, demo_data, tmp_path / "m" / "a.inspector"))
    v = calibrate_view
    assert v.scores is not None and v.paths and all(p.is_file() for p in v.paths)
    assert not v.gallery.missing_note and v.gallery.locate_button.isHidden()
    qtbot.waitUntil(lambda: len(v.gallery._thumbs) > 0, timeout=20000)  # real thumbnails, not grey squares


def test_images_moved_away_are_said_and_can_be_located(calibrate_view, engineer_ctx, qtbot, tiny_bundle: Path,
                                                       demo_data: Path, tmp_path: Path) -> None:
    data = tmp_path / "line-data"
    shutil.copytree(demo_data, data)
    bundle = _calibrated_copy(tiny_bundle, data, tmp_path / "m" / "b.inspector")
    moved = tmp_path / "archive" / "line-data"
    moved.parent.mkdir()
    data.rename(moved)
    engineer_ctx.set_bundle(bundle)
    v = calibrate_view
    assert v.scores is not None
    assert str(data) in v.gallery.missing_note and not v.gallery.locate_button.isHidden()
    v.histogram.high_line.setValue(float(np.median(v.scores)))  # some images are misjudged now
    qtbot.waitUntil(lambda: v.gallery_fp.count() + v.gallery_fr.count() > 0, timeout=3000)
    v.open_image(0)
    assert "locate that folder" in v.status.text() and "cannot read" not in v.status.text()
    assert not v.locate_images(tmp_path)  # a folder without them is refused, saying so
    assert v.locate_images(moved)
    assert all(p.is_file() for p in v.paths) and not v.gallery.missing_note and v.gallery.locate_button.isHidden()


def test_the_demo_bundles_calibration_images_are_made_again(calibrate_view, engineer_ctx, qtbot) -> None:
    from app.demo import shipped_demo_bundle

    demo = shipped_demo_bundle()
    if demo is None:
        pytest.skip("no shipped demo bundle")
    engineer_ctx.set_bundle(demo)
    v = calibrate_view
    qtbot.waitUntil(lambda: bool(v.paths) and v.paths[0].is_file(), timeout=60000)
    assert all(p.is_file() for p in v.paths) and not v.gallery.missing_note


def test_the_strategy_panel_is_never_cut_and_headers_are_not_dim(calibrate_view) -> None:
    from PySide6.QtGui import QPalette
    from PySide6.QtWidgets import QScrollArea

    v = calibrate_view
    scroll = next(s for s in v.findChildren(QScrollArea) if s.widget() is not None
                  and s.widget().isAncestorOf(v.strategies))
    assert scroll.widget().isAncestorOf(v.frame_check)  # the strategies and the frame check: one column
    for width in (1366, 1600, 1920):
        v.resize(width, 700)
        v.layout().activate()
        assert scroll.horizontalScrollBar().isHidden() or not scroll.horizontalScrollBar().isVisible()
        for panel in (v.strategies, v.frame_check):
            assert scroll.viewport().width() >= panel.minimumSizeHint().width(), (width, panel)
    text = v.bundle_label.palette().color(QPalette.ColorRole.WindowText)
    assert text.lightness() > 160, text.name()  # the header reads as text, not as a disabled line


# ---------------------------------------------------------------- Train, and every plot

def test_train_fields_show_their_start_and_empty_plots_say_what_comes(engineer_ctx, qtbot, tmp_path: Path) -> None:
    from app.views.train import TrainView

    v = TrainView(engineer_ctx)
    qtbot.addWidget(v)
    v.resize(1366, 700)
    v.show()
    folder = tmp_path / ("a-long-folder-name-of-the-line-" * 3) / "washers"
    folder.mkdir(parents=True)
    v.set_data_folder(folder)
    assert v.data_edit.cursorPosition() == 0 and v.data_edit.toolTip() == str(folder)  # its start shows
    v.name_edit.setModified(False)
    v._update_default_name()
    assert v.name_edit.cursorPosition() == 0 and v.name_edit.toolTip() == v.name_edit.text()
    for plot in (v.loss_plot, v.metric_plot):
        item = plot.plot_widget.getPlotItem()
        assert plot.empty.shown and "appear" in plot.empty.text
        assert not item.getAxis("left").isVisible() and not item.getAxis("bottom").isVisible()  # no 0-1 axes
        assert plot.plot_widget.backgroundBrush().color().lightness() < 60  # the dark theme, not white
    v.loss_plot.add_points(0.5, {"g_loss": 1.0})
    v.loss_plot.redraw()
    assert not v.loss_plot.empty.shown and v.loss_plot.plot_widget.getPlotItem().getAxis("left").isVisible()
    v.loss_plot.clear_series()
    assert v.loss_plot.empty.shown
    v.stop(5000)


def test_calibrate_plots_without_scores_say_so(calibrate_view) -> None:
    v = calibrate_view
    assert v.histogram.empty.shown and "score a calibration folder" in v.histogram.empty.text
    assert v.roc_plot.empty.shown
    assert v.histogram.backgroundBrush().color().lightness() < 60 and v.roc_plot.backgroundBrush().color().lightness() < 60
    v.set_scores([0.1, 0.2, 0.9, 1.0], [0, 0, 1, 1])
    assert not v.histogram.empty.shown and not v.roc_plot.empty.shown
    v.set_scores([0.1, 0.2, 0.3], [0, 0, 0])  # good images only: no ROC curve, and the plot says why
    assert v.roc_plot.empty.shown and "No ROC curve" in v.roc_plot.empty.text


def test_history_shows_each_score_as_a_share_of_its_threshold(ctx, qtbot) -> None:
    from app.views.history import COLUMNS, HistoryView

    ctx.history.record(score=0.0038, verdict="FAIL", threshold_high=0.0025, image_ref="a.png", bundle="demo")
    ctx.history.record(score=0.4, verdict="PASS", threshold_high=0.0, image_ref="b.png", bundle="demo")
    v = HistoryView(ctx)
    qtbot.addWidget(v)
    v.show()
    qtbot.waitUntil(lambda: v.model is not None and v.model.rowCount() == 2)
    col = [k for k, _title in COLUMNS].index("share")
    assert [v.model.data(v.model.index(r, col)) for r in (1, 0)] == ["152 %", ""]  # none for a threshold at 0
