"""Compare page: a real tiny comparison (two GAN families, quick preset, 32 px)
run from the page in a child process: overlaid curves, the table and the
recommendation shown; Cancel stops it; the classifier's box only where the
folder has labelled defects."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.context import AppContext
from app.views.compare import CompareView, open_compare
from inspection_core.usecases.compare import bundle_file, read_comparison

pytestmark = pytest.mark.gui


@pytest.fixture
def view(engineer_ctx: AppContext, qtbot, demo_data: Path) -> CompareView:
    v = CompareView(engineer_ctx, demo_data)
    qtbot.addWidget(v)
    v.resize(1300, 800)
    v.show()
    qtbot.waitUntil(lambda: bool(v.checks) and v.index is not None, timeout=60000)  # both answered on workers
    for name, box in v.checks.items():
        box.setChecked(name in ("ganomaly", "skip-ganomaly"))
    v.preset_combo.setCurrentText("quick")  # no pretrained weights, trains in seconds
    v.size_combo.setCurrentText("32")
    yield v
    v.cancel(15000)


def _curves(plot) -> list[str]:
    return sorted(item.name() for item in plot.getPlotItem().listDataItems() if item.name())


def test_a_comparison_shows_overlaid_curves_the_table_and_the_recommendation(view: CompareView, qtbot) -> None:
    assert view.checks["vgg16"].isEnabled()  # the demo folder has labelled defects
    assert view.start_button.isEnabled()
    view.start_button.click()
    assert view.cancel_button.isEnabled() and not view.start_button.isEnabled()
    qtbot.waitUntil(lambda: view.comparison is not None or "fail" in view.progress.format(), timeout=180000)
    c = view.comparison
    assert c is not None, view.status.text()
    assert [r.family for r in c.results] == ["ganomaly", "skip-ganomaly"]
    assert _curves(view.roc_plot) == sorted(f"{r.family} (AUROC {r.image_auroc:.3f})" for r in c.results)
    assert _curves(view.pr_plot) == sorted(f"{r.family} (AP {r.image_ap:.3f})" for r in c.results)
    assert view.table.rowCount() == 2
    for i, r in enumerate(c.results):
        assert view.table.item(i, 0).text() == r.family
        assert view.table.item(i, 1).text() == f"{r.image_auroc:.3f}"
    best = max(c.results, key=lambda r: round(r.image_auroc, 3))
    assert round(c.result(c.recommendation.family).image_auroc, 3) == round(best.image_auroc, 3)
    assert f"Recommended: {c.recommendation.family}" in view.recommendation.text()
    assert view.report is not None and view.report.is_file()
    saved = read_comparison(view.report.parent.parent / "comparison.json")  # what the page shows is what was written
    assert [r.image_auroc for r in saved.results] == [r.image_auroc for r in c.results]
    assert bundle_file(view.report.parent.parent, "ganomaly").is_file()
    assert view.start_button.isEnabled() and not view.cancel_button.isEnabled()


@pytest.mark.fault("app", "Cancel pressed while the Compare page trains its first family",
                   "the run stops, the page says so, no comparison or report is written")
def test_cancel_stops_the_comparison(view: CompareView, qtbot) -> None:
    view.start_button.click()
    out = Path(view.out_label.text())
    qtbot.waitUntil(lambda: "training" in view.progress.format() or "loading" in view.status.text(), timeout=60000)
    view.cancel_button.click()
    qtbot.waitUntil(lambda: view.job is None, timeout=60000)
    assert view.progress.format() == "cancelled" and "Cancelled" in view.status.text()
    assert view.comparison is None
    assert not (out / "comparison.json").exists() and not (out / "report").exists()
    assert view.start_button.isEnabled()


def test_the_classifier_needs_a_folder_with_labelled_defects(engineer_ctx: AppContext, qtbot, demo_data: Path,
                                                             tmp_path: Path) -> None:
    good = tmp_path / "parts" / "good"
    good.mkdir(parents=True)
    for i, p in enumerate(sorted(demo_data.glob("train/good/*.png"))[:20]):
        shutil.copy(p, good / f"{i:03d}.png")
    v = CompareView(engineer_ctx, good.parent)
    qtbot.addWidget(v)
    qtbot.waitUntil(lambda: bool(v.checks) and v.index is not None, timeout=60000)
    assert not v.checks["vgg16"].isEnabled() and "vgg16" not in v.chosen()
    assert "no labelled defective images" in v.checks["vgg16"].toolTip()
    assert v.chosen() == ["ganomaly", "patchcore", "skip-ganomaly"]  # the default families
    v.data_edit.setText(str(demo_data))
    v.check_data()
    qtbot.waitUntil(lambda: v.index is not None and v.checks["vgg16"].isEnabled(), timeout=60000)


def test_the_train_view_opens_the_compare_page_on_its_folder(engineer_ctx: AppContext, qtbot, demo_data: Path) -> None:
    from app.views.train import TrainView

    tv = TrainView(engineer_ctx)
    qtbot.addWidget(tv)
    tv.set_data_folder(demo_data, check=False)
    button = next(b for b in tv.findChildren(type(tv.start_button)) if b.text() == "Compare detectors…")
    button.click()
    page = tv._compare_view
    assert page.isVisible() and page.data_edit.text() == str(demo_data)
    assert open_compare(tv) is page  # one page, raised again
    qtbot.waitUntil(lambda: page.index is not None, timeout=60000)
