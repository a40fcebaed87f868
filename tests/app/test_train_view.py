"""Train view: the data check, a real tiny training that reports progress,
stops on request leaving no bundle, and a completed run that saves a bundle
into the user's model folder — all without blocking the event loop."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from app.context import AppContext
from app.views.train import TrainView
from inspection_core.bundle import read_manifest

pytestmark = pytest.mark.gui


from _gaps import GapMeter  # noqa: E402


@pytest.fixture
def ctx(engineer_ctx: AppContext) -> AppContext:
    return engineer_ctx


@pytest.fixture
def view(ctx: AppContext, qtbot, demo_data: Path) -> TrainView:
    v = TrainView(ctx)
    qtbot.addWidget(v)
    v.resize(1300, 850)
    v.show()
    qtbot.waitUntil(lambda: v.model_combo.count() > 0, timeout=60000)  # the list is read on a worker
    assert v.model_combo.currentText() == "ganomaly"
    v.data_edit.setText(str(demo_data))
    v.check_data()
    v.size_combo.setCurrentText("32")
    v.width_spin.setValue(8)
    v.latent_spin.setValue(16)
    v.batch_spin.setValue(16)
    v.device_combo.setCurrentText("cpu")
    qtbot.waitExposed(v)
    qtbot.wait(300)  # the first paint of a new window is not what the tests measure
    yield v
    v.stop(10000)


def test_data_check_shows_counts_or_the_layout_error(view: TrainView, tmp_path: Path) -> None:
    assert view.index is not None
    assert "48</b> for training" in view.data_status.text()
    assert view.start_button.isEnabled()
    (tmp_path / "loose").mkdir()
    (tmp_path / "loose" / "x.txt").write_text("not an image")
    view.data_edit.setText(str(tmp_path / "loose"))
    view.check_data()
    assert view.index is None
    assert "no training images" in view.data_status.text()
    assert not view.start_button.isEnabled()


def test_a_typed_folder_is_checked_in_the_background_and_stale_checks_are_dropped(
        view: TrainView, qtbot, demo_data: Path, tmp_path: Path) -> None:
    (tmp_path / "loose").mkdir()
    view.data_edit.setText(str(tmp_path / "loose"))
    view.data_edit.setText(str(demo_data))  # typed on: only the last folder counts
    qtbot.waitUntil(lambda: "for training" in view.data_status.text(), timeout=15000)
    assert view.index is not None and view.start_button.isEnabled()

    view.check_data_in_background()
    assert "Checking" in view.data_status.text() and not view.start_button.isEnabled()
    view.data_edit.setText(str(tmp_path / "loose"))
    view.check_data()  # a newer check: the one still running for the demo folder must not win
    qtbot.wait(1500)
    assert view.index is None and "loose' is empty" in view.data_status.text()
    assert not view.start_button.isEnabled()


def test_training_reports_progress_and_stops_on_request(view: TrainView, ctx: AppContext, qtbot) -> None:
    view.epochs_spin.setValue(200)  # far longer than the test waits
    out = view.output_path()
    with GapMeter() as gaps:
        view.start()
        assert view.is_busy() and view.stop_button.isEnabled()
        qtbot.waitUntil(lambda: bool(view.loss_plot.keys())
                        and view.loss_plot.drawn_points(view.loss_plot.keys()[0]) >= 2, timeout=90000)
        assert view.progress.value() > 0
        assert "ETA" in view.progress.format()
        t0 = time.monotonic()
        view.stop()
        qtbot.waitUntil(lambda: not view.is_busy(), timeout=10000)
        stop_s = time.monotonic() - t0
    qtbot.waitUntil(lambda: view.progress.format() == "stopped", timeout=5000)
    assert stop_s < 5.0, f"training took {stop_s:.1f} s to stop"
    assert not out.exists()
    assert list(ctx.user_models_dir().iterdir()) == []  # no temp file left either
    assert "no bundle was written" in view.status.text()
    assert view.start_button.isEnabled() and not view.stop_button.isEnabled()
    gaps.assert_responsive()


def test_completed_training_saves_a_bundle_the_inspect_view_finds(view: TrainView, ctx: AppContext, qtbot) -> None:
    view.epochs_spin.setValue(1)
    view.name_edit.setText("tiny run")
    view.name_edit.setModified(True)
    view.fast_cpu_check.setChecked(True)  # the engineer's fast CPU training switch reaches the trainer
    changed: list[object] = []
    ctx.bundleChanged.connect(changed.append)
    # Responsiveness while training is asserted in the stop test above; here the
    # run ends with the summary being laid out, a one-off hitch (about 0.3 s
    # measured on a loaded machine) that is a known, open issue.
    view.start()
    qtbot.waitUntil(lambda: not view.is_busy(), timeout=90000)
    qtbot.waitUntil(lambda: view.saved_path is not None or "failed" in view.progress.format(), timeout=5000)
    assert view.saved_path == ctx.user_models_dir() / "tiny-run.inspector", view.status.text()
    assert view.saved_path in ctx.list_bundles()
    m = read_manifest(view.saved_path)
    assert m["model"]["image_size"] == 32 and m["model"]["params"]["base_width"] == 8
    assert m["training"]["precision"] == "bf16-amp"
    assert m["metrics"]["image_auroc"] is not None  # evaluated on the test split
    assert view.summary_box.isVisible() and "Image AUROC" in "".join(
        view.metrics_grid.itemAt(i).widget().text() for i in range(view.metrics_grid.count()))
    assert view.sample_grid.row_captions()[:2] == ["input", "reconstruction"]
    assert view.metric_plot.keys()  # one validation point per epoch
    view.use_button.click()
    assert ctx.bundle_path == view.saved_path.resolve() and changed
