"""The reconstruction families' recipe options on generated data: the
illumination normalisation (recorded in the bundle, the same in training and
inspection, so a lighting change is not a defect), the anomaly map's image
score, the perceptual residual on real ImageNet features, synthetic defects
for training, Skip-GANomaly without its top skips, and the standard preset
that ``inspector train`` uses with no flags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from inspection_core.bundle import read_manifest, save_bundle
from inspection_core.config import ModelConfig, TrainConfig
from inspection_core.data.dataset import scan_dataset
from inspection_core.data.images import read_image
from inspection_core.data.preprocess import Preprocessing, to_model_image
from inspection_core.inference import Inspector
from inspection_core.models import build_model
from inspection_core.models.components.gan_params import RESIDUAL_SCHEMA
from inspection_core.models.components.residual import Residual
from inspection_core.models.components.synthetic import paste_defects
from inspection_core.recipes import resolve
from inspection_core.training import train

TCFG = dict(epochs=1, batch_size=16, device="cpu", seed=0, samples_per_epoch=0, max_steps_per_epoch=2)


def _relit(img: np.ndarray, gain: float, offset: float) -> np.ndarray:
    return np.clip(img.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def normalised_bundle(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    mcfg = ModelConfig("ganomaly", 32, params={"latent_dim": 16, "base_width": 8, "residual": "pixel", "score": "map"},
                       normalize="mean_std")
    res = train(demo_data, mcfg, TrainConfig(**TCFG))
    return save_bundle(tmp_path_factory.mktemp("norm") / "n.inspector", res.model, res.manifest)


def test_the_normalisation_is_recorded_and_a_lighting_change_scores_the_same(normalised_bundle: Path,
                                                                             demo_data: Path) -> None:
    assert read_manifest(normalised_bundle)["preprocessing"]["normalize"] == "mean_std"
    insp = Inspector(normalised_bundle, device="cpu", precision="eager")
    images = [read_image(s.path) for s in scan_dataset(demo_data).test[:4]]
    base = np.array([insp.predict(im).score for im in images])
    for gain, offset in ((0.7, 30.0), (1.15, -10.0)):  # a dimmer lamp, a brighter one
        relit = np.array([insp.predict(_relit(im, gain, offset)).score for im in images])
        # equal up to the rounding to 8 bits before and after the normalisation
        np.testing.assert_allclose(relit, base, rtol=0.05)
    # the same image without normalisation is far from the normalised one the model sees
    pp = Preprocessing(32, 3, "mean_std")
    dark = _relit(images[0], 0.5, 0.0)
    assert np.abs(to_model_image(dark, pp).astype(int) - to_model_image(images[0], pp).astype(int)).mean() < 3
    assert abs(float(to_model_image(dark, pp).mean()) - 128) < 2 and abs(float(to_model_image(dark, pp).std()) - 48) < 2


def test_an_unnormalised_model_does_see_the_lighting(demo_data: Path) -> None:
    """The comparison that makes the test above mean something: without the
    normalisation the same change moves the model's input, and its score."""
    pp = Preprocessing(32, 3, "none")
    img = read_image(scan_dataset(demo_data).test[0].path)
    assert np.abs(to_model_image(_relit(img, 0.7, 30.0), pp).astype(int) - to_model_image(img, pp).astype(int)).mean() > 5


def test_the_map_score_finds_a_small_defect_that_the_mean_dilutes() -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    noise = 0.1 * torch.randn_like(x)
    x_hat = x + noise  # an imperfect reconstruction everywhere
    x_hat[1, :, 30:34, 30:34] = -x[1, :, 30:34, 30:34]  # and a 4 x 4 px defect it does not repair in part 1
    x_hat[0] = x[0] + 1.15 * noise[0]  # part 0: good, reconstructed a little worse overall
    r = Residual({**RESIDUAL_SCHEMA.defaults(), "residual": "pixel", "score": "map"})
    amap = r.anomaly_map(x, x_hat)
    assert amap.shape == (2, 64, 64)
    mean_err = amap.flatten(1).mean(1)
    assert mean_err[1] < mean_err[0] * 1.1  # the whole-image mean hardly tells them apart
    top = r.map_score(amap)
    assert top[1] > 1.5 * top[0]  # the top 1 % of the map does
    peak = np.unravel_index(int(amap[1].argmax()), (64, 64))
    assert 28 <= peak[0] <= 35 and 28 <= peak[1] <= 35


@pytest.mark.parametrize("family, extra", [("ganomaly", "generator.encoder2"), ("skip-ganomaly", "discriminator"),
                                           ("bigan", "critic")])
