"""The demo a new user sees first must visibly work: the bundle shipped in
``models/`` loads, and on the generated demo test images defective washers
FAIL, good ones PASS, and the heat map lights up on the defect.

No Qt needed; it lives under tests/app because it tests ``app/demo.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import app.demo as demo
from app.settings import StationSettings
from inspection_core.bundle import load_bundle
from inspection_core.evaluation import evaluate
from inspection_core.inference import Inspector

MAX_BUNDLE_BYTES = 5 * 1024 * 1024


@pytest.fixture(scope="module")
def shipped() -> Path:
    path = demo.shipped_demo_bundle()
    assert path is not None, (
        f"no demo bundle built for this version's demo data in {[str(d) for d in demo.shipped_models_dirs()]}; "
        "build it with: python -m app.demo --build models/demo.inspector")
    return path


@pytest.fixture(scope="module")
def evaluated(shipped: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, object, Inspector]:
    """The shipped bundle scored on freshly generated demo images (the same
    function ``ensure_demo_data`` uses), through the evaluation code path."""
    root = demo.make_demo_data(tmp_path_factory.mktemp("demo") / "demo-data")
    inspector = Inspector(load_bundle(shipped), device="cpu")
    metrics, scored = evaluate(inspector, root, keep=True)
    return metrics, scored, inspector


def test_shipped_bundle_is_small_and_found_where_the_app_looks(shipped: Path) -> None:
    assert shipped.stat().st_size < MAX_BUNDLE_BYTES
    assert shipped.parent in demo.shipped_models_dirs()
    # the app prefers it over training: the demo path points at it
    assert demo.demo_bundle_path(StationSettings()) == shipped


def test_defective_parts_fail_and_good_parts_pass(evaluated) -> None:
    metrics, scored, inspector = evaluated
    assert metrics["n_defect"] == 40 and metrics["n_good"] == 30
    assert metrics["image_auroc"] >= 0.85
    th = inspector.manifest["threshold"]
    assert th["provisional"] is False and th["strategy"] == demo.DEMO_CALIBRATION_STRATEGY
    # calibrated on another seed's images, never on these
    assert inspector.manifest["calibration"]["note"].endswith(f"(seed {demo.DEMO_CALIBRATION_SEED})")
    c = metrics["confusion"]
    assert c["tp"] / metrics["n_defect"] >= 0.8, f"only {c['tp']} of {metrics['n_defect']} defective parts FAIL"
    assert c["tn"] / metrics["n_good"] >= 0.8, f"only {c['tn']} of {metrics['n_good']} good parts PASS"


def test_heat_map_lights_up_on_the_defect(evaluated) -> None:
    metrics, scored, inspector = evaluated
    assert metrics["pixel_auroc"] >= 0.9
    # what the Inspect view shows: the hottest spot of a defective part's heat map is on the defect
    from inspection_core.data.dataset import load_masks

    defect = [i for i, s in enumerate(scored.samples) if s.label == 1]
    masks = load_masks([scored.samples[i] for i in defect], inspector.preprocessing.image_size)
    hits = 0
    for k, i in enumerate(defect):
        heat = np.clip(scored.maps[i] / inspector.map_scale, 0, 1)
        y, x = np.unravel_index(np.argmax(heat), heat.shape)
        grown = np.pad(masks[k], 2)[y : y + 5, x : x + 5]  # within 2 px of the defect
        hits += bool(grown.any())
    assert hits / len(defect) >= 0.8, f"the heat map's peak is on the defect for only {hits} of {len(defect)} parts"


def test_recorded_figures_are_the_ones_a_user_gets(shipped: Path, evaluated) -> None:
    """The figures in the manifest (and models/README.md) were computed on the
    very images the demo generates: regenerating them gives the same numbers."""
    metrics, _, inspector = evaluated
    recorded = inspector.manifest["metrics"]
    now = demo.demo_figures(metrics)
    for key in ("image_auroc", "pixel_auroc", "defective_fail_rate", "good_pass_rate", "threshold"):
        assert now[key] == pytest.approx(recorded[key], abs=1e-6), key


def test_first_start_uses_the_shipped_bundle_without_training(shipped: Path, tmp_path: Path) -> None:
    settings = StationSettings(data_dir=str(tmp_path / "data"))
    events: list = []
    path = demo.ensure_demo_bundle(events.append, settings=settings)
    assert path == shipped
    assert not any(e.kind in ("step", "epoch") for e in events)
    assert not demo.cached_demo_bundle_path(settings).exists()
    line = sorted(demo.demo_line_path(settings).glob("*.png"))
    assert len(line) > 40 and any("good" in p.name for p in line) and any("good" not in p.name for p in line)


def test_a_bundle_built_for_other_demo_data_is_not_used(shipped: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Changing the demo images (here their size) makes the shipped bundle's
    threshold meaningless: the app then falls back to training its own."""
    monkeypatch.setattr(demo, "DEMO_IMAGE_SIZE", 64)
    settings = StationSettings(data_dir=str(tmp_path / "data"))
    assert demo.shipped_demo_bundle() is None
    assert demo.demo_bundle_path(settings) == demo.cached_demo_bundle_path(settings)
