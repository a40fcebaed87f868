"""The transfer classifier's parameters and presets."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..components.backbone_names import BACKBONE_NAMES
from ..schema import Param, Recipe, Schema

if TYPE_CHECKING:
    from ...config import ModelConfig

#: base_width of the real VGG16
REAL_WIDTH = 64

SCHEMA = Schema((
    Param("backbone", "vgg16", "the pretrained base network", choices=BACKBONE_NAMES),
    Param("init", "imagenet", "start weights: imagenet (torch's cache), scratch, or a local weights file",
          weights=True, scratch="scratch"),
    Param("base_width", REAL_WIDTH, "vgg16 from scratch only: channels of its first level (64 is the real network)",
          low=1),
    Param("fine_tune", 1.0, "share of the pretrained base's stages, counted from its top, that are fine-tuned "
          "after the frozen epochs (1: all; less trains faster: the early stages need no backward pass)",
          low=0.0, low_open=True, high=1.0),
    Param("freeze_epochs", 2, "epochs with the pretrained base frozen before it is fine-tuned", low=0),
    # the classifier has its own optimiser setting: a learning rate the user gives (--lr) lands here
    Param("lr", 1e-4, "learning rate of the classifier's Adam optimiser", low=0.0, low_open=True, train_setting="lr"),
    Param("head_lr", 1e-3, "learning rate of the new classification head (the pretrained base learns at lr)",
          low=0.0, low_open=True),
    Param("pooling", "avg", "how the last feature map becomes one vector: avg (global average) or max (global max, "
          "which a small defect is not averaged away in)", choices=("avg", "max")),
    Param("class_weights", "balanced", "balanced (weigh the rarer class up) or none", choices=("balanced", "none")),
    Param("augment", True, "flips, rotations, brightness and contrast jitter while training"),
    Param("max_rotation", 10.0, "largest rotation of that augmentation, degrees"),
))

#: the recipe (docs/quality.md, "The classifier's recipe"): the backbone's native 224 px, class-balanced
#: passes, the good training images shared with the held-out split, the top three quarters of the base
#: fine-tuned, max pooling, and a budget the validation AUROC ends (the best epoch is kept); class
#: weights off, since the passes are balanced already
_TRAIN = {"batch_size": 32, "balanced_batches": True, "holdout_train_good": True,
          "max_steps_per_epoch": 10}  # a pass of at most 320 images: validation (and early stopping) that often
_PARAMS = {"class_weights": "none", "pooling": "max", "fine_tune": 0.75}
PRESETS = {
    "quick": Recipe(128, _PARAMS, {**_TRAIN, "epochs": 8, "early_stopping_patience": 4}),
    "standard": Recipe(224, _PARAMS, {**_TRAIN, "epochs": 40, "early_stopping_patience": 8}),
    "thorough": Recipe(224, {**_PARAMS, "fine_tune": 1.0}, {**_TRAIN, "epochs": 80, "early_stopping_patience": 15}),
}


def check(cfg: ModelConfig) -> None:
    p = cfg.params
    if not p["init"]:
        raise ValueError(f"{cfg.model}: init must be 'imagenet', 'scratch' or a weights file path, got {p['init']!r}")
    if p["base_width"] != REAL_WIDTH and (p["init"] != "scratch" or p["backbone"] != "vgg16"):
        raise ValueError(
            f"{cfg.model}: pretrained weights ({p['init']!r}) and other backbones need base_width {REAL_WIDTH} "
            f"(the real network), got {p['base_width']}; use init='scratch' with backbone vgg16 for a narrower network"
        )
