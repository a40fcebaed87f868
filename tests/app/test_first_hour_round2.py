"""The first hour, round 2 (the app's half): what a new user on a 2-core
machine met following the README. PatchCore is the Train view's default and
a long run is said before Start; a failed training says why in full at the
top of the view and offers the weights file it needs; the wheel scrolls the
form instead of changing the box under the pointer; Start stays on screen;
the first window fits a 1366 x 768 screen; an existing bundle is replaced
only when the user says so; an empty folder says so; History's numbers and
columns read cleanly; About names every family."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QPointF, QRect, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication, QComboBox, QFileDialog, QMessageBox, QSpinBox

from app.context import AppContext
from app.views.train import TrainView

pytestmark = pytest.mark.gui

ROOT = Path(__file__).resolve().parents[2]
SHARED_WEIGHTS = ROOT.parent / "shared" / "weights" / "mobilenet_v2-b0353104.pth"
FIRST_WINDOW = 1366, 768


def _train_view(ctx: AppContext, qtbot, data: Path | None, size: tuple[int, int] = (1300, 850)) -> TrainView:
    v = TrainView(ctx)
    qtbot.addWidget(v)
    v.resize(*size)
    v.show()
    qtbot.waitUntil(lambda: v.form.model_combo.count() > 0, timeout=60000)  # the list is read on a worker
    if data is not None:
        v.data_edit.setText(str(data))
        v.check_data()
    qtbot.waitExposed(v)
    return v


def _wheel(widget, steps: int = -1) -> QWheelEvent:
    """One notch of the mouse wheel over ``widget`` (down for a negative ``steps``)."""
    pos = QPointF(widget.rect().center())
    ev = QWheelEvent(pos, QPointF(widget.mapToGlobal(pos.toPoint())), QPoint(), QPoint(0, 120 * steps),
                     Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, ev)
    return ev


# ---------------------------------------------------------------- 1: the default family and a long run said first

def test_patchcore_is_the_train_views_default(engineer_ctx: AppContext, qtbot, demo_data: Path) -> None:
    v = _train_view(engineer_ctx, qtbot, demo_data)
    assert v.form.model_combo.currentText() == "patchcore"
    assert v.form.one_pass and not v.form.train_form.isRowVisible(v.form.budget_row)
    m, _t = v.configs()
    assert m.model == "patchcore" and v.form.backbone_combo.currentText() == "mobilenet_v2"
    v.shutdown()


def test_a_long_training_is_said_before_start(engineer_ctx: AppContext, qtbot, demo_data: Path) -> None:
    """A GAN run of many updates: the form says how long on this machine,
    that it is long, and how long the default family takes instead."""
    v = _train_view(engineer_ctx, qtbot, demo_data)
    form = v.form
    form.model_combo.setCurrentText("ganomaly")
    form.budget_combo.setCurrentIndex(form.budget_combo.findData("updates"))
    form.budget_spin.setValue(20000)  # long on any CPU
    form.device_combo.setCurrentText("cpu")
    qtbot.waitUntil(lambda: v.estimate is not None and "20000 updates" in v.estimate_label.text(), timeout=120000)
    text = v.estimate_label.text()
    assert v.estimate.seconds > 180 and v.estimate.units == 20000
    assert "on this machine" in text and "GANomaly, standard preset: 20000 updates of 16 images at 128 px" in text
    assert "PatchCore fits in" in text and v.estimate_label.property("tone") == "warn"
    assert v.estimate_label.isVisible() and v.estimate_label.fits()
    # the budget alone changed: the probe is not made again, the arithmetic is
    seconds = v.estimate.seconds
    form.budget_spin.setValue(10000)
    qtbot.waitUntil(lambda: "10000 updates" in v.estimate_label.text(), timeout=30000)
    assert v.estimate.seconds < seconds
    v.shutdown()


# ---------------------------------------------------------------- 2: a failure told in full, in the view's terms

def test_a_failed_training_says_why_at_the_top_and_offers_the_weights_file(
        engineer_ctx: AppContext, qtbot, demo_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PatchCore with ImageNet weights, none in torch's cache and no network (a
    proxy that refuses): the training process fails fast, for real."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # nothing listens there: no download
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    v = _train_view(engineer_ctx, qtbot, demo_data, size=FIRST_WINDOW)
    assert v.form.model_combo.currentText() == "patchcore" and v.form.weights_combo.currentData() == "imagenet"
    v.form.device_combo.setCurrentText("cpu")
    v.start()
    qtbot.waitUntil(lambda: not v.is_busy(), timeout=120000)
    qtbot.waitUntil(lambda: v.alert.isVisible(), timeout=5000)
    text = v.alert_text
    assert text.startswith("Training failed: the pretrained weights are missing — mobilenet_v2"), text
    assert "the download failed (connection refused)" in text
    assert "mobilenet_v2" in text and "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth" in text
    assert str(tmp_path / "empty-torch-home") in text  # where to put the file
    assert "--weights" not in text and "Error:" not in text  # no command-line flag, no Python class names
    assert "Choose weights file" in text and v.weights_button.isVisible()
    qtbot.wait(50)
    assert v.alert_label.fits(), "the message is cut"
    assert v.alert_label.visibleRegion().boundingRect() == v.alert_label.rect()  # at the top, not below the fold
    assert v.alert.mapTo(v, QPoint(0, 0)).y() < 40
    assert v.progress.format() == "failed" and "at the top" in v.status.text()

    weights = tmp_path / "mobilenet_v2-b0353104.pth"
    weights.write_bytes(SHARED_WEIGHTS.read_bytes() if SHARED_WEIGHTS.is_file() else b"")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(weights), ""))
    v.weights_button.click()
    assert v.form.weights_combo.currentData() == "file" and v.form.weights_edit.text() == str(weights)
    m, _t = v.configs()
    assert m.params["weights"] == str(weights)  # the next Start trains from it
    assert "Weights file set" in v.alert_text
    v.shutdown()


def test_a_failure_message_is_put_in_the_views_terms() -> None:
    from app.views.train import explain_failure

    text, weights = explain_failure("TrainingProcessError: ValueError: patchcore: image size 100 is too small")
    assert text == "Training failed: patchcore: image size 100 is too small" and not weights
    assert explain_failure("TrainingProcessError: ")[0] == "Training failed: the training process ended without saying why"
    text, weights = explain_failure(
        "TrainingProcessError: WeightsUnavailableError: resnet18 ImageNet weights are not available: not in torch's "
        "cache ('/c/resnet18.pth') and the download failed (URLError: <urlopen error [Errno -2] Name or service not "
        "known>). To get them: download U on a machine with internet and put the file at '/c/resnet18.pth' "
        "(torchvision's cache, where training looks first), or pass it with --weights FILE.")
    assert weights and text == (
        "Training failed: the pretrained weights are missing — resnet18 ImageNet weights are not available: not in "
        "torch's cache ('/c/resnet18.pth') and the download failed (name or service not known). To get them: download "
        "U on a machine with internet and put the file at '/c/resnet18.pth' (torchvision's cache, where training "
        "looks first), or choose a local copy of the file with “Choose weights file…” and start again.")


# ---------------------------------------------------------------- 3: the wheel, and Start in view

def test_the_wheel_does_not_change_a_box_it_passes_over(engineer_ctx: AppContext, qtbot, demo_data: Path) -> None:
    v = _train_view(engineer_ctx, qtbot, demo_data)
    spin, combo = v.form.batch_spin, v.form.preset_combo
    assert spin.focusPolicy() == Qt.FocusPolicy.StrongFocus and combo.focusPolicy() == Qt.FocusPolicy.StrongFocus
    batch, preset = spin.value(), combo.currentText()
    ev = _wheel(spin)
    assert spin.value() == batch and not ev.isAccepted()  # left to the scroll area under it
    _wheel(spin.lineEdit())  # the box's text field is the box too
    _wheel(combo)
    assert spin.value() == batch and combo.currentText() == preset
    spin.setFocus()
    qtbot.waitUntil(spin.hasFocus, timeout=2000)
    _wheel(spin)
    assert spin.value() == batch - 1  # a box the user clicked into takes the wheel
    later = QSpinBox(value=5)  # every box of the application, made before or after
    qtbot.addWidget(later)
    later.show()
    _wheel(later)
    assert later.value() == 5 and later.focusPolicy() == Qt.FocusPolicy.StrongFocus
    assert isinstance(v.form.model_combo, QComboBox)
    v.shutdown()


def test_start_is_on_screen_in_a_window_that_fits_1366x768(engineer_ctx: AppContext, qtbot, demo_data: Path) -> None:
    from app.main_window import MainWindow, fit_to_screen

    engineer_ctx.settings.data_dir = str(demo_data)
    w = MainWindow(engineer_ctx)
    qtbot.addWidget(w)
    hint = w.minimumSizeHint()
    r = fit_to_screen(QRect(0, 0, 1360, 820), QRect(0, 0, *FIRST_WINDOW), (hint.width(), hint.height()))
    assert r.width() <= 1366 * 0.9 + 1 and r.height() <= 768 * 0.9 + 1
    w.resize(r.size())
    w.show()
    w.tabs.setCurrentIndex(3)
    v = w.train_view
    qtbot.waitUntil(lambda: v.form.model_combo.count() > 0, timeout=60000)
    qtbot.waitExposed(w)
    qtbot.wait(100)
    start = v.start_button
    assert start.isVisible() and start.visibleRegion().boundingRect() == start.rect()  # whole, not scrolled away
    top_left = start.mapTo(w, QPoint(0, 0))
    assert w.rect().contains(QRect(top_left, start.size()))
    assert v.form_scroll.verticalScrollBar().maximum() > 0  # the form does scroll at this size; Start does not
    w.close()


def test_the_first_window_fits_a_1366x768_screen(tmp_path: Path) -> None:
    """A fresh start (no saved geometry) on a 1366 x 768 screen: the window,
    its status bar and its right-hand panel on the screen."""
    screen = tmp_path / "screen.json"
    screen.write_text(json.dumps({"screens": [{"name": "laptop", "x": 0, "y": 0, "width": FIRST_WINDOW[0],
                                               "height": FIRST_WINDOW[1], "logicalDpi": 96, "logicalBaseDpi": 96,
                                               "dpr": 1}]}))
    script = """
