"""A family is one folder: a toy detector written into a temporary folder,
registered through ``INSPECTOR_FAMILIES``, then trained, saved, loaded and
scored through the command line, as docs/adding-a-family.md says."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

TOY_INIT = '''
"""A toy detector: a one-layer convolutional autoencoder."""
from inspection_core.models.schema import Family, Param, Recipe, Schema

SCHEMA = Schema((
    Param("width", 4, "channels of its one hidden layer", low=1, high=64),
    Param("score", "max", "image score: the map's max or mean", choices=("max", "mean")),
))
PRESETS = {name: Recipe(32, {}, {"batch_size": 8, "epochs": epochs})
           for name, epochs in (("quick", 1), ("standard", 2), ("thorough", 3))}
FAMILY = Family("toy", SCHEMA, PRESETS, "toy_family.model:Toy")
'''

TOY_MODEL = '''
import torch
from torch import nn
from inspection_core.models.base import Detector, ScoreOutput
from toy_family import FAMILY


class Toy(Detector):
    family = FAMILY

    def __init__(self, cfg):
        super().__init__(cfg)
        w = int(self.params["width"])
        self.net = nn.Sequential(nn.Conv2d(cfg.channels, w, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(w, cfg.channels, 3, padding=1), nn.Tanh())

    def forward(self, x):
        x_hat = self.net(x)
        amap = (x - x_hat).abs().mean(dim=1)
        flat = amap.flatten(1)
        scores = flat.max(dim=1).values if self.params["score"] == "max" else flat.mean(dim=1)
        return ScoreOutput(scores=scores, anomaly_map=amap, reconstruction=x_hat)

    def configure_optimizers(self, tcfg):
        self.optimizers = {"net": torch.optim.Adam(self.parameters(), lr=tcfg.lr)}

    def training_step(self, x, y=None):
        loss = (self.net(x) - x).abs().mean()
        self.step(loss, self.optimizers["net"])
        return {"loss": float(loss.item())}
'''


@pytest.fixture
def toy_env(tmp_path: Path) -> dict[str, str]:
    pkg = tmp_path / "families" / "toy_family"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(TOY_INIT))
    (pkg / "model.py").write_text(textwrap.dedent(TOY_MODEL))
    env = dict(os.environ)
    env["INSPECTOR_FAMILIES"] = "toy_family"
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "families"), str(ROOT), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    return env


def _cli(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "inspection_core.cli.main", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_a_family_from_a_folder_trains_saves_loads_and_scores_through_the_cli(
        toy_env: dict[str, str], demo_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "toy.inspector"
    train = _cli(toy_env, "train", "--data", str(demo_data), "--model", "toy", "--preset", "quick",
                 "--param", "width=3", "--out", str(out), "--device", "cpu", "--no-evaluate")
    assert train.returncode == 0, train.stderr
    assert out.exists()
    scores = tmp_path / "scores.csv"
    images = sorted((demo_data / "test").glob("*/*.png"))[:4]
    predict = _cli(toy_env, "predict", *map(str, images), "--bundle", str(out), "--csv", str(scores),
                   "--device", "cpu")
    assert predict.returncode == 0, predict.stderr
    rows = list(csv.DictReader(scores.open()))
    assert len(rows) == len(images)
    assert all(float(r["score"]) >= 0 for r in rows)


def test_a_bad_toy_parameter_is_refused_before_any_image_is_read(toy_env: dict[str, str], tmp_path: Path) -> None:
    t0 = time.monotonic()
    run = _cli(toy_env, "train", "--data", str(tmp_path / "no-such-folder"), "--model", "toy",
               "--param", "score=foo", "--out", str(tmp_path / "x.inspector"))
    assert run.returncode == 2
    assert "score must be one of max, mean" in run.stderr, run.stderr
    assert time.monotonic() - t0 < 30  # a fresh interpreter; no image was read


def test_the_toy_family_is_listed_with_its_schema(toy_env: dict[str, str]) -> None:
    code = ("import sys; from inspection_core.recipes import RECIPES; from inspection_core.models import family;"
            "f = family('toy'); print(sorted(RECIPES), f.schema.help()['score'], 'torch' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], env=toy_env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "'toy'" in run.stdout and "one of max, mean" in run.stdout and run.stdout.strip().endswith("False")
