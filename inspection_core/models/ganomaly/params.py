"""GANomaly's parameters and presets."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..components.gan_params import (DCGAN_SCHEMA, GAN_STANDARD, RESIDUAL_SCHEMA, check_reconstruction_config,
                                     gan_presets, loss_weight)
from ..schema import Schema

if TYPE_CHECKING:
    from ...config import ModelConfig

SCHEMA = DCGAN_SCHEMA + Schema((
    loss_weight("w_adv", 1.0, "weight of the adversarial (feature-matching) loss"),
    loss_weight("w_con", 50.0, "weight of the L1 reconstruction loss"),
    loss_weight("w_enc", 1.0, "weight of the latent loss between z and the re-encoded reconstruction"),
)) + RESIDUAL_SCHEMA

PRESETS = gan_presets(GAN_STANDARD)


def check(cfg: ModelConfig) -> None:
    check_reconstruction_config(cfg)
