"""What every registered detector family must do, whatever it is: train
through the one engine with progress and cancel, round-trip through a bundle
with identical scores, score a part the same alone or in any batch, give a
heat map of the input's shape in [0, 1], and refuse bad input clearly.

Tiny configurations on generated data: mechanics, not quality (PatchCore on
a randomly initialised backbone needs no download)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inspection_core.bundle import save_bundle
from inspection_core.config import ModelConfig, TrainConfig
from inspection_core.data.dataset import scan_dataset
from inspection_core.data.images import read_image
from inspection_core.inference import Inspector
from inspection_core.models import available_models, model_class
from inspection_core.progress import CancelToken, Cancelled, ProgressEvent
from inspection_core.training import train
from inspection_core.training.trainer import in_memory_bundle

TINY: dict[str, ModelConfig] = {
    "ganomaly": ModelConfig("ganomaly", 32, params={"latent_dim": 16, "base_width": 8}),
    "skip-ganomaly": ModelConfig("skip-ganomaly", 32, params={"latent_dim": 16, "base_width": 8}),
    "bigan": ModelConfig("bigan", 32, params={"latent_dim": 16, "base_width": 8}),
    "vgg16": ModelConfig("vgg16", 32, params={"base_width": 8, "init": "scratch", "freeze_epochs": 0}),
    "patchcore": ModelConfig("patchcore", 64, params={"weights": "random"}),
}
TCFG = dict(epochs=1, batch_size=16, device="cpu", seed=0, samples_per_epoch=2, max_steps_per_epoch=2)


def test_every_built_in_family_is_covered():
    built_in = {m for m in available_models() if model_class(m).__module__.startswith("inspection_core.models.")}
    assert built_in == set(TINY)


@pytest.mark.parametrize("family", sorted(TINY))
def test_every_parameter_says_what_it_does(family: str) -> None:
    """The Train view shows each parameter's line as its tooltip: none may be missing or stale."""
    cls = model_class(family)
    helps = cls.param_help()
    assert set(helps) == set(cls.default_params()), set(helps) ^ set(cls.default_params())
    assert all(isinstance(h, str) and len(h) > 10 for h in helps.values()), helps


@pytest.fixture(scope="module")
def trained(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple]:
    out = {}
    folder = tmp_path_factory.mktemp("contract")
    for name, cfg in TINY.items():
        events: list[ProgressEvent] = []
        res = train(demo_data, ModelConfig(**cfg.to_dict()), TrainConfig(**TCFG), progress=events.append)
        out[name] = (res, save_bundle(folder / f"{name}.inspector", res.model, res.manifest), events)
    return out


@pytest.fixture(scope="module")
def images(demo_data: Path) -> list[np.ndarray]:
    return [read_image(s.path) for s in scan_dataset(demo_data).test[:6]]


@pytest.mark.parametrize("family", sorted(TINY))
def test_progress_reaches_the_end(family: str, trained: dict) -> None:
    _, _, events = trained[family]
    kinds = [e.kind for e in events]
    assert "step" in kinds and "epoch" in kinds and kinds[-1] == "done"
    fractions = [e.fraction for e in events if e.kind == "step"]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)


@pytest.mark.parametrize("family", sorted(TINY))
def test_a_cancel_stops_training(family: str, demo_data: Path) -> None:
    token = CancelToken()

    def on_event(ev: ProgressEvent) -> None:
        if ev.kind == "step":
            token.cancel()

    with pytest.raises(Cancelled):
        train(demo_data, ModelConfig(**TINY[family].to_dict()), TrainConfig(**TCFG), progress=on_event, cancel=token)


@pytest.mark.parametrize("family", sorted(TINY))
def test_bundle_round_trip_gives_the_trained_scores(family: str, trained: dict, images: list) -> None:
    res, path, _ = trained[family]
    before = [p.score for p in Inspector(in_memory_bundle(res), device="cpu", precision="eager").predict_batch(images)]
    after = [p.score for p in Inspector(path, device="cpu", precision="eager").predict_batch(images)]
    np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("family", sorted(TINY))
def test_scores_do_not_depend_on_the_batch(family: str, trained: dict, images: list) -> None:
    insp = Inspector(trained[family][1], device="cpu")
    alone = np.array([insp.predict(im).score for im in images])
    together = np.array([p.score for p in insp.predict_batch(images[::-1])])[::-1]
    np.testing.assert_allclose(alone, together, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("family", sorted(TINY))
def test_heat_map_has_the_input_shape_and_range(family: str, trained: dict, images: list) -> None:
    insp = Inspector(trained[family][1], device="cpu")
    size = TINY[family].image_size
    p = insp.predict(images[0])
    assert p.anomaly_map.shape == (size, size) and np.isfinite(p.anomaly_map).all() and p.anomaly_map.min() >= 0
    assert p.heat.shape == (size, size) and 0.0 <= p.heat.min() and p.heat.max() <= 1.0
    assert np.isfinite(p.score)
    assert (p.reconstruction is None) == (family in ("vgg16", "patchcore"))


@pytest.mark.parametrize("family", sorted(TINY))
@pytest.mark.parametrize("bad, message", [(np.zeros((0, 8, 3), np.uint8), "zero-size"),
                                          (np.zeros((8, 8, 5), np.uint8), "expected an"),
                                          (np.zeros(8, np.uint8), "expected an")])
def test_bad_input_is_a_clear_error(family: str, trained: dict, bad: np.ndarray, message: str) -> None:
    insp = Inspector(trained[family][1], device="cpu")
    with pytest.raises(ValueError, match=message):
        insp.predict(bad)


@pytest.mark.parametrize("name, bad", [("patchcore", "score"), ("vgg16", "class_weights"), ("ganomaly", "score"),
                                       ("skip-ganomaly", "residual"), ("bigan", "score")])
def test_a_bad_choice_is_refused_by_the_schema_without_torch(name: str, bad: str) -> None:
    """The check before any image is read: no model built, no torch imported."""
    import subprocess
    import sys

    code = ("import sys, time; t = time.perf_counter(); from inspection_core.config import ModelConfig;"
            "from inspection_core.models import check_model_config\n"
            f"try:\n check_model_config(ModelConfig({name!r}, params={{{bad!r}: 'foo'}}))\n"
            "except ValueError as e:\n print(e)\n"
            "print('torch' in sys.modules, time.perf_counter() - t < 1.0)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    message, verdict = run.stdout.strip().splitlines()
    assert f"{name}: {bad} must be one of" in message and "'foo'" in message
    assert verdict == "False True"


def test_the_torch_free_backbone_names_are_the_backbones() -> None:
    from inspection_core.backbones import BACKBONES
    from inspection_core.models.components.backbone_names import BACKBONE_NAMES

    assert tuple(BACKBONES) == BACKBONE_NAMES
