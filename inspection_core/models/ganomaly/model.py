"""GANomaly: semi-supervised anomaly detection via adversarial training
(Akcay, Atapour-Abarghouei and Breckon, ACCV 2018).

The generator is an encoder-decoder-encoder: x -> z = G_E(x) -> x_hat =
G_D(z) -> z_hat = E(x_hat). Trained on good images only, it learns to map
them so that z and z_hat agree; a defect that the decoder cannot reproduce
moves z_hat away from z. The anomaly score is the latent error
mean((z - z_hat)^2); the anomaly map is the per-pixel reconstruction error.
"""

from __future__ import annotations


import torch
from torch import nn
from torch.nn import functional as F

from ...config import ModelConfig
from ..base import ScoreOutput
from ..components.adversarial import GeneratorDiscriminatorDetector
from ..components.blocks import Decoder, Discriminator, Encoder, frozen, per_image_mse, weights_init
from ..components.gan_params import net_size
from ..components.residual import ResidualScoring
from . import FAMILY


class GanomalyGenerator(nn.Module):
    """Encoder G_E -> decoder G_D -> encoder E. Returns (x_hat, z, z_hat),
    latents shaped (B, latent_dim, 1, 1); z_hat is None when
    ``encode_back`` is False (the map's score does not need it)."""

    def __init__(self, image_size: int, channels: int, latent_dim: int, width: int) -> None:
        super().__init__()
        self.encoder1 = Encoder(image_size, channels, latent_dim, width)
        self.decoder = Decoder(image_size, latent_dim, channels, width)
        self.encoder2 = Encoder(image_size, channels, latent_dim, width)

    def forward(self, x: torch.Tensor, encode_back: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        z = self.encoder1(x)
        x_hat = self.decoder(z)
        return x_hat, z, self.encoder2(x_hat) if encode_back else None


class Ganomaly(ResidualScoring, GeneratorDiscriminatorDetector):
    """GANomaly detector; its parameters: ``params.py``."""

    family = FAMILY

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        s = net_size(cfg.image_size, self.params)
        self.generator = GanomalyGenerator(s, cfg.channels, int(self.params['latent_dim']), int(self.params['base_width']))
        self.discriminator = Discriminator(s, cfg.channels, int(self.params['base_width']))
        self.generator.apply(weights_init)
        self.discriminator.apply(weights_init)
        self.init_residual()

    # -------------------------------------------------------------- inference
    def forward(self, x: torch.Tensor) -> ScoreOutput:
        if self.window:
            return self.reconstruction_output(x, self.windowed(x, lambda w: self.generator(w, encode_back=False)[0]), None)
        x_hat, z, z_hat = self.generator(x, encode_back=self.uses_paper_score)
        return self.reconstruction_output(x, x_hat, None if z_hat is None else per_image_mse(z, z_hat))

    # --------------------------------------------------------------- training
    def training_step(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, float]:
        if not self.optimizers:
            raise RuntimeError("ganomaly: call configure_optimizers() before training_step()")
        p = self.params
        x = self.training_view(x)
        # generator update: D is only a feature extractor here
        with frozen(self.discriminator), self.autocast():
            x_hat, z, z_hat = self.generator(self.training_input(x))
            _, feat_real = self.discriminator(x)
            _, feat_fake = self.discriminator(x_hat)
            g_adv = F.mse_loss(feat_fake.float(), feat_real.detach().float())
            g_con = F.l1_loss(x_hat.float(), x.float())
            g_enc = F.mse_loss(z_hat.float(), z.float())
            g_perc = self.perceptual_term(x, x_hat)
            g_loss = p["w_adv"] * g_adv + p["w_con"] * g_con + p["w_enc"] * g_enc + g_perc
        self.step(g_loss, self.optimizers["g"])

        # discriminator update on real vs. (detached) reconstructions
        d_value, reinit = self.update_discriminator(x, x_hat)

        return {
            "g_loss": float(g_loss.item()),
            "g_adv": float(g_adv.item()),
            "g_con": float(g_con.item()),
            "g_enc": float(g_enc.item()),
            "d_loss": d_value,
            "d_reinit": 1.0 if reinit else 0.0,
        }
