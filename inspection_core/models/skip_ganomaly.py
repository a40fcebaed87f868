"""Skip-GANomaly: skip-connected and adversarially trained encoder-decoder
anomaly detection (Akcay, Atapour-Abarghouei and Breckon, IJCNN 2019).

The generator is a U-Net (strided-conv encoder, transposed-conv decoder,
encoder features concatenated into the decoder), which reconstructs fine
detail far better than a plain bottleneck. The discriminator's last feature
map f(.) serves as the latent representation. The anomaly score mixes the
reconstruction and latent errors: lam * mean((x - x_hat)^2) + (1 - lam) *
mean((f(x) - f(x_hat))^2).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..config import ModelConfig
from .adversarial import GeneratorDiscriminatorDetector
from .base import ScoreOutput, reconstruction_map, weights_init
from .blocks import check_dcgan_config, dcgan_params, Discriminator, frozen, per_image_mse, pyramid_widths
from .registry import register


class UNetGenerator(nn.Module):
    """U-Net: conv 4x4 stride 2 levels S/2 .. 4 (BatchNorm + LeakyReLU, none
    on the first level), a 4x4 -> 1x1 -> 4x4 bottleneck of ``latent_dim``
    channels, and transposed-conv levels back up (BatchNorm + ReLU), each
    fed the previous decoder output concatenated with the encoder features
    of the same size. Tanh output."""

    def __init__(self, image_size: int, channels: int, latent_dim: int, width: int) -> None:
        super().__init__()
        widths = pyramid_widths(image_size, width)
        downs: list[nn.Module] = [
            nn.Sequential(nn.Conv2d(channels, widths[0], 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True))
        ]
        for c_in, c_out in zip(widths, widths[1:]):
            downs.append(
                nn.Sequential(
                    nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False),
                    nn.BatchNorm2d(c_out),
                    nn.LeakyReLU(0.2, inplace=True),
                )
            )
        self.downs = nn.ModuleList(downs)
        self.bottleneck = nn.Sequential(
            nn.Conv2d(widths[-1], latent_dim, 4, 1, 0, bias=False),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(latent_dim, widths[-1], 4, 1, 0, bias=False),
            nn.BatchNorm2d(widths[-1]),
            nn.ReLU(inplace=True),
        )
        # ups[i] maps cat(decoder, encoder level i+1) -> size of level i
        ups: list[nn.Module] = []
        for i in range(len(widths) - 1):
            ups.append(
                nn.Sequential(
                    nn.ConvTranspose2d(2 * widths[i + 1], widths[i], 4, 2, 1, bias=False),
                    nn.BatchNorm2d(widths[i]),
                    nn.ReLU(inplace=True),
                )
            )
        self.ups = nn.ModuleList(ups)
        self.out = nn.Sequential(nn.ConvTranspose2d(2 * widths[0], channels, 4, 2, 1, bias=False), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips: list[torch.Tensor] = []
        h = x
        for down in self.downs:
            h = down(h)
            skips.append(h)
        d = self.bottleneck(h)
        for i in range(len(self.ups) - 1, -1, -1):
            d = self.ups[i](torch.cat([d, skips[i + 1]], dim=1))
        return self.out(torch.cat([d, skips[0]], dim=1))


@register("skip-ganomaly")
class SkipGanomaly(GeneratorDiscriminatorDetector):
    """Skip-GANomaly detector. Params: ``w_adv`` (adversarial BCE), ``w_con``
    (L1 reconstruction), ``w_lat`` (L2 between discriminator features of x
    and x_hat) loss weights; ``lam`` mixes the score (1 = reconstruction
    error only, 0 = latent error only)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        for key in ("w_adv", "w_con", "w_lat"):
            if float(self.params[key]) < 0:
                raise ValueError(f"skip-ganomaly: loss weight {key} must be >= 0, got {self.params[key]}")
        if not 0.0 <= float(self.params["lam"]) <= 1.0:
            raise ValueError(f"skip-ganomaly: lam must be in [0, 1], got {self.params['lam']}")
        self.generator = UNetGenerator(cfg.image_size, cfg.channels, int(self.params['latent_dim']), int(self.params['base_width']))
        self.discriminator = Discriminator(cfg.image_size, cfg.channels, int(self.params['base_width']))
        self.generator.apply(weights_init)
        self.discriminator.apply(weights_init)

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        return {**dcgan_params(), "w_adv": 1.0, "w_con": 50.0, "w_lat": 1.0, "lam": 0.9}

    @classmethod
    def check_config(cls, cfg: ModelConfig) -> None:
        check_dcgan_config(cls.name, cfg.image_size, cfg.params)

    # -------------------------------------------------------------- inference
    def forward(self, x: torch.Tensor) -> ScoreOutput:
        x_hat = self.generator(x)
        _, feat_real = self.discriminator(x)
        _, feat_fake = self.discriminator(x_hat)
        lam = float(self.params["lam"])
        scores = lam * per_image_mse(x, x_hat) + (1.0 - lam) * per_image_mse(feat_real, feat_fake)
        return ScoreOutput(scores=scores, anomaly_map=reconstruction_map(x, x_hat), reconstruction=x_hat.float())

    # --------------------------------------------------------------- training
    def training_step(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, float]:
        if not self.optimizers:
            raise RuntimeError("skip-ganomaly: call configure_optimizers() before training_step()")
        p = self.params
        with frozen(self.discriminator), self.autocast():
            x_hat = self.generator(x)
            _, feat_real = self.discriminator(x)
            fake_logits, feat_fake = self.discriminator(x_hat)
            # the generator wants D to call its reconstructions real
            g_adv = F.binary_cross_entropy_with_logits(
                fake_logits.float(), torch.ones_like(fake_logits, dtype=torch.float32)
            )
            g_con = F.l1_loss(x_hat.float(), x.float())
            g_lat = F.mse_loss(feat_fake.float(), feat_real.detach().float())
            g_loss = p["w_adv"] * g_adv + p["w_con"] * g_con + p["w_lat"] * g_lat
        self.step(g_loss, self.optimizers["g"])

        d_value, reinit = self.update_discriminator(x, x_hat)

        return {
            "g_loss": float(g_loss.item()),
            "g_adv": float(g_adv.item()),
            "g_con": float(g_con.item()),
            "g_lat": float(g_lat.item()),
            "d_loss": d_value,
            "d_reinit": 1.0 if reinit else 0.0,
        }
