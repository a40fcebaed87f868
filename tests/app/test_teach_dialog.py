"""The Teach dialog (History and Inspect) and the typed FAIL banner, offscreen,
on real tiny bundles, a real history and real images (ADR 0020)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.views.history import HistoryView
from app.views.teach_dialog import TeachDialog
from inspection_core.bundle import load_manifest

pytestmark = pytest.mark.gui


def _record(ctx, files: list[Path], bundle: Path, verdict: str = "FAIL", **extra) -> list[int]:
    name = load_manifest(bundle).name
    return [ctx.history.record(score=3.0, verdict=verdict, threshold_high=2.0, image_ref=str(f), bundle=name, **extra)
            for f in files]


@pytest.fixture
def history_view(ctx, qtbot, tmp_path: Path) -> HistoryView:
    ctx.settings.history_path = str(tmp_path / "history.sqlite3")
    v = HistoryView(ctx)
    qtbot.addWidget(v)
    v.resize(1300, 600)
    v.show()
    qtbot.waitUntil(lambda: v.model is not None)
    return v


@pytest.fixture
def mobilenet_patchcore(torch_home: Path, tmp_path: Path) -> tuple[Path, Path]:
    """(data, PatchCore on ImageNet MobileNetV2 features at 64 px) with 100 defective test images: enough for
    the re-check's rule (one more escape in 100 is the most it allows)."""
    from inspection_core.bundle import save_bundle
    from inspection_core.config import ModelConfig, TrainConfig
    from inspection_core.data.demo import make_demo_dataset
    from inspection_core.training import train

    data = make_demo_dataset(tmp_path / "washers", seed=2, size=64, n_train=48, n_test_good=12, n_test_defect_per_type=25)
    result = train(data, ModelConfig("patchcore", image_size=64), TrainConfig(batch_size=16, device="cpu", seed=0))
    return data, save_bundle(tmp_path / "mobilenet_pc.inspector", result.model, result.manifest)


def _run_check(dlg: TeachDialog, qtbot) -> None:
    dlg.check_btn.click()
    qtbot.waitUntil(lambda: dlg.plan is not None or dlg.status.text().startswith("Cannot"), timeout=60000)


def test_history_teaches_the_overridden_parts_and_saves_a_new_version(ctx, qtbot, history_view: HistoryView,
                                                                      mobilenet_patchcore: tuple[Path, Path],
                                                                      tmp_path: Path) -> None:
    demo_data, tiny_patchcore_bundle = mobilenet_patchcore
    goods = sorted((demo_data / "test" / "good").glob("*.png"))[:4]
    ids = _record(ctx, goods, tiny_patchcore_bundle)
    for i in ids[:2]:
        ctx.history.set_override(i, "PASS", "ana")
    ctx.set_bundle(tiny_patchcore_bundle)
    v = history_view
    assert not v.teach_btn.isEnabled()  # an operator overrides; an engineer teaches
    ctx.set_role("engineer")
    assert v.teach_btn.isEnabled()
    v.refresh()
    m = v.model
    rows = {m.record(r).id: r for r in range(m.rowCount())}
    assert m.data(m.index(rows[ids[0]], 0), Qt.ItemDataRole.BackgroundRole) is not None  # overridden: highlighted
    assert m.data(m.index(rows[ids[3]], 0), Qt.ItemDataRole.BackgroundRole) is None
    v.overridden_check.setChecked(True)
    assert m.rowCount() == 2
    v.overridden_check.setChecked(False)
    v.table.selectAll()
    v.teach_btn.click()
    dlg = v._teach_dialog
    assert isinstance(dlg, TeachDialog)
    qtbot.addWidget(dlg)
    assert sorted(p.name for p in dlg.chosen_paths()) == sorted(g.name for g in goods[:2])  # the overrides ticked
    dlg.overridden_only.setChecked(True)
    assert sum(not dlg.parts.item(i).isHidden() for i in range(dlg.parts.count())) == 2
    _run_check(dlg, qtbot)
    plan = dlg.plan
    assert plan is not None and plan.check is not None, dlg.status.text()
    text = dlg.figures.text()
    assert "before" in text and "after" in text and "false rejects" in text and "escapes" in text
    assert f"{100 * plan.check.after.escape_rate:.1f} %" in text
    assert plan.check.before.n_defect == 100
    assert plan.check.passed and plan.check.after.escapes <= plan.check.before.escapes + 1
    assert dlg.save_btn.isEnabled() and "Passes the re-check" in dlg.status.text()
    dlg.out_edit.setText(str(tmp_path / "taught.inspector"))
    with qtbot.waitSignal(dlg.saved, timeout=60000) as saved:
        dlg.save_btn.click()
    assert saved.args[0] == tmp_path / "taught.inspector"
    lin = load_manifest(tmp_path / "taught.inspector").lineage
    assert lin is not None and lin.parent == load_manifest(tiny_patchcore_bundle).bundle_id and lin.by == dlg.by_edit.text()
    assert sorted(a["file"] for a in lin.added or []) == sorted(g.name for g in goods[:2])


