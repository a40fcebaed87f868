"""Inspect, History and Calibrate with a PatchCore bundle: a family without a
reconstruction (random resnet18 weights: the mechanics, no download)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtWidgets import QApplication

from app.context import AppContext
from app.widgets.image_pane import NO_RECONSTRUCTION
from inspection_core.bundle import read_manifest, update_manifest

pytestmark = pytest.mark.gui


@pytest.fixture
def bundle(tiny_patchcore_bundle: Path, tmp_path: Path) -> Path:
    """A copy whose threshold is the median held-out score: some parts FAIL (and keep their image)."""
    path = Path(shutil.copy(tiny_patchcore_bundle, tmp_path / "patchcore.inspector"))
    median = read_manifest(path)["score_stats"]["q50"]
    update_manifest(path, lambda m: {**m, "threshold": {**m["threshold"], "high": median}})
    return path


def test_inspect_shows_image_and_heat_map_and_says_there_is_no_reconstruction(
        ctx: AppContext, qtbot, bundle: Path, demo_data: Path) -> None:
    from app.views.history import HistoryView
    from app.views.inspect import InspectView

    ctx.set_bundle(bundle)
    view = InspectView(ctx)
    qtbot.addWidget(view)
    view.resize(1300, 700)
    view.show()
    assert "patchcore" in view.bundle_panel.model_label.text()
    view.rate_spin.setValue(0)  # as fast as scoring allows
    assert view.start_source("folder", str(demo_data / "test"))
    qtbot.waitUntil(lambda: view.worker is None, timeout=60000)  # the view stops itself at the end
    view._render_latest()
    assert view.results_received == 28 and ctx.history.count() == 28
    assert view.image_pane.has_image and view.heat_pane.has_image
    assert not view.recon_pane.has_image and view.recon_pane.placeholder == NO_RECONSTRUCTION
    # every verdict shown and recorded is the one this bundle gives the image (scored again here)
    from inspection_core.data.images import read_image
    from inspection_core.inference import Inspector

    reference = Inspector(bundle, device="cpu")
    want = {ref: p.verdict.value for ref, p in (
        (r.image_ref, reference.predict(read_image(r.image_ref))) for r in ctx.history.query(limit=100))}
    assert len(want) == 28 and set(want.values()) == {"PASS", "FAIL"}, "the median threshold passes some, fails some"
    assert view.banner.text == want[view._latest.frame_ref]
    assert {r.image_ref: r.verdict for r in ctx.history.query(limit=100)} == want

    history = HistoryView(ctx)
    qtbot.addWidget(history)
    history.show()
    model = history.ensure_model()
    assert model.total() == 28 and {model.record(r).bundle for r in range(28)} == {"tiny_patchcore"}
    failed = [r for r in range(28) if model.record(r).verdict == "FAIL"]
    assert failed, "the median threshold fails some parts"
    opened: list[Path] = []
    history.imageOpened.connect(opened.append)
    history._open_index(model.index(failed[0], 0))
    assert opened and opened[0].is_file()  # the kept image of a PatchCore FAIL


def test_calibrate_scores_and_opens_a_miss_without_a_reconstruction(engineer_ctx: AppContext, qtbot, bundle: Path,
                                                                   demo_data: Path) -> None:
    from app.views.calibrate import CalibrateView
    from app.views.calibrate_dialogs import PredictionDialog

    engineer_ctx.set_bundle(bundle)
    view = CalibrateView(engineer_ctx)
    qtbot.addWidget(view)
    view.show()
    view.folder_edit.setText(str(demo_data))
    view.start_scoring()
    qtbot.waitUntil(lambda: view.scores is not None and not view.is_busy(), timeout=60000)
    assert len(view.scores) == 28 and np.isfinite(view.scores).all()
    view.histogram.high_line.setValue(float(np.median(view.scores)))
    fp, fr = view.misjudged()
    assert fp or fr
    view.open_image((fp or fr)[0])
    dialog = view.findChildren(PredictionDialog)[0]
    qtbot.waitUntil(lambda: dialog.prediction is not None, timeout=30000)
    assert dialog.recon_label.text() == NO_RECONSTRUCTION
    assert not dialog.image_label.pixmap().isNull() and not dialog.heat_label.pixmap().isNull()
    dialog.close()
    QApplication.processEvents()
    view.stop(10000)
