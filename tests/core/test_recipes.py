"""Recipes: every family has its presets, and explicit settings win over them."""

from __future__ import annotations

import pytest

from inspection_core.models import available_models, model_class
from inspection_core.recipes import PRESETS, RECIPES, resolve


def test_every_family_has_every_preset():
    built_in = [m for m in available_models() if model_class(m).__module__.startswith("inspection_core.models.")]
    assert sorted(RECIPES) == built_in  # the CLI lists RECIPES without importing torch
    for model, presets in RECIPES.items():
        assert sorted(presets) == sorted(PRESETS), model


def test_explicit_settings_are_laid_over_the_preset():
    mcfg, tcfg = resolve("skip-ganomaly", "standard", channels=1, image_size=64, params={"lam": 1.0},
                         train={"lr": 1e-3, "updates": 50}, normalize="mean_std")
    assert (mcfg.image_size, mcfg.channels, mcfg.params["lam"], mcfg.normalize) == (64, 1, 1.0, "mean_std")
    assert (tcfg.lr, tcfg.updates, tcfg.preset) == (1e-3, 50, "standard")
    with pytest.raises(ValueError, match="unknown training setting"):
        resolve("skip-ganomaly", train={"learning_rate": 1})
    with pytest.raises(ValueError, match="unknown preset"):
        resolve("skip-ganomaly", "fast")
