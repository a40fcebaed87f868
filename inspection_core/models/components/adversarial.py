"""What GANomaly and Skip-GANomaly share: a generator and a discriminator
trained with Adam, the discriminator's update on real vs. reconstructed
images, and its re-initialisation when its loss collapses."""

from __future__ import annotations

import torch

from ...config import TrainConfig
from ..base import Detector
from .blocks import discriminator_loss, reinit_if_collapsed


class GeneratorDiscriminatorDetector(Detector):
    """A Detector with ``self.generator`` and ``self.discriminator`` (set by the subclass)."""

    generator: torch.nn.Module
    discriminator: torch.nn.Module

    def configure_optimizers(self, tcfg: TrainConfig) -> None:
        betas = (tcfg.beta1, 0.999)
        self.optimizers = {
            "g": torch.optim.Adam(self.generator.parameters(), lr=tcfg.lr, betas=betas, weight_decay=tcfg.weight_decay),
            "d": torch.optim.Adam(self.discriminator.parameters(), lr=tcfg.lr, betas=betas, weight_decay=tcfg.weight_decay),
        }

    def maybe_reinit_discriminator(self, d_loss: float) -> bool:
        """Re-initialise D when its loss collapsed below 1e-5 (as the original
        GANomaly implementation does). Returns whether it did."""
        return reinit_if_collapsed(self.discriminator, d_loss, self.optimizers.get("d"))

    def update_discriminator(self, x: torch.Tensor, x_hat: torch.Tensor) -> tuple[float, bool]:
        """One D step on real ``x`` vs. the detached reconstructions; (its loss, whether D was re-initialised)."""
        with self.autocast():
            real_logits, _ = self.discriminator(x)
            fake_logits, _ = self.discriminator(x_hat.detach())
            d_loss = discriminator_loss(real_logits, fake_logits)
        self.step(d_loss, self.optimizers["d"])
        d_value = float(d_loss.item())
        return d_value, self.maybe_reinit_discriminator(d_value)
