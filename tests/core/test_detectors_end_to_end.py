"""BiGAN and VGG16 work everywhere the GAN models do: train, bundle, evaluate, CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from inspection_core.bundle import save_bundle
from inspection_core.config import ModelConfig, TrainConfig
from inspection_core.data.dataset import scan_dataset
from inspection_core.data.images import read_image
import numpy as np

from inspection_core.evaluation import evaluate
from inspection_core.inference import Inspector
from inspection_core.progress import ProgressEvent
from inspection_core.selection import evaluation_samples
from inspection_core.training import train
from inspection_core.training.trainer import in_memory_bundle


def test_bigan_trains_generates_and_round_trips(demo_data: Path, tmp_path: Path) -> None:
    events: list[ProgressEvent] = []
    res = train(
        demo_data,
        ModelConfig(model="bigan", image_size=32, params={"latent_dim": 16, "base_width": 8}),
        TrainConfig(epochs=1, batch_size=16, device="cpu", samples_per_epoch=4),
        progress=events.append,
    )
    sample = [e for e in events if e.kind == "sample"][0].payload
    assert sample["generated"].shape == (4, 32, 32, 3)  # the Train view shows these
    images = [read_image(s.path) for s in scan_dataset(demo_data).test[:4]]
    trained = Inspector(in_memory_bundle(res), device="cpu").predict_batch(images)  # the model as trained
    path = save_bundle(tmp_path / "bigan.inspector", res.model, res.manifest)
    loaded = Inspector(path, device="cpu").predict_batch(images)  # and as every station loads it
    np.testing.assert_allclose([p.score for p in loaded], [p.score for p in trained], rtol=1e-6)
    np.testing.assert_allclose(loaded[0].anomaly_map, trained[0].anomaly_map, rtol=1e-5, atol=1e-7)
    assert loaded[0].reconstruction is not None and loaded[0].anomaly_map.shape == (32, 32)


def test_vgg16_from_scratch_uses_a_held_out_test_split(demo_data: Path, tmp_path: Path) -> None:
    res = train(
        demo_data,
        ModelConfig(model="vgg16", image_size=32, params={"base_width": 8, "init": "scratch", "freeze_epochs": 0}),
        TrainConfig(epochs=1, batch_size=16, device="cpu", samples_per_epoch=0),
    )
    m = res.manifest
    assert m["training"]["init_source"] == "scratch"
    assert m["training"]["split"]["kind"] == "supervised"
    path = save_bundle(tmp_path / "vgg.inspector", res.model, m)
    insp = Inspector(path, device="cpu")
    index = scan_dataset(demo_data)
    test = evaluation_samples(insp.manifest, index).samples
    assert 0 < len(test) < len(index.test)  # never evaluated on images it trained on
    metrics, scored = evaluate(insp, index)
    assert metrics["n_good"] + metrics["n_defect"] == len(test)
    assert 0.0 <= scored.scores.min() and scored.scores.max() <= 1.0  # P(defective)
    p = insp.predict(read_image(test[0].path))
    assert p.reconstruction is None and p.anomaly_map.shape == (32, 32)


def test_vgg16_cli_without_weights_says_how_to_get_them(demo_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from torchvision.models import VGG16_Weights

    from inspection_core.cli.main import main

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    monkeypatch.setattr(VGG16_Weights.IMAGENET1K_V1.value, "url", "http://127.0.0.1:9/vgg16.pth")
    rc = main(["train", "--data", str(demo_data), "--model", "vgg16", "--out", str(tmp_path / "v.inspector"), "--image-size", "32", "--epochs", "1"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "--weights" in err and "--from-scratch" in err
    assert not (tmp_path / "v.inspector").exists()
