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


def tiny(form) -> None:
    """A GAN small enough to train in seconds (the quick preset: no pretrained weights)."""
    form.preset_combo.setCurrentText("quick")
    form.size_combo.setCurrentText("32")
    form.param_editors["base_width"].set_value(8)
    form.param_editors["latent_dim"].set_value(16)
    form.batch_spin.setValue(16)
    form.device_combo.setCurrentText("cpu")


@pytest.fixture
def view(ctx: AppContext, qtbot, demo_data: Path) -> TrainView:
    v = TrainView(ctx)
    qtbot.addWidget(v)
    v.resize(1300, 850)
    v.show()
    qtbot.waitUntil(lambda: v.form.model_combo.count() > 0, timeout=60000)  # the list is read on a worker
    assert v.form.model_combo.currentText() == "patchcore"  # the default family; these tests train a tiny GAN
    v.form.model_combo.setCurrentText("ganomaly")
    v.data_edit.setText(str(demo_data))
    v.check_data()
    tiny(v.form)
    qtbot.waitExposed(v)
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
    qtbot.waitUntil(lambda: not view.ctx.running_jobs("data-check"), timeout=15000)  # the stale one has answered
    qtbot.wait(50)  # and its result has been delivered to the view
    assert view.index is None and "loose' is empty" in view.data_status.text()
    assert not view.start_button.isEnabled()


def test_training_reports_progress_and_stops_on_request(view: TrainView, ctx: AppContext, qtbot) -> None:
    view.form.budget_spin.setValue(2000)  # updates: far longer than the test waits
    out = view.output_path()
    qtbot.wait(300)  # the first paint of a new window is not what this test measures
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
    view.form.budget_spin.setValue(1)
    view.name_edit.setText("tiny run")
    view.name_edit.setModified(True)
    view.form.fast_cpu_check.setChecked(True)  # the engineer's fast CPU training switch reaches the trainer
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


def test_a_preset_fills_every_field_and_the_configs_are_the_cores(view: TrainView) -> None:
    from inspection_core.recipes import resolve

    form = view.form
    assert [form.preset_combo.itemText(i) for i in range(form.preset_combo.count())] == ["quick", "standard", "thorough"]
    for preset in ("thorough", "quick"):  # each a change from the fixture's quick
        form.preset_combo.setCurrentText(preset)
        m, t = view.configs()
        rm, rt = resolve("ganomaly", preset, channels=view.index.channels, train={"device": "cpu"})
        assert (m.to_dict(), t.to_dict()) == (rm.to_dict(), rt.to_dict())  # what `inspector train --preset` gives
    form.preset_combo.setCurrentText("quick")
    assert form.budget_combo.currentData() == "updates" and form.budget_spin.value() == 150
    assert form.size_combo.currentText() == "64" and form.normalize_combo.currentData() == "mean_std"
    # what the engineer changes is laid over the preset, as ``inspector train`` does with its flags
    form.budget_combo.setCurrentIndex(form.budget_combo.findData("updates"))
    form.budget_spin.setValue(300)
    form.schedule_combo.setCurrentText("cosine")
    form.augment["hflip"].setChecked(True)
    form.augment["rotate"].setValue(10.0)
    m, t = view.configs()
    assert t.updates == 300 and t.lr_schedule == "cosine" and t.augment == {"hflip": True, "rotate": 10.0}
    assert t.preset == "quick" and m.params["base_width"] == 32


def test_the_demo_recipe_can_be_reproduced_in_the_form(view: TrainView) -> None:
    import app.demo as demo

    form = view.form
    form.model_combo.setCurrentText(demo.DEMO_MODEL)
    form.preset_combo.setCurrentText(demo.DEMO_PRESET)
    form.size_combo.setCurrentText(str(demo.DEMO_MODEL_SIZE))
    form.normalize_combo.setCurrentIndex(form.normalize_combo.findData(demo.DEMO_NORMALIZE))
    form.budget_combo.setCurrentIndex(form.budget_combo.findData("epochs"))
    form.budget_spin.setValue(demo.DEMO_EPOCHS)
    form.batch_spin.setValue(demo.DEMO_BATCH)
    form.lr_spin.setValue(demo.DEMO_LR)
    form.device_combo.setCurrentText("cpu")
    form.fast_cpu_check.setChecked(False)  # the demo trains in fp32 on every CPU
    for name, value in {"base_width": demo.DEMO_WIDTH, "latent_dim": demo.DEMO_LATENT, **demo.DEMO_PARAMS}.items():
        form.param_editors[name].set_value(value)
    m, t = view.configs()
    dm, dt = demo.demo_configs()
    assert m.to_dict() == dm.to_dict()
    # samples_per_epoch only says how many reconstructions the view is shown per epoch
    assert {**t.to_dict(), "samples_per_epoch": 0} == dt.to_dict()


