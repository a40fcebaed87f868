"""The typed manifest: round trips, migrations, keys of newer releases, and
the bundles of earlier releases (tests/fixtures/bundles) still loading and
scoring as they did."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from inspection_core.bundle import BundleError, load_bundle, load_manifest, read_manifest, update_manifest
from inspection_core.manifest import (
    FORMAT_VERSION,
    MIGRATIONS,
    FidelityCheck,
    Manifest,
    ScoreStats,
    TrainingSummary,
    section,
)
from inspection_core.types import Threshold

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "bundles"
DEMO = ROOT / "models" / "demo.inspector"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
OLD_BUNDLES = sorted(k for k in EXPECTED if k.endswith(".inspector"))


def _raw(path: Path) -> dict:
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("manifest.json"))


def test_every_format_has_one_migration() -> None:
    assert sorted(MIGRATIONS) == list(range(1, FORMAT_VERSION))


def test_the_demo_manifest_round_trips_and_reads_by_attribute() -> None:
    raw = _raw(DEMO)
    m = Manifest.from_dict(raw)
    assert m.to_dict() == {**raw, "format_version": FORMAT_VERSION}
    assert Manifest.from_dict(m.to_dict()) == m
    assert m.migrated_from == 1 and m.format_version == FORMAT_VERSION
    assert m.score_stats is not None and m.score_stats.map_scale == raw["score_stats"]["map_scale"]
    assert m.threshold.threshold == Threshold(raw["threshold"]["high"])
    assert m.data.fingerprint == raw["training"]["data"]["fingerprint"]
    assert m.data.input_stats is not None and m.data.input_stats.shape == [128, 128]
    assert m.training is not None and m.training.seed == 0
    assert m.calibration is not None and len(m.calibration.scores or []) == 70
    assert m.calibration_history and m.calibration_history[0].strategy == "youden"
    assert m.inference is not None and m.inference.calibrated_on == "fp32"
    assert m.frame_limits.min_contrast == raw["frame_check"]["min_contrast"]
    assert m.metrics is not None and m.metrics.image_auroc == raw["metrics"]["image_auroc"]
    assert m.extra == {"demo": raw["demo"]}  # a key the manifest does not know is kept
    assert m.bundle_id == raw["weights"]["sha256"][:12]


@pytest.mark.parametrize("name", [n for n in OLD_BUNDLES if not n.startswith("models/")])
def test_each_fixture_manifest_round_trips(name: str) -> None:
    raw = _raw(FIXTURES / name)
    migrated = MIGRATIONS[1](raw)
    m = Manifest.from_dict(raw)
    assert m.to_dict() == migrated and Manifest.from_dict(m.to_dict()) == m
    assert m.frame_check is not None and m.to_dict()["frame_check"] == raw["frame_check"]


def test_frame_limits_are_written_as_read() -> None:
    raw = _raw(DEMO)
    raw["frame_check"] = {"min_contrast": 3.123456789, "enabled": False}
    m = Manifest.from_dict(raw)
    assert m.frame_limits.min_contrast == 3.123456789 and not m.frame_limits.enabled
    assert m.to_dict()["frame_check"] == {"min_contrast": 3.123456789, "enabled": False}


def test_keys_of_a_newer_release_are_kept_through_a_rewrite(tmp_path: Path) -> None:
    """A newer minor release may add keys: an older one keeps them when it
    rewrites the threshold (ADR 0017)."""
    raw = _raw(FIXTURES / "ganomaly-format1.inspector")
    raw["line_profile"] = {"station": 4}
    raw["score_stats"]["q999"] = 0.5
    raw["threshold"]["set_by"] = "engineer"
    bundle = tmp_path / "newer-keys.inspector"
    with zipfile.ZipFile(FIXTURES / "ganomaly-format1.inspector") as src, zipfile.ZipFile(bundle, "w") as dst:
        dst.writestr("manifest.json", json.dumps(raw))
        dst.writestr("weights.pt", src.read("weights.pt"))
    m = load_manifest(bundle)
    assert m.extra["line_profile"] == {"station": 4}
    assert m.score_stats is not None and m.score_stats.extra == {"q999": 0.5}

    def lower(d: dict) -> dict:
        d["threshold"]["high"] = 1e-5
        return d

    update_manifest(bundle, lower)
    after = read_manifest(bundle)
    assert after["line_profile"] == {"station": 4} and after["score_stats"]["q999"] == 0.5
    assert after["threshold"]["set_by"] == "engineer" and after["threshold"]["high"] == 1e-5


def test_a_changed_manifest_is_written_back_through_to_dict() -> None:
    m = Manifest.from_dict(_raw(DEMO))
    lower = m.with_threshold(Threshold(0.002, 0.001))
    d = lower.to_dict()
    assert d["threshold"] == {**_raw(DEMO)["threshold"], "high": 0.002, "low": 0.001}
    assert Manifest.from_dict(d).threshold.threshold == Threshold(0.002, 0.001)
    stats = replace(m.score_stats or ScoreStats(), map_scale=None)
    assert "map_scale" in stats.to_dict()  # a key that was read stays written, as null
    assert ScoreStats(map_scale=None).heat_scale == 1.0


@pytest.mark.parametrize("family, moved", [
    ("ganomaly", {"latent_dim": 16, "base_width": 8}),
    ("skip-ganomaly", {"latent_dim": 16, "base_width": 8}),
    ("bigan", {"latent_dim": 16, "base_width": 8}),
    ("vgg16", {"base_width": 8}),
    ("patchcore", {}),
])
def test_format_1_model_keys_move_into_params_of_the_families_that_take_them(family: str, moved: dict) -> None:
    raw = _raw(DEMO)
    raw["model"] = {"model": family, "image_size": 64, "channels": 3, "latent_dim": 16, "base_width": 8,
                    "params": {"top_k": 0.5}, "normalize": "none"}
    m = Manifest.from_dict(raw)
    assert m.model.params == {"top_k": 0.5, **moved}
    assert "latent_dim" not in m.to_dict()["model"] and raw["model"]["latent_dim"] == 16  # the input is unchanged


def test_a_value_already_in_params_wins_over_the_format_1_key() -> None:
    raw = _raw(DEMO)
    raw["model"]["base_width"] = 99
    assert Manifest.from_dict(raw).model.params["base_width"] == 16


def test_a_format_2_manifest_with_a_format_1_model_key_is_refused_by_name() -> None:
    raw = {**_raw(DEMO), "format_version": 2}
    raw["model"]["latent_dim"] = 64
    with pytest.raises(BundleError, match=r"'model.latent_dim' belongs in 'model.params'"):
        Manifest.from_dict(raw, "x.inspector")


def test_functions_that_take_a_partial_dict_read_its_sections() -> None:
    assert section({}, "training", TrainingSummary) is None
    tr = section({"training": {"split": {"seed": 3}}}, "training", TrainingSummary)
    assert tr is not None and tr.seed == 3
    inf = Manifest.from_dict(_raw(DEMO)).inference
    assert inf is not None and inf.check("bf16") is None
    raw = {"inference": {"precision": "bf16", "fidelity": {"bf16": {"ok": True, "threshold_fp32": {"high": 1.0}}}}}
    check = section(raw, "inference", type(inf))
    assert check is not None and isinstance(check.check("bf16"), FidelityCheck) and check.check("bf16").ok


def test_reading_a_manifest_never_imports_torch() -> None:
    code = ("import sys; from inspection_core.bundle import load_manifest; "
            f"m = load_manifest({str(DEMO)!r}); assert m.name == 'demo'; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False", out.stdout + out.stderr


# --------------------------------------------------------------------------- earlier releases' bundles
def test_the_fixtures_are_small_and_of_format_1() -> None:
    for name in OLD_BUNDLES:
        path = FIXTURES / name if (FIXTURES / name).exists() else ROOT / name
        assert _raw(path)["format_version"] == 1, name
        if path.parent == FIXTURES:
            assert path.stat().st_size < 1 << 20, name
    assert "latent_dim" in _raw(FIXTURES / "ganomaly-format1-legacy-keys.inspector")["model"]


@pytest.mark.parametrize("name", OLD_BUNDLES)
def test_a_bundle_of_an_earlier_release_loads_and_scores_as_it_did(name: str, tmp_path: Path) -> None:
    """Each bundle scores the fixture images as the release that wrote it did
    (fp32 on the CPU), before and after a rewrite in this format."""
    from inspection_core.data.images import read_image
    from inspection_core.inference import Inspector

    source = FIXTURES / name if (FIXTURES / name).exists() else ROOT / name
    path = shutil.copy(source, tmp_path / Path(name).name)
    expected = EXPECTED[name]
    images = [read_image(FIXTURES / "images" / n) for n in EXPECTED["images"]]
    for rewritten in (False, True):
        if rewritten:  # a threshold saved with this version: the file is now of this format
            update_manifest(path, lambda d: d)
            assert _raw(Path(path))["format_version"] == FORMAT_VERSION
        insp = Inspector(load_bundle(path), device="cpu", precision="fp32")
        preds = insp.predict_batch(images)
        np.testing.assert_allclose([p.score for p in preds], expected["scores"], rtol=1e-5, atol=1e-9)
        assert [p.verdict.value for p in preds] == expected["verdicts"]
        assert insp.threshold.to_dict() == expected["threshold"]


def test_the_format_1_legacy_bundle_is_the_same_model_as_its_modern_twin() -> None:
    legacy = load_bundle(FIXTURES / "ganomaly-format1-legacy-keys.inspector")
    modern = load_bundle(FIXTURES / "ganomaly-format1.inspector")
    assert legacy.meta.migrated_from == 1
    assert legacy.model_config == modern.model_config
    assert legacy.model_config.params["latent_dim"] == 16
