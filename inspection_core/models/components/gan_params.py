"""The parameters, checks and presets that the reconstruction families
(GANomaly, Skip-GANomaly, BiGAN) share. No torch: the check before any image
is read runs on these.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ..schema import Param, Recipe, Schema
from .backbone_names import BACKBONE_NAMES

if TYPE_CHECKING:
    from ...config import ModelConfig

#: input sizes of the DCGAN families (a power of two: stride-2 levels down to 4x4)
DCGAN_IMAGE_SIZES = (32, 64, 128, 256, 512)
RESIDUALS = ("pixel", "ssim", "perceptual", "perceptual+ssim")
SCORES = ("paper", "map")

#: network size (GANomaly paper: latent 100, width 64)
DCGAN_SCHEMA = Schema((
    Param("latent_dim", 100, "numbers in the bottleneck: what the reconstruction can carry (the papers: 100)",
          low=1, high=8192),
    Param("base_width", 64, "channels of the first network level, doubled at each level down (the papers: 64)",
          low=1, high=512),
))

#: the map and the image score (``components.residual``); the defaults are
#: the papers' (pixel residual, the paper's score), the ``standard`` preset
#: is the measured recipe (perceptual residual, the map's score)
RESIDUAL_SCHEMA = Schema((
    Param("residual", "pixel", "how x and its reconstruction are compared for the map", choices=RESIDUALS),
    Param("score", "paper", "image score: map (mean of the map's top_k share) or paper (the family's own score)",
          choices=SCORES),
    Param("top_k", 0.01, "share of the map averaged for the image score (0.01: its hottest 1 %)",
          low=0.0, high=1.0, low_open=True),
    Param("perceptual_backbone", "", "frozen ImageNet backbone for the perceptual residual and loss",
          choices=("", *BACKBONE_NAMES)),
    Param("perceptual_layers", [], "its layers compared (empty: the backbone's defaults)"),
    Param("perceptual_weights", "imagenet", "its weights: imagenet (torch's cache), a local file, or random (tests)",
          weights=True, needs="perceptual_backbone"),
    Param("w_perceptual", 0.0, "weight of the perceptual distance in the generator's training loss (0: off)", low=0.0),
    Param("synthetic_defects", 0.0, "share of training inputs given a pasted blob or scratch to repair (0: off)",
          low=0.0, high=1.0),
    Param("window", 0, "network size in px for crops and sliding windows over larger images (0: whole images)"),
))


def loss_weight(name: str, default: float, help: str) -> Param:
    """A loss weight: a number >= 0."""
    return Param(name, default, help, low=0.0)


def net_size(image_size: int, p: dict[str, Any]) -> int:
    """The size the networks are built for: ``window`` when set, else the input size."""
    w = p.get("window", 0)
    return int(w) if w else int(image_size)


def pyramid_widths(image_size: int, width: int) -> list[int]:
    """Channel counts of the encoder levels at sizes S/2, S/4, ..., 4."""
    if image_size < 8 or image_size & (image_size - 1):
        raise ValueError(f"image size must be a power of two >= 8, got {image_size}")
    levels = int(math.log2(image_size)) - 2
    return [min(width * 2**i, 8 * width) for i in range(levels)]


def check_reconstruction_config(cfg: ModelConfig) -> None:
    """What every reconstruction family checks across its parameters (each
    one already checked on its own): a perceptual residual or loss has a
    backbone, the window fits the input, the networks' size is a DCGAN size."""
    name, p = cfg.model, cfg.params
    needs = "perceptual" in p["residual"] or float(p["w_perceptual"]) > 0
    if needs and not p["perceptual_backbone"]:
        raise ValueError(f"{name}: a perceptual residual or loss needs perceptual_backbone (e.g. mobilenet_v2)")
    check_window(name, cfg.image_size, p)
    size = net_size(cfg.image_size, p)
    if size not in DCGAN_IMAGE_SIZES:
        raise ValueError(f"{name}: image size must be one of {', '.join(map(str, DCGAN_IMAGE_SIZES))}, got {size}")


def check_window(name: str, image_size: int, p: dict[str, Any]) -> None:
    """A ``window`` is 0 (off) or a network size below the input size, and
    a windowed model scores with the map."""
    w = p["window"]
    if w == 0:
        return
    if w not in DCGAN_IMAGE_SIZES or w >= image_size:
        raise ValueError(f"{name}: window must be 0 (off) or one of "
                         f"{', '.join(str(s) for s in DCGAN_IMAGE_SIZES if s < image_size) or 'no size'} "
                         f"(smaller than the image size {image_size}), got {w!r}")
    if p["score"] != "map":
        raise ValueError(f"{name}: a windowed model (window={w}) scores with the map; set score=map")


#: The reconstruction families' recipe, measured in ``docs/quality.md`` (the
#: ablation there): illumination normalised per image, the anomaly map in a
#: perceptual space (frozen MobileNetV2 features of x and x_hat), the image
#: score from the map's top 1 %, a budget of updates rather than epochs.
#: ``quick`` keeps the pixel residual, so it needs no pretrained weights.
GAN_STANDARD = {"base_width": 32, "residual": "perceptual", "score": "map", "perceptual_backbone": "mobilenet_v2",
                "perceptual_layers": ["features.3", "features.6", "features.13"], "synthetic_defects": 0.5}
_GAN_QUICK = {"base_width": 32, "residual": "pixel", "score": "map"}
_GAN_TRAIN = {"batch_size": 16, "lr": 2e-4, "updates": 600}


def gan_presets(standard_params: dict[str, Any], thorough_updates: int = 1500) -> dict[str, Recipe]:
    """quick / standard / thorough of a reconstruction family."""
    return {
        "quick": Recipe(64, dict(_GAN_QUICK), {**_GAN_TRAIN, "updates": 150}, "mean_std"),
        "standard": Recipe(128, dict(standard_params), dict(_GAN_TRAIN), "mean_std"),
        "thorough": Recipe(128, dict(standard_params), {**_GAN_TRAIN, "updates": thorough_updates}, "mean_std"),
    }


__all__ = ["DCGAN_IMAGE_SIZES", "DCGAN_SCHEMA", "GAN_STANDARD", "RESIDUALS", "RESIDUAL_SCHEMA", "SCORES",
           "check_reconstruction_config", "check_window", "gan_presets", "loss_weight", "net_size", "pyramid_widths"]
