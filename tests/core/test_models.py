"""The GAN detectors (GANomaly, Skip-GANomaly): shapes, eval-mode batch
independence, training that reduces reconstruction error, the discriminator
collapse rule, and detection of a planted defect after a short training."""

from __future__ import annotations

import math

import pytest
import torch

from inspection_core.config import ModelConfig, TrainConfig
from inspection_core.models import Detector, available_models, build_model
from inspection_core.models.components.blocks import Decoder, Encoder

GAN_MODELS = ["ganomaly", "skip-ganomaly"]
EXPECTED_LOSSES = {
    "ganomaly": {"g_loss", "g_adv", "g_con", "g_enc", "d_loss", "d_reinit"},
    "skip-ganomaly": {"g_loss", "g_adv", "g_con", "g_lat", "d_loss", "d_reinit"},
}
WIDTH, N_TRAIN, STEPS = 8, 8, 100  # the planted-defect training
DEFECT = (slice(10, 18), slice(12, 20))  # rows, cols of the bright square (32 px)


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the test machines are small and shared
    yield
    torch.set_num_threads(threads)


def make_model(name: str, size: int = 32, channels: int = 1, width: int = 8, **params) -> Detector:
    cfg = ModelConfig(model=name, image_size=size, channels=channels, params={"latent_dim": 16, "base_width": width, **params})
    return build_model(cfg)


