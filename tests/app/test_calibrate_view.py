"""Calibrate view: what it shows is exactly what the core computes, the
strategy buttons place the line where the core says, missing defects are
handled honestly, and saving writes the bundle through the core."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from app.context import AppContext
from app.views.calibrate import CalibrateView
from app.views.calibrate_dialogs import PredictionDialog, SaveCalibrationDialog
from inspection_core import calibration as cal
from inspection_core.bundle import read_manifest
from inspection_core.types import Threshold

pytestmark = pytest.mark.gui


def scores_and_labels(n_good: int = 120, n_defect: int = 40) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    s = np.concatenate([rng.normal(0.0, 1.0, n_good), rng.normal(2.2, 1.0, n_defect)])
    return s, np.r_[np.zeros(n_good, int), np.ones(n_defect, int)]


@pytest.fixture
def ctx(engineer_ctx: AppContext) -> AppContext:
    return engineer_ctx


@pytest.fixture
def view(ctx: AppContext, qtbot) -> CalibrateView:
    v = CalibrateView(ctx)
    qtbot.addWidget(v)
    v.resize(1400, 900)
    v.show()
    yield v
    v.stop(10000)


def test_dragging_the_line_shows_the_cores_confusion_counts(view: CalibrateView) -> None:
    s, y = scores_and_labels()
    view.set_scores(s, y)
    assert view.histogram.isEnabled() and view.confusion.counts()["tp"] is not None
    for value in (-1.0, 0.37, 1.1, float(np.sort(s)[100]), 3.5):
        view.histogram.high_line.setValue(value)  # what a drag does
        op = cal.operating_point(s, y, Threshold(value))
        assert view.confusion.counts() == {"tn": op.tn, "fp": op.fp, "fn": op.fn, "tp": op.tp,
                                           "review_good": 0, "review_defect": 0}
        assert view.metric_labels["fpr"].text().startswith(f"{100 * op.fpr:.1f} %")
        assert view.metric_labels["fnr"].text().startswith(f"{100 * op.fnr:.1f} %")
        assert view.metric_labels["f1"].text() == f"{op.f1:.3f}"
        assert view.band_labels["fail"].text() == f"FAIL {op.n_fail}"
        assert view.roc_plot.point() == pytest.approx((op.fpr, op.recall))
        assert view.strategy == "manual" and view.target == value


def test_review_band_counts_follow_both_lines(view: CalibrateView) -> None:
    s, y = scores_and_labels()
    view.set_scores(s, y)
    view.histogram.high_line.setValue(2.0)
    view.two_check.setChecked(True)
    assert view.histogram.low_line.isVisible() and view.confusion.review_mode()
    view.histogram.low_line.setValue(0.5)
    op = cal.operating_point(s, y, Threshold(2.0, 0.5))
    counts = view.confusion.counts()
    assert (counts["review_good"], counts["review_defect"]) == (op.review_good, op.review_defect)
    assert (counts["tn"], counts["fp"], counts["fn"], counts["tp"]) == (op.tn, op.fp, op.fn, op.tp)
    assert view.band_labels["review"].text() == f"REVIEW {op.n_review}"
    # the PASS line cannot be dragged above the FAIL line
    view.histogram.low_line.setValue(3.0)
    high, low = view.histogram.thresholds()
    assert low <= high == 2.0
    view.two_check.setChecked(False)
    assert view.thresholds().low is None and not view.confusion.review_mode()


@pytest.mark.parametrize(("name", "spin", "value", "target"), [
    ("youden", None, None, None), ("f1", None, None, None), ("fpr", "fpr_target", 5.0, 0.05),
    ("fnr", "fnr_target", 10.0, 0.10), ("quantile", "quantile_target", 95.0, 0.95),
])
def test_strategy_buttons_place_the_line_where_the_core_says(view: CalibrateView, name: str, spin: str | None,
                                                              value: float | None, target: float | None) -> None:
    s, y = scores_and_labels()
    view.set_scores(s, y)
    view.histogram.high_line.setValue(-5.0)
    if spin:
        getattr(view, spin).setValue(value)
    view.strategy_buttons[name].click()
    expected = cal.choose_threshold(s, y, name, target)
    assert view.histogram.thresholds()[0] == pytest.approx(expected)
    assert view.strategy == name
    op = cal.operating_point(s, y, Threshold(expected))
    assert view.confusion.counts()["fp"] == op.fp


def test_without_defects_only_quantile_and_manual_are_offered(view: CalibrateView) -> None:
    s, _ = scores_and_labels(n_good=80, n_defect=0)
    y = np.zeros(80, int)
    view.set_scores(s, y)
    enabled = {n for n, b in view.strategy_buttons.items() if b.isEnabled()}
    assert enabled == {"quantile", "manual"}
    assert "defective images" in view.strategy_reason.text()
    assert "defective images" in view.strategy_buttons["youden"].toolTip()
    # the line starts at the 99 % quantile of the good scores, not at the lowest score
    assert view.histogram.thresholds()[0] == pytest.approx(cal.choose_threshold(s, y, "quantile", 0.99))
    assert view.metric_labels["fnr"].text() == "—"
    view.manual_value.setValue(1.25)
    view.strategy_buttons["manual"].click()
    assert view.histogram.thresholds()[0] == pytest.approx(1.25)


def test_nan_scores_are_refused_with_a_message(view: CalibrateView) -> None:
    s, y = scores_and_labels()
    s[5] = np.nan
    view.set_scores(s, y, [f"img{i}.png" for i in range(len(s))])
    assert view.scores is None
    assert "img5.png" in view.status.text() and "not finite" in view.status.text()
    assert not view.strategy_buttons["youden"].isEnabled()


def test_gallery_lists_the_misjudged_images(view: CalibrateView, tmp_path: Path, qtbot) -> None:
    s = np.array([0.1, 0.2, 0.9, 0.3, 0.8, 0.7])
    y = np.array([0, 0, 0, 1, 1, 1])
    view.set_scores(s, y, [tmp_path / f"p{i}.png" for i in range(6)])
    view.histogram.high_line.setValue(0.5)
    qtbot.waitUntil(lambda: view.gallery_tabs.tabText(0) == "False passes (1)", timeout=3000)
    assert view.gallery_tabs.tabText(1) == "False rejects (1)"
    assert view.gallery_fp.item(0).toolTip().endswith("p3.png")
    assert view.gallery_fr.item(0).toolTip().endswith("p2.png")


def test_score_a_folder_inspect_a_miss_and_save_to_the_bundle(view: CalibrateView, ctx: AppContext, qtbot,
                                                               tiny_bundle: Path, demo_data: Path,
                                                               tmp_path: Path) -> None:
    bundle = tmp_path / "models" / "cal.inspector"
    bundle.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(tiny_bundle, bundle)
    old_high = read_manifest(bundle)["threshold"]["high"]
    ctx.set_bundle(bundle)
    view.folder_edit.setText(str(demo_data))
    view.start_scoring()
    assert view.is_busy() and view.progress.isVisible()
    qtbot.waitUntil(lambda: view.scores is not None and not view.is_busy(), timeout=60000)
    assert len(view.scores) == 12 + 16 and int(view.labels.sum()) == 16
    assert view.thresholds().high == pytest.approx(old_high)  # starts at the bundle's threshold
    view.strategy_buttons["youden"].click()
    new_high = view.thresholds().high
    assert new_high == pytest.approx(cal.choose_threshold(view.scores, view.labels, "youden"))

    # a misjudged image opens side by side with its reconstruction and heat map
    view.histogram.high_line.setValue(float(np.median(view.scores)))
    view.strategy_buttons["youden"].click()
    qtbot.waitUntil(lambda: view.gallery_fp.count() + view.gallery_fr.count() > 0, timeout=3000)
    gallery = view.gallery_fp if view.gallery_fp.count() else view.gallery_fr
    item = gallery.item(0)
    gallery.itemClicked.emit(item)
    dialogs = view.findChildren(PredictionDialog)
    assert dialogs
    qtbot.waitUntil(lambda: dialogs[0].prediction is not None, timeout=30000)
    assert dialogs[0].recon_label.pixmap() is not None and not dialogs[0].heat_label.pixmap().isNull()
    dialogs[0].close()

    seen: dict[str, str] = {}

    def confirm() -> None:
        dlg = QApplication.activeModalWidget()
        assert isinstance(dlg, SaveCalibrationDialog)
        seen["old"], seen["new"] = dlg.old_label.text(), dlg.new_label.text()
        dlg.note.setPlainText("tested on the demo line")
        dlg.accept()

    updated: list[object] = []
    ctx.bundleUpdated.connect(updated.append)
    QTimer.singleShot(200, confirm)
    view.save_to_bundle()
    qtbot.waitUntil(lambda: bool(updated), timeout=20000)
    assert f"{old_high:.6g}" in seen["old"] and f"{new_high:.6g}" in seen["new"] and "youden" in seen["new"]
    m = read_manifest(bundle)
    assert m["threshold"]["high"] == pytest.approx(new_high) and m["threshold"]["strategy"] == "youden"
    assert m["calibration_history"][-1]["note"] == "tested on the demo line"
    assert m["calibration_history"][-1]["old"]["high"] == pytest.approx(old_high)
    assert len(m["calibration"]["scores"]) == 28
    assert all(p.startswith("test/") for p in m["calibration"]["paths"]), "paths relative to the data folder"
    assert m["inference"]["engine"].startswith("cpu-") and m["calibration"]["precision_path"] == m["inference"]["precision"]

    # the stored scores redraw the same picture without rescoring
    before = view.confusion.counts()
    view.set_scores([0.0, 1.0], [0, 1])
    view.load_stored_scores()
    assert view.confusion.counts() == before
    assert view.thresholds().high == pytest.approx(new_high)
    assert view.save_button.isEnabled()


@pytest.mark.parametrize("bundle_fixture, data_fixture, expected", [
    ("tiny_vgg16_bundle", "demo_data", "held-out test split (the classifier"),  # never its training defects
    ("tiny_seed3_bundle", "good_defect_data", "held-out test split (the bundle"),  # seed 3's split, not seed 0's
    ("tiny_bundle", "good_defect_data", "all images (the bundle was not trained"),  # a foreign folder: all of it
])
def test_cli_and_view_choose_the_same_images_and_threshold(view: CalibrateView, ctx: AppContext, qtbot,
                                                           tmp_path: Path, request: pytest.FixtureRequest,
                                                           bundle_fixture: str, data_fixture: str,
                                                           expected: str, capsys: pytest.CaptureFixture) -> None:
    """The same bundle and folder give the same calibration images and the same
    threshold in ``inspector calibrate`` and in the Calibrate view."""
    from inspection_core.cli.main import main
    from inspection_core.data.dataset import scan_dataset
    from inspection_core.selection import training_seed

    source, data = request.getfixturevalue(bundle_fixture), request.getfixturevalue(data_fixture)
    cli_bundle, view_bundle = (Path(shutil.copy(source, tmp_path / name)) for name in ("cli.inspector", "view.inspector"))
    assert main(["calibrate", "--bundle", str(cli_bundle), "--data", str(data), "--strategy", "youden",
                 "--bootstrap", "0"]) == 0
    assert expected in capsys.readouterr().out
    cli = read_manifest(cli_bundle)

    ctx.set_bundle(view_bundle)
    view.folder_edit.setText(str(data))
    view.start_scoring()
    qtbot.waitUntil(lambda: view.scores is not None and not view.is_busy(), timeout=60000)
    assert expected in view.status.text()
    view.strategy_buttons["youden"].click()
    view_paths = sorted(p.relative_to(data).as_posix() for p in view.paths)
    assert view_paths == sorted(cli["calibration"]["paths"])
    assert view.thresholds().high == cli["threshold"]["high"]

    # and the rule keeps what it promises: no image the bundle was trained on
    manifest = read_manifest(source)
    split = manifest["training"]["split"]
    if split["kind"] == "supervised":
        assert set(view_paths) == {Path(p).as_posix() for p in split["test_paths"]}
    elif bundle_fixture == "tiny_seed3_bundle":
        trained = {s.path.relative_to(data).as_posix() for s in scan_dataset(data, seed=training_seed(manifest)).train}
        seed0 = {s.path.relative_to(data).as_posix() for s in scan_dataset(data, seed=0).train}
        assert trained != seed0 and not trained & set(view_paths)


def test_the_view_puts_the_threshold_on_the_path_the_fidelity_rule_picks(view: CalibrateView, ctx: AppContext, qtbot,
                                                                         tiny_bundle: Path, demo_data: Path,
                                                                         tmp_path: Path) -> None:
    """Where this machine has a fast scoring path, the view scores on it and on
    fp32 and, as ``inspector calibrate`` does, the rule (AUROC within 0.005,
    at most 0.5 % of verdicts different) decides which path a strategy's or a
    hand-placed threshold belongs to; the bundle keeps the check."""
    from inspection_core.acceleration import fast_precision

    if fast_precision("cpu") is None:
        pytest.skip("this CPU has no native bf16: there is no fast path to check")
    bundle = Path(shutil.copy(tiny_bundle, tmp_path / "fast.inspector"))
    ctx.set_bundle(bundle)
    view.folder_edit.setText(str(demo_data))
    view.start_scoring()
    qtbot.waitUntil(lambda: view.scores is not None and not view.is_busy(), timeout=60000)
    view.strategy_buttons["youden"].click()
    assert "verdicts differ" in view.status.text()
    fid = view._fidelity
    assert fid is not None and fid.n == len(view.scores)
    shown = view._calibration_set.inspector.precision
    assert shown == ("bf16" if fid.ok else "fp32")

    def save(note: str) -> dict:
        updated: list[object] = []
        ctx.bundleUpdated.connect(updated.append)

        def confirm() -> None:
            dlg = QApplication.activeModalWidget()
            dlg.note.setPlainText(note)
            dlg.accept()

        QTimer.singleShot(200, confirm)
        view.save_to_bundle()
        qtbot.waitUntil(lambda: bool(updated), timeout=20000)
        return read_manifest(bundle)

    m = save("youden")
    rec = m["inference"]["fidelity"]["bf16"]
    assert m["inference"]["precision"] == m["calibration"]["precision_path"] == shown and rec["ok"] == fid.ok
    np.testing.assert_allclose(m["calibration"]["scores"], view.scores)
    # a hand-placed line: the same value on each path decides, and the value is what is saved
    value = float(np.quantile(view.scores, 0.7))
    view.histogram.high_line.setValue(value)
    m = save("by hand")
    assert m["threshold"]["high"] == pytest.approx(value) and m["threshold"]["strategy"] == "manual"
    assert m["inference"]["fidelity"]["bf16"]["threshold"]["high"] == pytest.approx(value)
