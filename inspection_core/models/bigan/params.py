"""BiGAN's parameters and presets."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..components.gan_params import (DCGAN_SCHEMA, GAN_STANDARD, RESIDUAL_SCHEMA, check_reconstruction_config,
                                     gan_presets, loss_weight)
from ..schema import Param, Schema

if TYPE_CHECKING:
    from ...config import ModelConfig

SCHEMA = DCGAN_SCHEMA + RESIDUAL_SCHEMA + Schema((
    Param("alpha", 0.9, "the paper's score: share of the reconstruction error (the rest: critic features)",
          low=0.0, high=1.0),
    loss_weight("lambda_gp", 10.0, "weight of the critic's gradient penalty (WGAN-GP)"),
    Param("n_critic", 2, "critic updates per encoder and generator update", low=1),
    loss_weight("w_feat", 1.0, "weight of the feature-matching loss for the encoder and generator"),
    loss_weight("w_cons", 10.0, "weight of the consistency loss |x - G(E(x))| + |z - E(G(z))| (0: off)"),
))

PRESETS = gan_presets(GAN_STANDARD, thorough_updates=1000)


def check(cfg: ModelConfig) -> None:
    check_reconstruction_config(cfg)
