"""The Train view's settings and ``inspector train``'s flags give the same
configs: the GUI can reproduce any CLI recipe (the demo's: see
tests/app/test_train_view.py)."""

from __future__ import annotations

import argparse

import pytest

from inspection_core.usecases.train_settings import TrainSettings


def cli_configs(argv: list[str]):
    from inspection_core.cli.main import build_parser
    from inspection_core.cli.train import configs_from_args

    args = build_parser().parse_args(["train", "--data", "d", "--out", "o", *argv])
    assert isinstance(args, argparse.Namespace)
    return configs_from_args(args, channels=3)


@pytest.mark.parametrize("argv, settings", [
    (["--model", "skip-ganomaly", "--preset", "quick", "--image-size", "64", "--width", "16", "--latent", "64",
      "--batch-size", "16", "--epochs", "30", "--lr", "1e-3", "--normalize", "none", "--param", "lam=1",
      "--param", "score=paper", "--no-cpu-bf16"],  # the README's demo recipe
     TrainSettings("skip-ganomaly", preset="quick", image_size=64, epochs=30, batch_size=16, lr=1e-3,
                   normalize="none", cpu_bf16=False, params={"base_width": 16, "latent_dim": 64, "lam": 1, "score": "paper"})),
    (["--model", "vgg16", "--lr", "5e-5", "--from-scratch", "--preset", "quick"],  # the classifier reads params["lr"]
     TrainSettings("vgg16", preset="quick", lr=5e-5, from_scratch=True)),
    (["--model", "patchcore", "--backbone", "resnet18", "--weights", "/w/resnet18.pth", "--preset", "thorough"],
     TrainSettings("patchcore", preset="thorough", weights="/w/resnet18.pth", params={"backbone": "resnet18"})),
    (["--model", "ganomaly", "--updates", "300", "--lr-schedule", "cosine", "--augment", "hflip=true",
      "--augment", "rotate=10", "--seed", "4", "--device", "cpu", "--cpu-bf16"],
     TrainSettings("ganomaly", updates=300, lr_schedule="cosine", augment={"hflip": True, "rotate": 10}, seed=4,
                   device="cpu", cpu_bf16=True)),
])
def test_the_view_settings_reproduce_the_cli_recipe(argv: list[str], settings: TrainSettings) -> None:
    cli_m, cli_t = cli_configs(argv)
    m, t = settings.configs(channels=3)
    assert m.to_dict() == cli_m.to_dict()
    assert t.to_dict() == cli_t.to_dict()


def test_a_weights_file_reaches_a_reconstruction_familys_perceptual_backbone() -> None:
    m, _ = TrainSettings("ganomaly", weights="/w/mobilenet_v2.pth").configs()
    assert m.params["perceptual_weights"] == "/w/mobilenet_v2.pth" and m.params["perceptual_backbone"] == "mobilenet_v2"


@pytest.mark.parametrize("settings, message", [
    (TrainSettings("ganomaly", params={"lamda": 1}), "no parameter"),
    (TrainSettings("ganomaly", preset="quick", weights="/w.pth"), "do not apply"),  # no perceptual backbone
    (TrainSettings("ganomaly", from_scratch=True), "needs pretrained weights"),
    (TrainSettings("patchcore", from_scratch=True), "needs pretrained weights"),
    (TrainSettings("vgg16", weights="/w.pth", from_scratch=True), "not both"),
])
def test_settings_a_family_does_not_have_are_refused(settings: TrainSettings, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        settings.configs()


def test_the_readme_recipe_is_the_demo_models() -> None:
    """README's `inspector train` line trains what `python -m app.demo --build` trains."""
    import re
    import shlex
    from pathlib import Path

    import app.demo as demo

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    line = re.search(r"inspector train (.*?)&&", readme, re.S).group(1).replace("\\\n", " ")
    argv = [a for a in shlex.split(line)]
    i = argv.index("--data")
    del argv[i:i + 2]
    i = argv.index("--out")
    del argv[i:i + 2]
    m, t = cli_configs(argv)
    dm, dt = demo.demo_configs()
    assert m.to_dict() == dm.to_dict()
    keep = ("epochs", "updates", "batch_size", "lr", "lr_schedule", "augment", "preset")
    assert {k: t.to_dict()[k] for k in keep} == {k: dt.to_dict()[k] for k in keep}


def test_bf16_training_is_the_default_only_for_the_gan_families_on_a_cpu_with_native_bf16(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from inspection_core import acceleration

    for native in (True, False):
        monkeypatch.setattr(acceleration, "cpu_bf16_is_fast", lambda native=native: native)
        for model in ("ganomaly", "skip-ganomaly", "bigan", "vgg16", "patchcore"):
            _, t = cli_configs(["--model", model])
            assert t.cpu_bf16 is (native and model in ("ganomaly", "skip-ganomaly", "bigan")), (model, native)
            assert cli_configs(["--model", model, "--no-cpu-bf16"])[1].cpu_bf16 is False
            assert cli_configs(["--model", model, "--cpu-bf16"])[1].cpu_bf16 is True
            assert TrainSettings(model).configs()[1].cpu_bf16 is t.cpu_bf16