@pytest.mark.fault("app", "Teach… on parts that are really defective (a wrong override): the taught bundle lets defects pass",
                   "the dialog shows the rates before and after and 'Refused'; nothing can be saved")
def test_a_refused_teach_shows_the_figures_and_cannot_be_saved(ctx, qtbot, tiny_patchcore_bundle: Path,
                                                               demo_data: Path, tmp_path: Path) -> None:
    ctx.settings.history_path = str(tmp_path / "history.sqlite3")
    wrong = tmp_path / "overridden"
    wrong.mkdir()
    for p in sorted((demo_data / "test").glob("[!g]*/*.png")):
        shutil.copy(p, wrong / f"{p.parent.name}_{p.name}")
    ids = _record(ctx, sorted(wrong.iterdir()), tiny_patchcore_bundle)
    for i in ids:
        ctx.history.set_override(i, "PASS", "bob")
    dlg = TeachDialog(ctx, tiny_patchcore_bundle, ctx.history.query(limit=100))
    qtbot.addWidget(dlg)
    assert len(dlg.chosen_paths()) == 16
    _run_check(dlg, qtbot)
    assert dlg.plan is not None and not dlg.plan.passed
    assert "Refused: escapes rise" in dlg.status.text() and not dlg.save_btn.isEnabled()
    assert "escapes (16 defective)" in dlg.figures.text()
    dlg.save()  # a refused plan is never written
    qtbot.wait(200)
    assert not any(p.suffix == ".inspector" for p in tmp_path.iterdir())


def test_a_family_that_must_train_queues_the_parts(ctx, qtbot, tiny_ganomaly_bundle: Path, demo_data: Path,
                                                   tmp_path: Path) -> None:
    ctx.settings.history_path = str(tmp_path / "history.sqlite3")
    bundle = tmp_path / "gan.inspector"
    shutil.copy(tiny_ganomaly_bundle, bundle)
    _record(ctx, sorted((demo_data / "test" / "good").glob("*.png"))[:2], bundle)
    dlg = TeachDialog(ctx, bundle, ctx.history.query())
    qtbot.addWidget(dlg)
    _run_check(dlg, qtbot)
    assert dlg.plan is not None and dlg.plan.kind == "queued"
    assert "learns only by training" in dlg.status.text() and dlg.save_btn.text() == "Queue for training"
    with qtbot.waitSignal(dlg.saved, timeout=30000):
        dlg.save_btn.click()
    assert (tmp_path / "gan.teach-queue" / "queue.json").is_file() and "Queued in" in dlg.status.text()


def test_inspect_shows_a_typed_fail_and_history_filters_by_type(ctx, qtbot, tiny_patchcore_bundle: Path,
                                                                demo_data: Path, tmp_path: Path) -> None:
    from app.views.inspect import InspectView
    from inspection_core.defect_types import describe_answer
    from inspection_core.inference import Inspector
    from inspection_core.usecases.defect_types import train_defect_types

    typed = train_defect_types(tiny_patchcore_bundle, demo_data, out=tmp_path / "typed", device="cpu").path
    ctx.settings.history_path = str(tmp_path / "history.sqlite3")
    ctx.set_bundle(typed)
    view = InspectView(ctx)
    qtbot.addWidget(view)
    view.resize(1300, 700)
    view.show()
    try:
        assert view.start_source("folder", str(demo_data / "test" / "scratch"))
        with qtbot.waitSignal(view.runningChanged, timeout=60000, check_params_cb=lambda running: not running):
            pass
        view._render_latest()
        last = view._latest
        want = Inspector(typed, device="cpu").predict(last.image)
        assert want.verdict.value == "FAIL" and want.defect_type
        assert view.banner.text == f"FAIL: {describe_answer(want.defect_type, want.defect_confidence)}"
        assert ctx.history.get(last.record_id).defect_type == want.defect_type
        assert not view.teach_btn.isEnabled()
        ctx.set_role("engineer")
        assert view.teach_btn.isEnabled()
    finally:
        view.shutdown()
    hv = HistoryView(ctx)
    qtbot.addWidget(hv)
    hv.show()
    qtbot.waitUntil(lambda: hv.model is not None)
    hv.refresh()
    kinds = [hv.type_combo.itemData(i) for i in range(1, hv.type_combo.count())]
    assert want.defect_type in kinds and hv.type_combo.isVisibleTo(hv)
    hv.type_combo.setCurrentIndex(hv.type_combo.findData(want.defect_type))
    m = hv.model
    assert m.rowCount() == ctx.history.count(defect_type=want.defect_type) > 0
    assert all(m.record(r).defect_type == want.defect_type for r in range(m.rowCount()))
    assert m.data(m.index(0, 2)) == f"FAIL: {want.defect_type}"


def test_the_banner_reads_the_type() -> None:
    from app.widgets.verdict_banner import VerdictBanner

    b = VerdictBanner()
    b.set_verdict("FAIL", 3.0, 2.0, defect_type="scratch (0.82)")
    assert b.headline == "FAIL: scratch (0.82)" and "150 % of the threshold" in b.share
    b.set_verdict("PASS", 1.0, 2.0, defect_type="scratch (0.82)")  # only a FAIL carries a type
    assert b.headline == "PASS"