def test_the_papers_score_runs_its_extra_network_only_when_it_is_the_score(family: str, extra: str) -> None:
    torch.manual_seed(0)
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    out = {}
    for score in ("map", "paper"):
        model = build_model(ModelConfig(family, 32, params={"latent_dim": 16, "base_width": 8, "score": score}))
        model.load_state_dict(build_model(ModelConfig(family, 32, params={"latent_dim": 16, "base_width": 8})).state_dict()
                              if score == "map" else out["map"][2])
        calls = []
        model.get_submodule(extra).register_forward_hook(lambda *_a: calls.append(1))
        with torch.inference_mode():
            o = model.eval()(x)
        out[score] = (o, len(calls), model.state_dict())
    (m, m_calls, _), (p, p_calls, _) = out["map"], out["paper"]
    assert m_calls == 0 and p_calls > 0  # the map's score skips the paper's second encoder / discriminator / critic
    torch.testing.assert_close(m.scores, model.residual.map_score(m.anomaly_map))
    torch.testing.assert_close(m.anomaly_map, p.anomaly_map)  # same weights: the same map and reconstruction
    torch.testing.assert_close(m.reconstruction, p.reconstruction)
    assert not torch.allclose(m.scores, p.scores)


def test_the_perceptual_map_is_zero_for_a_copy_and_peaks_at_a_defect(torch_home: Path) -> None:
    r = Residual({**RESIDUAL_SCHEMA.defaults(), "residual": "perceptual", "score": "map", "perceptual_backbone": "mobilenet_v2",
                  "perceptual_layers": ["features.3", "features.6", "features.13"]})
    r.load_pretrained()
    assert r.init_source.startswith("imagenet (torchvision MobileNet_V2")  # through torchvision's weights API
    torch.manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 128), torch.linspace(-1, 1, 128), indexing="ij")
    x = (0.5 * torch.sin(12 * xx) * torch.cos(9 * yy)).expand(1, 3, 128, 128).clone()  # a regular texture
    assert float(r.anomaly_map(x, x.clone()).max()) < 1e-4
    x_hat = x.clone()
    x_hat[:, :, 80:96, 20:36] = 0.9  # a bright blob the reconstruction has and the part has not
    amap = r.anomaly_map(x, x_hat)[0]
    peak = np.unravel_index(int(amap.argmax()), amap.shape)
    assert 72 <= peak[0] <= 104 and 12 <= peak[1] <= 44, peak
    assert float(amap[80:96, 20:36].mean()) > 5 * float(amap[:48, 64:].mean())


def test_synthetic_defects_alter_part_of_some_images_only() -> None:
    torch.manual_seed(0)
    x = torch.rand(32, 1, 64, 64) * 2 - 1
    assert torch.equal(paste_defects(x, 0.0), x)
    torch.manual_seed(1)
    y = paste_defects(x, 0.5)
    assert y.shape == x.shape and float(y.min()) >= -1 and float(y.max()) <= 1
    changed = (y - x).abs().flatten(1).amax(1) > 1e-3
    assert 6 <= int(changed.sum()) <= 26  # about half the images
    share = ((y - x).abs() > 1e-3).float().flatten(1).mean(1)[changed]
    assert float(share.max()) < 0.5 and float(share.min()) > 0.0  # a defect, not a new image
    torch.manual_seed(1)
    assert torch.equal(paste_defects(x, 0.5), y)  # the engine's seed makes it repeatable


def test_skip_ganomaly_without_its_top_skips_cannot_copy_fine_detail() -> None:
    """With the two full- and half-resolution skips removed, a one-pixel
    change of the input reaches the output only through coarse features: it
    moves the output less at that pixel than the U-Net with every skip."""
    effect = {}
    for drop in (0, 2):
        torch.manual_seed(0)
        model = build_model(ModelConfig("skip-ganomaly", 32, 1, params={"latent_dim": 16, "base_width": 8,
                                                                        "drop_skips": drop}))
        model.eval()
        gen = model.generator
        x = torch.zeros(1, 1, 32, 32)
        x2 = x.clone()
        x2[0, 0, 16, 16] = 1.0
        with torch.no_grad():
            d = (gen(x2) - gen(x)).abs()[0, 0]
        effect[drop] = float(d[14:19, 14:19].sum()) / max(float(d.sum()), 1e-12)  # share near the pixel
    assert effect[0] > 2 * effect[2]
    with pytest.raises(ValueError, match="drop_skips"):
        build_model(ModelConfig("skip-ganomaly", 32, 1, params={"drop_skips": 9}))


@pytest.mark.parametrize("model", ["ganomaly", "skip-ganomaly", "bigan"])
def test_the_standard_preset_is_the_measured_recipe(model: str) -> None:
    mcfg, tcfg = resolve(model)
    assert mcfg.normalize == "mean_std" and mcfg.image_size == 128
    assert mcfg.params["residual"] == "perceptual" and mcfg.params["score"] == "map"
    assert mcfg.params["perceptual_backbone"] == "mobilenet_v2"
    assert tcfg.updates == 600 and tcfg.batch_size == 16
    assert mcfg.params.get("window", 0) == 0  # crops and windows were measured worse (docs/quality.md)
    if model == "skip-ganomaly":
        assert mcfg.params["drop_skips"] == 3  # of its 5 levels at 128 px (four: measured, docs/quality.md)
    quick, _ = resolve(model, "quick")
    assert quick.params["residual"] == "pixel" and not quick.params.get("perceptual_backbone")  # needs no download
