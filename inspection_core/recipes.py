"""Training recipes: what ``inspector train --model M`` does with no other flag.

A recipe is a model family's input size, parameters and training settings.
Each family has three presets that the command line and the Train view share:

- ``quick``: a short check that the data and the pipeline work (minutes),
- ``standard``: the default, measured on ``../shared/data`` (see
  ``docs/quality.md``),
- ``thorough``: a longer run for the last few points.

Anything a user sets explicitly (``--lr``, ``--param lam=1``, the Train
view's fields) is laid over the preset by :func:`resolve`; the preset's name
is recorded in the bundle with the values that were used.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from typing import Any

from .config import ModelConfig, TrainConfig

PRESETS = ("quick", "standard", "thorough")
DEFAULT_PRESET = "standard"


@dataclass(frozen=True)
class Recipe:
    """Input size, family parameters and training settings of one preset."""

    image_size: int
    params: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    #: illumination normalisation of the preprocessing ("none" or "mean_std")
    normalize: str = "none"


#: The reconstruction families' recipe, measured in ``docs/quality.md``
#: (the ablation there): illumination normalised per image, the
#: anomaly map in a perceptual space (frozen MobileNetV2 features of x and
#: x_hat), the image score from the map's top 1 %, a budget of updates
#: rather than epochs. ``quick`` keeps the pixel residual, so it needs no
#: pretrained weights.
_PERCEPTUAL = {"residual": "perceptual", "score": "map", "perceptual_backbone": "mobilenet_v2",
               "perceptual_layers": ["features.3", "features.6", "features.13"]}
_GAN_PARAMS = {"base_width": 32, **_PERCEPTUAL, "synthetic_defects": 0.5}
_GAN_QUICK = {"base_width": 32, "residual": "pixel", "score": "map"}
_GAN_TRAIN = {"batch_size": 16, "lr": 2e-4, "updates": 600}


def _gan_presets(standard_params: dict[str, Any], thorough_updates: int = 1500) -> dict[str, Recipe]:
    return {
        "quick": Recipe(64, dict(_GAN_QUICK), {**_GAN_TRAIN, "updates": 150}, "mean_std"),
        "standard": Recipe(128, dict(standard_params), dict(_GAN_TRAIN), "mean_std"),
        "thorough": Recipe(128, dict(standard_params), {**_GAN_TRAIN, "updates": thorough_updates}, "mean_std"),
    }


#: family -> preset -> recipe
RECIPES: dict[str, dict[str, Recipe]] = {
    "ganomaly": _gan_presets(_GAN_PARAMS),
    # without its three finest skips the U-Net cannot copy a small defect through (four dropped:
    # better on magnetic_tile and screw, but the demo washers' training failed: docs/quality.md)
    "skip-ganomaly": _gan_presets({**_GAN_PARAMS, "drop_skips": 3}),
    "bigan": _gan_presets(_GAN_PARAMS, thorough_updates=1000),
    "vgg16": {
        "quick": Recipe(128, {}, {"batch_size": 32, "epochs": 3}),
        "standard": Recipe(128, {}, {"batch_size": 32, "epochs": 15}),
        "thorough": Recipe(224, {}, {"batch_size": 32, "epochs": 30}),
    },
    "patchcore": {
        "quick": Recipe(224, {"coreset_ratio": 0.02}, {"batch_size": 16}),
        "standard": Recipe(224, {}, {"batch_size": 16}),
        # the bank at its cap (20,000) and four exposures in it (docs/quality.md)
        "thorough": Recipe(256, {"coreset_ratio": 0.25, "bank_augment": ["bright", "dark", "brighter", "darker"]},
                           {"batch_size": 16}),
    },
}


def recipe(model: str, preset: str = DEFAULT_PRESET) -> Recipe:
    """The preset ``preset`` of family ``model``."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; presets: {', '.join(PRESETS)}")
    try:
        return RECIPES[model][preset]
    except KeyError:
        raise ValueError(f"no recipe for model {model!r}; models with recipes: {', '.join(sorted(RECIPES))}") from None


def resolve(model: str, preset: str = DEFAULT_PRESET, *, channels: int = 3, image_size: int | None = None,
            params: dict[str, Any] | None = None, train: dict[str, Any] | None = None,
            normalize: str | None = None) -> tuple[ModelConfig, TrainConfig]:
    """The configs of ``preset`` with the user's explicit settings laid over
    it: ``params`` over the recipe's family parameters, ``train`` (TrainConfig
    field names) over its training settings. Unknown training settings are
    an error. ``cpu_bf16`` not given (or None) is
    :func:`inspection_core.acceleration.default_cpu_bf16`: bf16
    training on a CPU with native bf16 for the families measured to keep
    their quality with it."""
    r = recipe(model, preset)
    known = {f.name for f in fields(TrainConfig)}
    overrides = dict(train or {})
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"unknown training setting(s) {sorted(unknown)}")
    tvals = {**copy.deepcopy(r.train), **overrides, "preset": preset}
    if tvals.get("cpu_bf16") is None:
        from .acceleration import default_cpu_bf16

        tvals["cpu_bf16"] = default_cpu_bf16(model)
    if "updates" in overrides and "epochs" not in overrides:
        tvals.pop("epochs", None)  # an update budget replaces the recipe's epochs
    if "epochs" in overrides and "updates" not in overrides:
        tvals.pop("updates", None)
    mcfg = ModelConfig(model=model, image_size=int(image_size or r.image_size), channels=channels,
                       params={**copy.deepcopy(r.params), **(params or {})}, normalize=normalize or r.normalize)
    return mcfg, TrainConfig(**tvals)


__all__ = ["DEFAULT_PRESET", "PRESETS", "RECIPES", "Recipe", "recipe", "resolve"]
