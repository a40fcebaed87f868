"""Crops and sliding windows for the reconstruction families (``window``):
the networks are built for a window smaller than the input, trained on
random crops of the full-size images, and slide over the full image at
inspection, so that maps and reconstructions keep the input's size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from inspection_core.bundle import load_bundle, read_manifest, save_bundle
from inspection_core.config import ModelConfig, TrainConfig
from inspection_core.data.dataset import scan_dataset
from inspection_core.data.images import read_image
from inspection_core.inference import Inspector
from inspection_core.models import build_model
from inspection_core.models.components.residual import window_positions
from inspection_core.training import train

FAMILIES = ("ganomaly", "skip-ganomaly", "bigan")
SMALL = {"latent_dim": 16, "base_width": 8, "residual": "pixel", "score": "map"}


def _model(family: str, size: int = 64, window: int = 32, channels: int = 3) -> torch.nn.Module:
    return build_model(ModelConfig(family, size, channels, params={**SMALL, "window": window})).eval()


def test_window_positions_cover_the_image_with_the_last_window_at_the_border() -> None:
    assert window_positions(64, 32) == [0, 16, 32]
    assert window_positions(100, 32) == [0, 16, 32, 48, 64, 68]
    assert window_positions(32, 32) == [0]


@pytest.mark.parametrize("family", FAMILIES)
def test_a_windowed_model_gives_full_size_maps_and_reconstructions_independent_of_the_batch(family: str) -> None:
    torch.manual_seed(0)
    m = _model(family)
    x = torch.rand(3, 3, 64, 64) * 2 - 1
    with torch.inference_mode():
        out = m(x)
        alone = m(x[2:3])
    assert out.anomaly_map.shape == (3, 64, 64)
    assert out.reconstruction is not None and out.reconstruction.shape == (3, 3, 64, 64)
    assert torch.isfinite(out.scores).all()
    torch.testing.assert_close(alone.scores, out.scores[2:3], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(alone.anomaly_map, out.anomaly_map[2:3], rtol=1e-5, atol=1e-6)


def test_the_windows_are_blended_back_without_seams_or_gain() -> None:
    """A reconstruction that copies each window gives back the input exactly
    (the blending weights sum to one everywhere); one that returns a constant
    per window gives a smooth mixture of the constants, not a patchwork."""
    m = _model("ganomaly", size=100, window=32)
    x = torch.rand(2, 3, 100, 100) * 2 - 1
    torch.testing.assert_close(m.windowed(x, lambda w: w), x, rtol=1e-5, atol=1e-6)
    ones = m.windowed(x, lambda w: torch.ones_like(w))
    torch.testing.assert_close(ones, torch.ones_like(x))
    count = {"n": 0}

    def numbered(w: torch.Tensor) -> torch.Tensor:
        count["n"] = w.shape[0]
        return torch.arange(w.shape[0], dtype=torch.float32).view(-1, 1, 1, 1).expand_as(w).clone()

    mixed = m.windowed(x[:1], numbered)
    assert count["n"] == 36  # 6 x 6 windows of one image
    step = (mixed[0, 0, :, 1:] - mixed[0, 0, :, :-1]).abs().max()
    assert step < 0.5  # neighbouring windows' values (1 apart) meet gradually


@pytest.mark.parametrize("family", FAMILIES)
def test_training_sees_random_crops_of_the_full_images(family: str) -> None:
    m = _model(family)
    x = torch.rand(4, 3, 64, 64) * 2 - 1
    torch.manual_seed(1)
    crops = m.training_view(x)
    assert crops.shape == (4, 3, 32, 32)
    starts = []
    for i in range(4):  # each crop is a piece of its own image
        found = [(r, c) for r in range(33) for c in range(33) if torch.equal(x[i, :, r : r + 32, c : c + 32], crops[i])]
        assert len(found) == 1
        starts.append(found[0])
    assert len(set(starts)) > 1  # not the same place every time
    unwindowed = build_model(ModelConfig(family, 32, 3, params=dict(SMALL)))
    assert unwindowed.training_view(x[:, :, :32, :32]) is not None
    assert torch.equal(unwindowed.training_view(x[:, :, :32, :32]), x[:, :, :32, :32])


@pytest.mark.parametrize(("params", "size", "message"), [
    ({"window": 64}, 64, "smaller than the image size 64"),
    ({"window": 48}, 128, "window must be 0 (off) or one of 32, 64"),
    ({"window": 32, "score": "paper"}, 64, "scores with the map"),
])
def test_a_window_that_cannot_work_is_refused_with_the_reason(params: dict, size: int, message: str) -> None:
    with pytest.raises(ValueError, match=r"ganomaly: .*" + message.replace("(", r"\(").replace(")", r"\)")):
        build_model(ModelConfig("ganomaly", size, 3, params={**SMALL, **params}))


def test_a_trained_windowed_bundle_round_trips_and_inspects_at_full_size(demo_data: Path, tmp_path: Path) -> None:
    mcfg = ModelConfig("ganomaly", 64, params={**SMALL, "window": 32}, normalize="mean_std")
    tcfg = TrainConfig(epochs=1, batch_size=8, device="cpu", seed=0, samples_per_epoch=0, max_steps_per_epoch=3)
    res = train(demo_data, mcfg, tcfg)
    path = save_bundle(tmp_path / "w.inspector", res.model, res.manifest)
    assert read_manifest(path)["model"]["params"]["window"] == 32
    assert load_bundle(path).preprocessing.image_size == 64
    insp = Inspector(path, device="cpu", precision="eager")
    images = [read_image(s.path) for s in scan_dataset(demo_data).test[:3]]
    preds = [insp.predict(im) for im in images]
    for p in preds:
        assert p.anomaly_map.shape == (64, 64) and p.reconstruction is not None and p.reconstruction.shape[:2] == (64, 64)
    again = Inspector(path, device="cpu", precision="eager")
    np.testing.assert_array_equal([again.predict(im).score for im in images], [p.score for p in preds])