def test_the_classifier_reads_the_learning_rate_field(view: TrainView) -> None:
    form = view.form
    form.model_combo.setCurrentText("vgg16")
    assert form.lr_spin.value() == pytest.approx(1e-4)  # its own optimiser setting, not TrainConfig.lr
    form.lr_spin.setValue(5e-5)
    form.weights_combo.setCurrentIndex(form.weights_combo.findData("scratch"))
    m, _t = view.configs()
    assert m.params["lr"] == pytest.approx(5e-5) and m.params["init"] == "scratch"


def test_patchcore_shows_only_what_applies_and_says_where_the_weights_go(view: TrainView, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from inspection_core.backbones import hub_checkpoint_path

    form = view.form
    form.model_combo.setCurrentText("patchcore")
    for hidden in (form.budget_row, form.lr_spin, form.schedule_combo):
        assert not form.train_form.isRowVisible(hidden)
    assert not form.augment_box.isVisibleTo(view) and form.batch_spin.isVisibleTo(view)
    assert form.model_form.isRowVisible(form.backbone_combo) and form.model_form.isRowVisible(form.weights_row)
    assert "layers" in form.param_editors and "weights" not in form.param_editors and "backbone" not in form.param_editors
    assert "layout" in form.param_editors["global_grid"].toolTip()  # what each parameter does, on hover
    label = form.params_form.labelForField(form.param_editors["global_grid"])
    assert label.toolTip() == form.param_editors["global_grid"].toolTip()
    assert form.weights_combo.findData("scratch") < 0  # PatchCore needs pretrained weights

    form.backbone_combo.setCurrentText("resnet18")
    form.backbones["resnet18"]["cached"] = False  # as on an offline station
    form.weights_combo.setCurrentIndex(form.weights_combo.findData("imagenet"))
    form._show_weights_note()
    note = form.weights_note.text()
    assert "not in torch's cache" in note and str(hub_checkpoint_path("resnet18")) in note

    weights = tmp_path / "resnet18.pth"
    weights.write_bytes(b"")
    form.weights_combo.setCurrentIndex(form.weights_combo.findData("file"))
    form.weights_edit.setText(str(weights))
    assert form.weights_edit.isVisibleTo(view) and "does not exist" not in form.weights_note.text()
    m, t = view.configs()
    assert m.model == "patchcore" and m.params["backbone"] == "resnet18" and m.params["weights"] == str(weights)
    assert t.augment == {} and t.lr_schedule == "constant"  # nothing of an update loop is sent
    view.form.model_combo.setCurrentText("ganomaly")
    assert form.train_form.isRowVisible(form.budget_row) and not form.model_form.isRowVisible(form.weights_row)


def test_a_one_pass_run_shows_both_phases(view: TrainView) -> None:
    from inspection_core.progress import ProgressEvent

    view.form.model_combo.setCurrentText("patchcore")
    assert "no reconstructions" in view.sample_hint.text()
    seen = []
    for epoch, step, steps, message in ((1, 1, 3, "features: 16/43 images"), (1, 3, 3, "features: 43/43 images"),
                                        (2, 1, 276, "building: 1/276"), (2, 276, 276, "building: 276/276")):
        view._on_progress(ProgressEvent("step", epoch, 2, step, steps, message=message))
        seen.append((view.progress.value(), view.progress.format()))
    values = [v for v, _ in seen]
    assert values == sorted(values) and values[1] == 500 and values[-1] == 1000  # each phase is half the bar
    assert seen[0][1].startswith("phase 1/2: features") and seen[2][1].startswith("phase 2/2: building")
    # the fit's validation is said as such, not as an "Epoch 1/1"
    view._on_progress(ProgressEvent("epoch", 1, 1, 3, 3, metrics={"val_mean_score": 1.25}))
    assert view.status.text() == "Fitted; validation: mean score of good images 1.25"


def test_the_classifier_says_how_many_labelled_images_it_trains_on_and_holds_out(view: TrainView, qtbot) -> None:
    assert not view.split_note.isVisibleTo(view)  # a GAN learns from good images only: nothing to say
    view.form.model_combo.setCurrentText("vgg16")
    assert view.split_note.isVisibleTo(view)
    text = view.split_note.text()
    assert "learns from labelled images" in text and "held out to test it" in text
    assert "held-out split is small" in text and view.split_note.property("tone") == "warn"  # 4 defects per type
    view.form.model_combo.setCurrentText("patchcore")
    assert not view.split_note.isVisibleTo(view)
    view._cancel_estimate()  # no estimate thread left behind for the next test
    qtbot.waitUntil(lambda: view._estimate_job is None or not view._estimate_job.running, timeout=60000)
