"""Skip-GANomaly's parameters and presets."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..components.gan_params import (DCGAN_SCHEMA, GAN_STANDARD, RESIDUAL_SCHEMA, check_reconstruction_config,
                                     gan_presets, loss_weight, net_size, pyramid_widths)
from ..schema import Param, Schema

if TYPE_CHECKING:
    from ...config import ModelConfig

SCHEMA = DCGAN_SCHEMA + Schema((
    loss_weight("w_adv", 1.0, "weight of the adversarial loss"),
    loss_weight("w_con", 50.0, "weight of the L1 reconstruction loss"),
    loss_weight("w_lat", 1.0, "weight of the loss between discriminator features of x and its reconstruction"),
    Param("lam", 0.9, "the paper's score: 1 = reconstruction error only, 0 = latent error only", low=0.0, high=1.0),
    Param("drop_skips", 0, "skip connections removed from the finest levels, so a defect is not copied through",
          low=0),
    Param("skip_dropout", 0.0, "share of skip connections zeroed at random while training (0: off)",
          low=0.0, high=1.0, high_open=True),
)) + RESIDUAL_SCHEMA

#: without its three finest skips the U-Net cannot copy a small defect through (four dropped:
#: better on magnetic_tile and screw, but the demo washers' training failed: docs/quality.md)
PRESETS = gan_presets({**GAN_STANDARD, "drop_skips": 3})


def check(cfg: ModelConfig) -> None:
    check_reconstruction_config(cfg)
    p = cfg.params
    levels = len(pyramid_widths(net_size(cfg.image_size, p), int(p["base_width"])))
    if not 0 <= p["drop_skips"] <= levels:
        raise ValueError(f"{cfg.model}: drop_skips must be a whole number in [0, {levels}], got {p['drop_skips']!r}")
