"""BiGAN/ALI detector: shapes, generation, eval-mode batch independence and a
short training on synthetic good parts (32 px, width 8)."""

from __future__ import annotations

import math

import pytest
import torch

from inspection_core.config import ModelConfig, TrainConfig
from inspection_core.models import available_models, build_model
from inspection_core.models.bigan.model import BiGAN



def good_parts(n: int, channels: int = 1, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Stripes with a random phase: the 'good' pattern, in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    xx = torch.arange(size, dtype=torch.float32).view(1, 1, size)
    phase = torch.rand(n, 1, 1, generator=g) * 2 * math.pi
    img = 0.8 * torch.sin(xx * 2 * math.pi / 8 + phase).expand(n, size, size)
    return img.unsqueeze(1).repeat(1, channels, 1, 1).contiguous()


def make(channels: int = 1, **params) -> BiGAN:
    torch.manual_seed(0)
    model = build_model(ModelConfig("bigan", image_size=32, channels=channels, params={"latent_dim": 16, "base_width": 8, **params}))
    assert isinstance(model, BiGAN)
    return model


def test_registered_and_can_generate():
    assert "bigan" in available_models()
    assert BiGAN.can_generate and not BiGAN.supervised


@pytest.mark.parametrize("channels", [1, 3])
def test_score_output_shapes(channels):
    model = make(channels).eval()
    x = good_parts(4, channels)
    with torch.no_grad():
        out = model(x)
    assert out.scores.shape == (4,) and out.scores.dtype == torch.float32
    assert out.anomaly_map.shape == (4, 32, 32)
    assert out.reconstruction is not None and out.reconstruction.shape == (4, channels, 32, 32)
    assert torch.isfinite(out.scores).all() and (out.scores >= 0).all()


@pytest.mark.parametrize("channels", [1, 3])
def test_generate_shape_and_range(channels):
    model = make(channels)
    model.train()
    imgs = model.generate(5)
    assert imgs.shape == (5, channels, 32, 32)
    assert imgs.min() >= -1.0 and imgs.max() <= 1.0
    assert imgs.std() > 0  # not a constant image
    assert model.training and model.generator.training  # mode restored


def test_eval_scores_do_not_depend_on_the_batch():
    model = make(3)
    model.configure_optimizers(TrainConfig(lr=2e-4))
    for _ in range(3):  # move BatchNorm running statistics off their init
        model.training_step(good_parts(8, 3, seed=1))
    model.eval()
    x = good_parts(6, 3, seed=2)
    with torch.no_grad():
        whole = model(x)
        alone = [model(x[i : i + 1]) for i in range(6)]
    torch.testing.assert_close(torch.cat([o.scores for o in alone]), whole.scores, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(torch.cat([o.anomaly_map for o in alone]), whole.anomaly_map, rtol=1e-4, atol=1e-6)


def test_score_mixes_reconstruction_and_feature_errors():
    model = make(1, alpha=1.0).eval()
    x = good_parts(3)
    with torch.no_grad():
        out = model(x)
    expected = (x - out.reconstruction).pow(2).flatten(1).mean(1)
    torch.testing.assert_close(out.scores, expected, rtol=1e-5, atol=1e-7)
    model.params["alpha"] = 0.0  # features only: a different number
    with torch.no_grad():
        assert not torch.allclose(model(x).scores, expected)


def test_short_training_lowers_reconstruction_error():
    model = make(1, n_critic=1)
    model.configure_optimizers(TrainConfig(lr=1e-3))
    data = good_parts(64, seed=3)

    def recon_error() -> float:
        model.eval()
        with torch.no_grad():
            err = (model(data).reconstruction - data).pow(2).mean().item()
        model.train()
        return err

    before = recon_error()
    g = torch.Generator().manual_seed(0)
    history = []
    for _ in range(120):
        batch = data[torch.randint(0, 64, (16,), generator=g)]
        losses = model.training_step(batch)
        history.append(losses)
    assert set(history[-1]) >= {"d_loss", "gp", "g_loss", "feat_loss", "wasserstein"}
    assert all(math.isfinite(v) for row in history for v in row.values())
    after = recon_error()
    assert after < 0.6 * before, (before, after)  # measured: 0.32 -> 0.10


def test_training_step_under_bf16_autocast_keeps_penalty_finite():
    model = make(1)
    model.configure_optimizers(TrainConfig())
    model.set_precision(torch.bfloat16)
    losses = model.training_step(good_parts(8))
    assert all(math.isfinite(v) for v in losses.values())
    assert losses["gp"] > 0


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="alpha"):
        make(alpha=1.5)
    with pytest.raises(ValueError, match="n_critic"):
        make(n_critic=0)
    with pytest.raises(ValueError, match="unknown parameter"):
        make(lambda_gpp=1.0)
