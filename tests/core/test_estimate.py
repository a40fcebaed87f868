"""The training-time estimate (inspection_core.usecases.estimate): what a run
is made of, a real probe of a tiny model on this machine, and no torch at
import. Its accuracy against real runs is measured by hand (the Train view's
path, the numbers are in the app's report); a test on a shared 2-core
machine cannot hold a factor of 2 reliably."""

from __future__ import annotations

import subprocess
import sys

import pytest

from inspection_core.config import ModelConfig, TrainConfig
from inspection_core.usecases.estimate import (
    LONG_RUN_S, ProbeCosts, duration_text, estimate_training, fit_split, probe_costs,
)


def _costs(unit_s: float = 0.5, score_s: float = 0.01, batch: int = 16) -> ProbeCosts:
    return ProbeCosts(unit_s=unit_s, score_s_per_image=score_s, batch_size=batch, probe_batch=batch, threads=1)


def test_the_module_imports_no_torch() -> None:
    code = "import sys, inspection_core.usecases.estimate; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(("seconds", "text"), [(20, "under a minute"), (50, "about 1 min"), (170, "about 3 min"),
                                               (3000, "about 50 min"), (4800, "about 1 h 20 min"), (7200, "about 2 h")])
def test_durations_read_as_a_user_says_them(seconds: float, text: str) -> None:
    assert duration_text(seconds) == text


def test_an_update_budget_is_its_updates_times_one_update() -> None:
    mcfg = ModelConfig("ganomaly", image_size=128, channels=1)
    t600 = TrainConfig(updates=600, batch_size=16, device="cpu")
    e600 = estimate_training(mcfg, t600, 200, 452, costs=_costs())
    assert e600.fit_mode == "updates" and e600.units == 600
    e1200 = estimate_training(mcfg, TrainConfig(updates=1200, batch_size=16, device="cpu"), 200, 452, costs=_costs())
    assert e1200.seconds - e600.seconds == pytest.approx(600 * 0.5, rel=0.05)  # the validation rounds stay 25
    assert e600.seconds > LONG_RUN_S and e600.long
    assert e600.what(mcfg, t600) == "600 updates of 16 images at 128 px"
    epochs = TrainConfig(epochs=15, batch_size=16, device="cpu")
    e = estimate_training(mcfg, epochs, 200, 0, costs=_costs())
    assert e.units == 15 * 12  # 180 images fitted (20 held out): 11 batches and a last one of 4
    assert e.what(mcfg, epochs) == "15 epochs (180 updates) of 16 images at 128 px"
    assert fit_split(200, epochs) == (180, 20) and fit_split(8, epochs) == (8, 0)


def test_a_one_pass_family_is_its_feature_batches_and_the_build() -> None:
    mcfg = ModelConfig("patchcore", image_size=224, channels=1)
    tcfg = TrainConfig(batch_size=16, device="cpu")
    small = estimate_training(mcfg, tcfg, 48, 28, costs=_costs(2.0))
    large = estimate_training(mcfg, tcfg, 200, 452, costs=_costs(2.0))
    assert small.fit_mode == "one_pass" and small.units == 3 and large.units == 12
    assert small.seconds < large.seconds < LONG_RUN_S * 2
    assert "one pass over the images at 224 px (12 batches of 16)" in large.what(mcfg, tcfg)


def test_a_probe_times_the_resolved_model_on_this_machine() -> None:
    import torch

    mcfg = ModelConfig("ganomaly", image_size=32, channels=3, params={"base_width": 8, "latent_dim": 16})
    tcfg = TrainConfig(updates=50, batch_size=8, device="cpu")
    threads = torch.get_num_threads()
    costs = probe_costs(mcfg, tcfg, 48, threads=1)
    assert torch.get_num_threads() == threads  # the caller's setting is back
    assert costs.threads == 1 and costs.batch_size == 8 and costs.probe_batch == 8  # cheap: the whole batch timed
    assert 0 < costs.unit_s < 5 and 0 < costs.score_s_per_image < 1
    est = estimate_training(mcfg, tcfg, 48, 28, costs=costs)
    assert est.units == 50 and est.seconds > 50 * costs.unit_s
