"""The training loop: progress, cancellation, validation, failure handling."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from inspection_core.config import ModelConfig, TrainConfig
from inspection_core.data.dataset import DatasetLayoutError
from inspection_core.models import model_class, register
from inspection_core.progress import CancelToken, Cancelled, ProgressEvent
from inspection_core.training import TrainingError, train

def _cfg(model: str = "skip-ganomaly") -> ModelConfig:
    return ModelConfig(model=model, image_size=32, params={"latent_dim": 16, "base_width": 8})


def test_training_reports_progress_and_learns(demo_data: Path) -> None:
    events: list[ProgressEvent] = []
    result = train(demo_data, _cfg(), TrainConfig(epochs=3, batch_size=16, device="cpu", samples_per_epoch=4), progress=events.append)
    kinds = {e.kind for e in events}
    assert {"step", "epoch", "sample", "done"} <= kinds
    steps = [e for e in events if e.kind == "step"]
    assert steps[-1].eta_s == pytest.approx(0.0, abs=1e-6) and steps[0].eta_s > 0
    assert all(e.fraction <= 1.0 for e in steps) and steps[-1].fraction == pytest.approx(1.0)
    sample = [e for e in events if e.kind == "sample"][0].payload
    assert sample["inputs"].shape == (4, 32, 32, 3) and sample["reconstructions"].shape == (4, 32, 32, 3)
    # the contextual (reconstruction) loss falls over training
    con = [h["losses"]["g_con"] for h in result.history]
    assert con[-1] < con[0]
    m = result.manifest
    assert m["training"]["epochs_run"] == 3
    assert m["training"]["best_metric"] == "val_recon_error"
    assert 1 <= m["training"]["best_epoch"] <= 3
    assert m["model"]["channels"] == 3  # follows the data
    # provisional threshold: the 99th percentile of held-out good scores
    assert m["threshold"]["provisional"] and m["threshold"]["strategy"] == "quantile"
    assert m["score_stats"]["q50"] <= m["threshold"]["high"] <= m["score_stats"]["max"] + 1e-9


def test_validation_auroc_with_labelled_validation_data(demo_data: Path) -> None:
    events: list[ProgressEvent] = []
    result = train(demo_data, _cfg(), TrainConfig(epochs=1, batch_size=16, device="cpu", samples_per_epoch=0), progress=events.append, val_data=demo_data)
    epoch = [e for e in events if e.kind == "epoch"][0]
    assert 0.0 <= epoch.metrics["val_auroc"] <= 1.0
    assert result.manifest["training"]["best_metric"] == "val_auroc"


@pytest.mark.fault("training", "cancel during training",
                   "stops within a step (Cancelled)")
def test_cancel_stops_within_a_step(demo_data: Path) -> None:
    token = CancelToken()
    seen: list[int] = []

    def on_progress(e: ProgressEvent) -> None:
        if e.kind == "step":
            seen.append(e.step)
            token.cancel()

    with pytest.raises(Cancelled):
        train(demo_data, _cfg(), TrainConfig(epochs=5, batch_size=8, device="cpu"), progress=on_progress, cancel=token)
    assert seen == [1]


class _DivergingSkip(model_class("skip-ganomaly")):  # type: ignore[misc]
    """Skip-GANomaly whose loss turns NaN after ``nan_after`` steps."""

    nan_after = 4

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        self.calls = 0

    def training_step(self, x, y=None):
        self.calls += 1
        losses = super().training_step(x, y)
        if self.calls > self.nan_after:
            losses["g_loss"] = math.nan
        return losses


register("test-diverging")(_DivergingSkip)


@pytest.mark.fault("training", "NaN losses during training",
                   "training stops and keeps the last good checkpoint, saying why")
def test_nan_loss_stops_and_keeps_last_good_checkpoint(demo_data: Path) -> None:
    # 48 train images -> 43 after the 10 % hold-out -> 2 steps/epoch of 16 (+ a remainder)
    events: list[ProgressEvent] = []
    result = train(demo_data, _cfg("test-diverging"), TrainConfig(epochs=5, batch_size=16, device="cpu", samples_per_epoch=0), progress=events.append)
    assert result.stopped_reason is not None
    assert "g_loss became nan" in result.stopped_reason and "kept the last good checkpoint" in result.stopped_reason
    assert result.manifest["training"]["epochs_run"] == result.manifest["training"]["best_epoch"] >= 1
    assert any(e.kind == "message" and "nan" in e.message for e in events)


@pytest.mark.fault("training", "NaN losses in the first epoch",
                   "a clear error (no bundle written)")
def test_nan_loss_in_the_first_epoch_is_a_clear_error(demo_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_DivergingSkip, "nan_after", 0)
    with pytest.raises(TrainingError, match="diverged.*learning rate"):
        train(demo_data, _cfg("test-diverging"), TrainConfig(epochs=2, batch_size=16, device="cpu", samples_per_epoch=0))


def test_corrupt_training_image_is_skipped_and_counted(demo_data: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(demo_data, data)
    (data / "train" / "good" / "zzz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    result = train(data, _cfg(), TrainConfig(epochs=1, batch_size=16, device="cpu", samples_per_epoch=0, val_fraction=0.0))
    d = result.manifest["training"]["data"]
    assert d["n_skipped"] == 1 and "zzz_broken.png" in d["skipped"][0]


def test_bad_folders_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetLayoutError, match="expected"):
        train(tmp_path / "empty", _cfg(), TrainConfig(epochs=1, device="cpu"))
    with pytest.raises(DatasetLayoutError):
        train(tmp_path / "missing", _cfg(), TrainConfig(epochs=1, device="cpu"))


def test_seed_makes_training_reproducible(demo_data: Path) -> None:
    tc = TrainConfig(epochs=1, batch_size=16, device="cpu", samples_per_epoch=0, max_steps_per_epoch=2)
    a = train(demo_data, _cfg(), tc)
    b = train(demo_data, _cfg(), tc)
    for k, v in a.model.state_dict().items():
        assert np.array_equal(v.numpy(), b.model.state_dict()[k].numpy()), k
