"""Shared fixtures: a small generated data set and tiny trained bundles.

Everything here is real: generated PNG files, real training on them, real
bundle files. Sizes are tiny so the default run stays fast on 2 cores.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Tiny test models run faster (and deterministically) on one thread; set before
# torch is imported so that subprocesses (CLI tests) inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parent.parent

from _datasets import SHARED_DATA, shared_data  # noqa: E402,F401 - re-exported for tests
from _postgres import line_db, pg_server  # noqa: E402,F401 - a real PostgreSQL server, once per session


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny test models on a shared 2-core machine: one thread avoids OpenMP
    spinning on busy cores (30x slower convolutions were measured)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _python_collects_outside_app_tests(request):
    """tests/app switch automatic garbage collection off (``app.gc_guard``); turn it back on for the rest."""
    import sys

    if "app.gc_guard" in sys.modules and "app" not in Path(request.node.path).relative_to(ROOT).parts[1:2]:
        sys.modules["app.gc_guard"].uninstall()
    yield


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic MVTec-layout data set (64 px, colour)."""
    from inspection_core.data.demo import make_demo_dataset

    out = tmp_path_factory.mktemp("demo") / "washers"
    make_demo_dataset(out, seed=1, size=64, n_train=48, n_test_good=12, n_test_defect_per_type=4)
    return out


def _train_tiny(data: Path, model: str, out: Path, epochs: int = 2, **params) -> Path:
    from inspection_core.bundle import save_bundle
    from inspection_core.config import ModelConfig, TrainConfig
    from inspection_core.training import train

    mcfg = ModelConfig(model=model, image_size=32, params={"latent_dim": 16, "base_width": 8, **params})
    tcfg = TrainConfig(epochs=epochs, batch_size=16, device="cpu", seed=0, samples_per_epoch=4)
    result = train(data, mcfg, tcfg)
    return save_bundle(out, result.model, result.manifest)


@pytest.fixture(scope="session")
def tiny_bundle(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real Skip-GANomaly bundle trained for 2 epochs at 32 px."""
    return _train_tiny(demo_data, "skip-ganomaly", tmp_path_factory.mktemp("bundles") / "tiny_skip.inspector")


@pytest.fixture(scope="session")
def tiny_ganomaly_bundle(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train_tiny(demo_data, "ganomaly", tmp_path_factory.mktemp("bundles") / "tiny_gan.inspector")


@pytest.fixture(scope="session")
def tiny_vgg16_bundle(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A supervised classifier (from scratch, 32 px): it trains on some of the
    test folders' defects, so only its held-out split may measure it."""
    from inspection_core.bundle import save_bundle
    from inspection_core.config import ModelConfig, TrainConfig
    from inspection_core.training import train

    result = train(demo_data, ModelConfig(model="vgg16", image_size=32, params={"base_width": 8, "init": "scratch",
                                                                                "freeze_epochs": 0}),
                   TrainConfig(epochs=1, batch_size=16, device="cpu", seed=0, samples_per_epoch=0))
    return save_bundle(tmp_path_factory.mktemp("bundles") / "tiny_vgg16.inspector", result.model, result.manifest)


@pytest.fixture(scope="session")
def good_defect_data(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo images in the plain good/ + defect/ layout (a seeded 70 % of good trains)."""
    import shutil

    out = tmp_path_factory.mktemp("gooddefect") / "parts"
    for sub, pattern in (("good", "*/good/*.png"), ("defect", "test/[!g]*/*.png")):
        (out / sub).mkdir(parents=True)
        for i, p in enumerate(sorted(demo_data.glob(pattern))):
            shutil.copy(p, out / sub / f"{i:03d}_{p.parent.name}.png")
    return out


@pytest.fixture(scope="session")
def tiny_seed3_bundle(good_defect_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Skip-GANomaly trained on ``good_defect_data`` with seed 3: its held-out
    good images are seed 3's 30 %, not seed 0's."""
    from inspection_core.bundle import save_bundle
    from inspection_core.config import ModelConfig, TrainConfig
    from inspection_core.training import train

    result = train(good_defect_data, ModelConfig(model="skip-ganomaly", image_size=32,
                                                 params={"latent_dim": 16, "base_width": 8}),
                   TrainConfig(epochs=1, batch_size=16, device="cpu", seed=3, samples_per_epoch=0))
    return save_bundle(tmp_path_factory.mktemp("bundles") / "tiny_seed3.inspector", result.model, result.manifest)


@pytest.fixture(scope="session")
def tiny_patchcore_bundle(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PatchCore on a randomly initialised resnet18 (no download): the
    mechanics of a family without a reconstruction, not its quality."""
    from inspection_core.bundle import save_bundle
    from inspection_core.config import ModelConfig, TrainConfig
    from inspection_core.training import train

    result = train(demo_data, ModelConfig("patchcore", image_size=64, params={"weights": "random", "backbone": "resnet18"}),
                   TrainConfig(batch_size=16, device="cpu", seed=0))
    return save_bundle(tmp_path_factory.mktemp("bundles") / "tiny_patchcore.inspector", result.model, result.manifest)


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """torchvision's own cache with the real MobileNetV2 file from ../shared/weights in it
    (its hash checked by torchvision); the test is skipped, saying so, where the file is absent."""
    import shutil

    weights = ROOT.parent / "shared" / "weights" / "mobilenet_v2-b0353104.pth"
    if not weights.is_file():
        pytest.skip(f"pretrained weights not available: {weights} (see ../shared/weights/README.md)")
    home = tmp_path / "torch"
    (home / "hub" / "checkpoints").mkdir(parents=True)
    shutil.copy(weights, home / "hub" / "checkpoints" / weights.name)
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home