import json
from PySide6.QtCore import QRect, QPoint
from PySide6.QtWidgets import QApplication
app = QApplication([])
from app.startup import configure_qsettings, load_style
configure_qsettings()
app.setStyle("Fusion")
app.setStyleSheet(load_style())  # the application's look: its fonts and paddings decide the sizes
from app.context import AppContext
from app.main_window import MainWindow
from app.settings import StationSettings
w = MainWindow(AppContext(StationSettings.load(), role="engineer"))
w.show()
app.processEvents()
def g(widget):
    p = widget.mapToGlobal(QPoint(0, 0))
    return [p.x(), p.y(), widget.width(), widget.height()]
a = w.screen().availableGeometry()
print(json.dumps({"available": [a.x(), a.y(), a.width(), a.height()], "frame": [w.frameGeometry().x(),
      w.frameGeometry().y(), w.frameGeometry().width(), w.frameGeometry().height()],
      "client": g(w), "status": g(w.statusBar()), "tabs": g(w.tabs)}))
w.close()
"""
    env = {**os.environ, "QT_QPA_PLATFORM": f"offscreen:configfile={screen}",
           "INSPECTOR_CONFIG_DIR": str(tmp_path / "cfg"), "INSPECTOR_DATA_DIR": str(tmp_path / "data")}
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    geo = json.loads(out.stdout.strip().splitlines()[-1])
    avail = QRect(*geo["available"])
    assert avail.size().width() == FIRST_WINDOW[0]
    for part in ("client", "status", "tabs"):  # the window, its status bar and its right-hand side
        assert avail.contains(QRect(*geo[part])), (part, geo)
    assert geo["frame"][3] <= FIRST_WINDOW[1] * 0.9 + 1  # 90 % of the height: room for the title bar
    assert geo["frame"][2] <= FIRST_WINDOW[0] + 4  # as narrow as the Inspect view's source bar allows


def test_a_saved_window_from_a_larger_monitor_is_brought_onto_this_screen() -> None:
    from app.main_window import fit_to_screen

    screen = QRect(0, 0, 1366, 728)  # a taskbar below
    r = fit_to_screen(QRect(1500, 200, 1800, 1000), screen, (1204, 428))
    assert screen.contains(r) and r.width() == 1229 and r.height() == 655
    same = fit_to_screen(QRect(10, 10, 800, 600), screen)
    assert same == QRect(10, 10, 800, 600)  # a window that fits is left alone


# ---------------------------------------------------------------- 5: replacing a bundle is asked first

def test_an_existing_bundle_is_replaced_only_when_the_user_says_so(
        engineer_ctx: AppContext, qtbot, demo_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    v = _train_view(engineer_ctx, qtbot, demo_data)
    v.form.model_combo.setCurrentText("ganomaly")
    v.form.preset_combo.setCurrentText("quick")
    v.form.size_combo.setCurrentText("32")
    v.form.device_combo.setCurrentText("cpu")
    v.form.budget_spin.setValue(2000)
    v.name_edit.setText("line-3")
    v.name_edit.setModified(True)
    out = v.output_path()
    out.write_bytes(b"the model in use on line 3")
    asked: list[str] = []
    answer = [QMessageBox.StandardButton.No]

    def question(_parent, title, text, *args, **kwargs):
        asked.append(f"{title}: {text}")
        return answer[0]

    monkeypatch.setattr(QMessageBox, "question", question)
    v.start()
    assert len(asked) == 1 and "line-3.inspector exists" in asked[0] and "Replace" in asked[0]
    assert not v.is_busy() and out.read_bytes() == b"the model in use on line 3"
    assert "Not started" in v.status.text()
    answer[0] = QMessageBox.StandardButton.Yes
    v.start()
    assert len(asked) == 2 and v.is_busy()
    v.stop(15000)
    assert not v.is_busy()


# ---------------------------------------------------------------- 6: a folder without images says so

def test_a_folder_without_images_says_so(inspect_view, qtbot, tmp_path: Path) -> None:
    empty = tmp_path / "line-3" / "today"
    (empty / "morning").mkdir(parents=True)  # sub-folders, none with an image
    (empty / "notes.txt").write_text("not an image")
    view = inspect_view
    assert view.start_source("folder", str(empty))
    qtbot.waitUntil(lambda: view.worker is None, timeout=30000)
    assert view.state_kind == "warning"
    assert view.state_text.startswith(f"No images found in {empty}") and "sub-folders" in view.state_text
    assert view.state_strip.isVisible() and view.banner.text == "NO IMAGES"

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "part-001.png").write_bytes(b"not a png")
    assert view.start_source("folder", str(broken))
    qtbot.waitUntil(lambda: view.worker is None, timeout=30000)
    assert view.state_text.startswith(f"No readable images in {broken}"), view.state_text


# ---------------------------------------------------------------- 7: History's numbers and columns, About

def test_history_scores_have_one_count_of_decimals_and_every_column_fits(ctx: AppContext, qtbot) -> None:
    from app.views.history import COLUMNS, HistoryView

    for score in (0.0038, 0.01234, 0.1, 1.5, 0.00201):
        ctx.history.record(score=score, verdict="FAIL" if score > 0.0025 else "PASS", threshold_high=0.0025,
                           image_ref=f"/data/line-3/{score}.png", bundle="demo", station="station-1")
    v = HistoryView(ctx)
    qtbot.addWidget(v)
    v.resize(int(FIRST_WINDOW[0] * 0.9), 600)
    v.show()
    qtbot.waitUntil(lambda: v.model is not None and v.model.rowCount() == 5)
    keys = [k for k, _t in COLUMNS]
    scores = [v.model.data(v.model.index(r, keys.index("score"))) for r in range(5)]
    assert sorted(scores) == ["0.00201", "0.00380", "0.01234", "0.10000", "1.50000"]
    assert {len(s.split(".")[1]) for s in scores} == {5}  # the same decimals in every row
    assert v.model.data(v.model.index(0, keys.index("threshold"))) == "0.00250"
    header = v.table.horizontalHeader()
    qtbot.waitExposed(v)
    for i, (_k, title) in enumerate(COLUMNS):
        assert v.table.columnWidth(i) >= header.fontMetrics().horizontalAdvance(title) + 16, title
    last = len(COLUMNS) - 1
    title_end = header.sectionViewportPosition(last) + header.fontMetrics().horizontalAdvance(COLUMNS[last][1]) + 16
    assert title_end <= v.table.viewport().width(), "the last column's title is cut at the window's edge"


def test_about_names_every_family(ctx: AppContext, qtbot, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.main_window import MainWindow
    from app.views.train_form import family_name
    from inspection_core.models.registry import BUILTIN_FAMILIES, family

    w = MainWindow(ctx)
    qtbot.addWidget(w)
    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "about", lambda _p, _t, text: shown.append(text))
    w._about()
    assert shown and "PatchCore" in shown[0]
    for path in BUILTIN_FAMILIES:  # the shipped families (tests register toy ones of their own)
        name = family(path.rsplit(".", 1)[-1].replace("_", "-")).name
        assert family_name(name) in shown[0], name
    w.close()