def good_images(n: int, size: int = 32, channels: int = 1, seed: int = 0) -> torch.Tensor:
    """Vertical sine gratings with random phase and mild noise, in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    xs = torch.arange(size, dtype=torch.float32)
    phase = torch.rand(n, 1, 1, generator=g) * 0.5
    img = 0.6 * torch.sin(xs.view(1, 1, -1) * 0.8 + phase).expand(n, size, size)
    img = img + 0.05 * torch.randn(n, size, size, generator=g)
    return img.unsqueeze(1).repeat(1, channels, 1, 1).clamp(-1, 1).contiguous()


def defect_images(n: int, seed: int) -> torch.Tensor:
    x = good_images(n, seed=seed)
    x[:, :, DEFECT[0], DEFECT[1]] = 1.0
    return x


def train(model: Detector, x: torch.Tensor, steps: int, lr: float = 1e-3) -> list[dict[str, float]]:
    model.configure_optimizers(TrainConfig(lr=lr))
    model.train()
    return [model.training_step(x) for _ in range(steps)]


def test_both_families_are_registered():
    assert {"ganomaly", "skip-ganomaly"} <= set(available_models())


@pytest.mark.parametrize("name", GAN_MODELS)
@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_output_shapes(name: str, size: int, channels: int):
    model = make_model(name, size=size, channels=channels).eval()
    x = good_images(3, size=size, channels=channels)
    with torch.no_grad():
        out = model(x)
    assert out.scores.shape == (3,) and out.scores.dtype == torch.float32
    assert out.anomaly_map.shape == (3, size, size)
    assert out.reconstruction is not None and out.reconstruction.shape == (3, channels, size, size)
    assert out.reconstruction.min() >= -1 and out.reconstruction.max() <= 1
    assert torch.isfinite(out.scores).all() and (out.scores >= 0).all()


@pytest.mark.parametrize("size", [32, 64, 128, 256])
def test_blocks_cover_all_image_sizes_with_capped_width(size: int):
    enc = Encoder(size, 3, 10, width=4)
    dec = Decoder(size, 10, 3, width=4)
    x = torch.zeros(2, 3, size, size)
    z = enc(x)
    assert z.shape == (2, 10, 1, 1)
    assert dec(z).shape == (2, 3, size, size)
    assert enc.feature_channels <= 8 * 4  # widths stop doubling at 8x


@pytest.mark.parametrize("name", GAN_MODELS)
def test_unknown_param_is_rejected(name: str):
    with pytest.raises(ValueError, match="unknown parameter"):
        make_model(name, w_typo=3.0)


def test_skip_ganomaly_rejects_lambda_outside_unit_interval():
    with pytest.raises(ValueError, match="lam"):
        make_model("skip-ganomaly", lam=1.5)


@pytest.mark.parametrize("name", GAN_MODELS)
def test_defaults_fill_in_params(name: str):
    model = make_model(name)
    assert model.params["w_con"] == 50.0
    if name == "skip-ganomaly":
        assert model.params["lam"] == 0.9


@pytest.mark.parametrize("name", GAN_MODELS)
def test_eval_scores_do_not_depend_on_the_batch(name: str):
    model = make_model(name, channels=3)
    train(model, good_images(8, channels=3), steps=3)  # move BatchNorm stats off their init
    model.eval()
    x = good_images(5, channels=3, seed=3)
    x[2] = -x[2]  # an odd one out in the batch
    with torch.no_grad():
        batch = model(x)
        alone = model(x[2:3])
    torch.testing.assert_close(alone.scores, batch.scores[2:3], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(alone.anomaly_map, batch.anomaly_map[2:3], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", GAN_MODELS)
def test_channels_last_input_gives_same_scores(name: str):
    model = make_model(name, channels=3).eval()
    x = good_images(2, channels=3)
    with torch.no_grad():
        ref = model(x).scores
        model_cl = model.to(memory_format=torch.channels_last)
        got = model_cl(x.to(memory_format=torch.channels_last)).scores
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", GAN_MODELS)
def test_training_reduces_reconstruction_loss(name: str):
    model = make_model(name)
    history = train(model, good_images(8), steps=30)
    for losses in history:
        assert set(losses) == EXPECTED_LOSSES[name]
        assert all(math.isfinite(v) for v in losses.values())
    first = history[0]["g_con"]
    last = sum(h["g_con"] for h in history[-5:]) / 5
    assert last < 0.6 * first, f"contextual loss {first:.3f} -> {last:.3f}"


@pytest.mark.parametrize("name", GAN_MODELS)
def test_training_step_under_bf16_autocast_stays_finite(name: str):
    model = make_model(name)
    model.set_precision(torch.bfloat16)
    history = train(model, good_images(4), steps=2)
    assert all(math.isfinite(v) for h in history for v in h.values())


@pytest.mark.parametrize("name", GAN_MODELS)
def test_collapsed_discriminator_is_reinitialised(name: str):
    model = make_model(name)
    train(model, good_images(4), steps=2)
    # a D loss at its ordinary level leaves D alone
    before = {k: v.clone() for k, v in model.discriminator.state_dict().items()}
    assert model.maybe_reinit_discriminator(0.5) is False
    for k, v in model.discriminator.state_dict().items():
        assert torch.equal(v, before[k])
    # a collapsed loss (below 1e-5) draws fresh DCGAN weights
    assert model.maybe_reinit_discriminator(1e-7) is True
    after = model.discriminator.state_dict()
    changed = [k for k, v in after.items() if k.endswith("weight") and not torch.equal(v, before[k])]
    assert changed, "discriminator weights did not change on re-init"
    assert not model.optimizers["d"].state, "stale Adam moments were kept"
    # training goes on normally afterwards and reports no new collapse
    losses = model.training_step(good_images(4))
    assert math.isfinite(losses["d_loss"]) and losses["d_reinit"] == 0.0


def test_training_before_configure_optimizers_says_what_to_do():
    model = make_model("ganomaly")
    with pytest.raises(RuntimeError, match="configure_optimizers"):
        model.training_step(good_images(2))


def _detect(name: str):
    """Train on good gratings, then score unseen good and defective ones."""
    model = make_model(name, width=WIDTH)
    train(model, good_images(N_TRAIN), steps=STEPS)
    model.eval()
    with torch.no_grad():
        good = model(good_images(8, seed=5))
        bad = model(defect_images(8, seed=5))
    return good, bad


def _assert_reconstructs_good_and_locates_defect(good, bad) -> None:
    mask = torch.zeros(bad.anomaly_map.shape[-2:], dtype=torch.bool)
    mask[DEFECT] = True
    # good images are reproduced far better than a blank guess would be
    assert good.anomaly_map.mean() < 0.35 * good_images(8, seed=5).abs().mean()
    # the defect is "repaired" in the reconstruction (the input there is 1.0)
    assert bad.reconstruction[:, 0][:, mask].mean() < 0.6
    # so the map peaks inside the defect and stands out from the rest
    maps = bad.anomaly_map
    peak_inside = mask.flatten()[maps.flatten(1).argmax(dim=1)]
    assert peak_inside.float().mean() >= 0.75, f"map peaks inside the defect for {peak_inside.tolist()}"
    assert maps[:, mask].mean() > 4 * maps[:, ~mask].mean()


def test_ganomaly_map_locates_planted_defect():
    # the latent score needs longer training than a unit test allows; the map does not
    good, bad = _detect("ganomaly")
    _assert_reconstructs_good_and_locates_defect(good, bad)


def test_skip_ganomaly_scores_and_locates_planted_defect():
    good, bad = _detect("skip-ganomaly")
    assert bad.scores.min() > good.scores.max(), (bad.scores.tolist(), good.scores.tolist())
    assert bad.scores.mean() > 2 * good.scores.mean()
    _assert_reconstructs_good_and_locates_defect(good, bad)


@pytest.mark.parametrize("params, message", [
    ({"w_adv": None}, "w_adv must be a finite number"),
    ({"w_adv": float("nan")}, "w_adv must be a finite number"),
    ({"lam": "high"}, "lam must be a finite number"),
    ({"latent_dim": 10**9}, "latent_dim must be a whole number from 1 to 8192"),
    ({"base_width": 2.5}, "base_width must be a whole number"),
    ({"drop_skips": True}, "drop_skips must be a whole number"),
])
def test_bad_parameters_are_refused_by_name(params: dict, message: str):
    with pytest.raises(ValueError, match=message):
        make_model("skip-ganomaly", **params)


def test_cli_refuses_a_nan_loss_weight(tmp_path, capsys):
    from inspection_core.cli.main import main

    rc = main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "x"), "--model", "skip-ganomaly",
               "--param", "w_adv=nan"])
    assert rc == 2 and "w_adv must be a finite number" in capsys.readouterr().err


def test_map_smoothing_is_the_reflect_padded_gaussian_at_any_map_size() -> None:
    """The blur by two matrix products equals the separable convolution with
    reflect padding (what the maps were smoothed with before), for square,
    non-square and large maps, and stays fp32 under a bf16 autocast."""
    import torch
    from torch.nn import functional as F

    from inspection_core.models.components.anomaly_map import gaussian_kernel1d, smooth_map

    def reference(m: torch.Tensor, sigma: float) -> torch.Tensor:
        k = gaussian_kernel1d(sigma, m.device)
        r = (k.numel() - 1) // 2
        x = F.conv2d(F.pad(m.unsqueeze(1), (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
        return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1)).squeeze(1)

    g = torch.Generator().manual_seed(0)
    for shape, sigma in [((4, 128, 128), 2.0), ((1, 224, 224), 4.0), ((2, 17, 300), 2.5), ((1, 600, 40), 3.0)]:
        m = torch.rand(*shape, generator=g)
        torch.testing.assert_close(smooth_map(m, sigma), reference(m, sigma), rtol=1e-5, atol=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = smooth_map(torch.rand(2, 64, 64, generator=g), 1.5)
    assert out.dtype == torch.float32
