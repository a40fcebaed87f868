"""The rule that makes a fast scoring path a bundle's default: each path at
its own threshold, image AUROC within 0.005 and at most 0.5 % of verdicts
different; checked when a bundle is trained and when it is calibrated, and
stored in the bundle."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from inspection_core.acceleration import cpu_can_pack, cpu_has_native_bf16
from inspection_core.bundle import read_manifest
from inspection_core.calibration import calibration_record
from inspection_core.inference import Inspector
from inspection_core.types import Threshold
from inspection_core.usecases.fidelity import (MAX_VERDICT_CHANGES, compare_paths, fidelity_record,
                                               quantile_rule)

# the forced bf16 path packs bf16 oneDNN convolutions: a CPU with AVX2 only
# cannot run them (the path falls back to fp32 and there is nothing to check)
needs_onednn = pytest.mark.skipif(not (cpu_can_pack() and cpu_has_native_bf16()),
                                  reason="no oneDNN bf16 convolutions here (torch build or CPU): no bf16 path to check")


def _check(ref: np.ndarray, fast: np.ndarray, labels: np.ndarray, q: float = 0.9):
    rule = quantile_rule(q)
    return compare_paths(ref, fast, labels, rule(ref, labels), rule(fast, labels), precision="bf16", engine="t")


def test_a_uniform_shift_is_absorbed_by_the_paths_own_thresholds() -> None:
    rng = np.random.default_rng(0)
    ref = np.concatenate([rng.normal(1.0, 0.1, 400), rng.normal(2.0, 0.3, 200)])
    y = np.r_[np.zeros(400, int), np.ones(200, int)]
    fid = _check(ref, ref * 1.03, y)  # every score 3 % off: a per-score bound of 1 % would refuse it
    assert fid.ok and fid.changed == 0 and abs(fid.auroc_delta) < 1e-12
    assert fid.threshold["high"] == pytest.approx(fid.threshold_fp32["high"] * 1.03)


def test_changed_verdicts_and_a_lost_auroc_each_refuse_the_fast_path() -> None:
    rng = np.random.default_rng(1)
    ref = np.concatenate([rng.normal(1.0, 0.1, 400), rng.normal(2.0, 0.3, 200)])
    y = np.r_[np.zeros(400, int), np.ones(200, int)]
    noisy = ref + rng.normal(0, 0.05, ref.size)  # reorders parts near the threshold
    fid = _check(ref, noisy, y)
    assert fid.changed_rate > MAX_VERDICT_CHANGES and not fid.ok
    # AUROC: swap a few good and defective scores far from the threshold
    worse = ref.copy()
    order = np.argsort(worse[y == 1])[:8]
    idx_def = np.flatnonzero(y == 1)[order]
    idx_good = np.flatnonzero(y == 0)[np.argsort(worse[y == 0])[:8]]
    worse[idx_def], worse[idx_good] = worse[idx_good].copy(), worse[idx_def].copy()
    fid = compare_paths(ref, worse, y, Threshold(5.0), Threshold(5.0), precision="bf16", engine="t")
    assert fid.changed == 0 and fid.auroc_delta < -0.005 and not fid.ok


def test_a_passing_record_moves_the_threshold_to_the_fast_path_and_a_new_calibration_drops_stale_ones() -> None:
    m = {"threshold": {"high": 1.0, "low": None, "strategy": "quantile", "target": 0.99, "provisional": True},
         "inference": {"precision": "fp32"}}
    ref = np.linspace(0, 2, 300)
    passing = compare_paths(ref, ref * 1.01, None, Threshold(1.0), Threshold(1.01), precision="bf16", engine="e")
    m2 = fidelity_record(m, passing, {"precision": "bf16", "engine": "e", "device": "cpu"})
    assert m2["threshold"]["high"] == 1.01 and m2["threshold"]["strategy"] == "quantile"
    assert m2["inference"]["precision"] == "bf16" and m2["inference"]["fidelity"]["bf16"]["threshold_fp32"]["high"] == 1.0
    failing = compare_paths(ref, ref[::-1].copy(), None, Threshold(1.0), Threshold(1.0), precision="bf16", engine="e")
    m3 = fidelity_record(m2, failing, {"precision": "bf16", "engine": "e"})
    assert m3["inference"]["precision"] == "fp32" and m3["inference"]["fidelity"]["bf16"]["ok"] is False
    assert m == {"threshold": m["threshold"], "inference": {"precision": "fp32"}}  # pure

    from inspection_core.calibration import calibrate

    res = calibrate(np.r_[ref, ref + 3], np.r_[np.zeros(300, int), np.ones(300, int)], "youden")
    m4 = calibration_record(m2, res, inference={"precision": "bf16", "engine": "e", "device": "cpu"})
    # a threshold set by hand later: the old check's fp32 threshold no longer belongs to it
    assert "threshold_fp32" not in m4["inference"]["fidelity"]["bf16"]
    assert m4["inference"]["fidelity"]["bf16"]["changed"] == 0


def test_training_says_it_checks_the_fast_path_only_where_this_machine_has_one(demo_data: Path, tmp_path: Path) -> None:
    from inspection_core.acceleration import fast_precision
    from inspection_core.config import ModelConfig, TrainConfig
    from inspection_core.usecases.training import train_and_save

    messages: list[str] = []
    out = train_and_save(demo_data, ModelConfig("ganomaly", image_size=32, params={"latent_dim": 16, "base_width": 8}),
                         TrainConfig(epochs=1, batch_size=16, device="cpu", seed=0, samples_per_epoch=4),
                         tmp_path / "m.inspector", progress=lambda ev: messages.append(ev.message))
    has_fast = fast_precision("cpu") is not None
    assert any("checking the fast scoring path" in m for m in messages) == has_fast
    assert ("fidelity" in (read_manifest(out.path).get("inference") or {})) == has_fast


@needs_onednn
def test_training_checks_the_fast_path_and_the_bundle_keeps_the_result(demo_data: Path, tmp_path: Path) -> None:
    from inspection_core.config import ModelConfig, TrainConfig
    from inspection_core.usecases.training import train_and_save

    out = train_and_save(demo_data, ModelConfig("ganomaly", image_size=32, params={"latent_dim": 16, "base_width": 8}),
                         TrainConfig(epochs=2, batch_size=16, device="cpu", seed=0, samples_per_epoch=4),
                         tmp_path / "m.inspector", fast_precision_request="bf16")
    m = read_manifest(out.path)
    rec = m["inference"]["fidelity"]["bf16"]
    n_val, n_test = m["training"]["data"]["n_val"], m["metrics"]["n_good"] + m["metrics"]["n_defect"]
    assert rec["n"] == n_val + n_test and rec["auroc_fp32"] == pytest.approx(m["metrics"]["image_auroc"])
    assert rec["ok"] == (rec["changed"] <= MAX_VERDICT_CHANGES * rec["n"] and abs(rec["auroc"] - rec["auroc_fp32"]) <= 0.005)
    assert m["inference"]["precision"] == ("bf16" if rec["ok"] else "fp32")
    # the provisional threshold belongs to the path used; fp32's own is the provisional rule on fp32 scores
    assert m["threshold"]["high"] == pytest.approx((rec["threshold"] if rec["ok"] else rec["threshold_fp32"])["high"],
                                                   rel=1e-5)
    assert rec["threshold_fp32"]["high"] == pytest.approx(m["score_stats"]["q99"], rel=1e-4)


@needs_onednn
def test_calibration_checks_the_fast_path_and_the_threshold_belongs_to_the_path_used(
        tiny_ganomaly_bundle: Path, demo_data: Path, tmp_path: Path) -> None:
    from inspection_core.usecases.calibrate import calibrate_bundle

    bundle = Path(shutil.copy(tiny_ganomaly_bundle, tmp_path / "b.inspector"))
    out = calibrate_bundle(bundle, demo_data, "youden", bootstrap=0, device="cpu", fast_precision_request="bf16")
    fid, m = out.fidelity, read_manifest(bundle)
    assert fid is not None and fid.n == len(m["calibration"]["scores"])
    used = "bf16" if fid.ok else "fp32"
    assert m["inference"]["precision"] == m["calibration"]["precision_path"] == used
    assert m["inference"]["fidelity"]["bf16"]["ok"] == fid.ok
    # the scores stored are the chosen path's, and its threshold is the bundle's
    insp = Inspector(bundle, device="cpu", precision=used)
    assert m["threshold"]["high"] == (fid.threshold if fid.ok else fid.threshold_fp32)["high"]
    from inspection_core.evaluation import score_samples

    again = score_samples(insp, out.calibration_set.scored.samples)
    np.testing.assert_allclose(again.scores, m["calibration"]["scores"], rtol=1e-6)
