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


import torch
from torch import nn
from torch.nn import functional as F

from ...config import ModelConfig
from ..base import ScoreOutput
from ..components.adversarial import GeneratorDiscriminatorDetector
from ..components.blocks import Discriminator, frozen, per_image_mse, weights_init
from ..components.gan_params import net_size, pyramid_widths
from ..components.residual import ResidualScoring
from . import FAMILY


class UNetGenerator(nn.Module):
    """U-Net: conv 4x4 stride 2 levels S/2 .. 4 (BatchNorm + LeakyReLU, none
    on the first level), a 4x4 -> 1x1 -> 4x4 bottleneck of ``latent_dim``
    channels, and transposed-conv levels back up (BatchNorm + ReLU), each
    fed the previous decoder output concatenated with the encoder features
    of the same size. Tanh output.

    ``drop_skips`` removes the skip connections of the top levels (full
    resolution first): such a skip can carry a defect straight from the
    input to the output, so the reconstruction copies it. ``skip_dropout``
    zeroes whole skip tensors at random during training, so the decoder
    learns to rebuild from the bottleneck too."""

    def __init__(self, image_size: int, channels: int, latent_dim: int, width: int,
                 drop_skips: int = 0, skip_dropout: float = 0.0) -> None:
        super().__init__()
        widths = pyramid_widths(image_size, width)
        # use_skip[j]: the encoder features of level j reach the decoder
        self.use_skip = [j >= drop_skips for j in range(len(widths))]
        self.skip_dropout = float(skip_dropout)
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
                    nn.ConvTranspose2d((2 if self.use_skip[i + 1] else 1) * widths[i + 1], widths[i], 4, 2, 1, bias=False),
                    nn.BatchNorm2d(widths[i]),
                    nn.ReLU(inplace=True),
                )
            )
        self.ups = nn.ModuleList(ups)
        self.out = nn.Sequential(
            nn.ConvTranspose2d((2 if self.use_skip[0] else 1) * widths[0], channels, 4, 2, 1, bias=False), nn.Tanh())

    def _join(self, d: torch.Tensor, skip: torch.Tensor, level: int) -> torch.Tensor:
        if not self.use_skip[level]:
            return d
        if self.training and self.skip_dropout > 0:
            keep = (torch.rand(skip.shape[0], 1, 1, 1, device=skip.device) >= self.skip_dropout).to(skip.dtype)
            skip = skip * keep
        return torch.cat([d, skip], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips: list[torch.Tensor] = []
        h = x
        for down in self.downs:
            h = down(h)
            skips.append(h)
        d = self.bottleneck(h)
        for i in range(len(self.ups) - 1, -1, -1):
            d = self.ups[i](self._join(d, skips[i + 1], i + 1))
        return self.out(self._join(d, skips[0], 0))


class SkipGanomaly(ResidualScoring, GeneratorDiscriminatorDetector):
    """Skip-GANomaly detector; its parameters: ``params.py`` (``lam`` mixes
    the paper's score: 1 = reconstruction error only, 0 = latent error only)."""

    family = FAMILY

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        p = self.params
        s = net_size(cfg.image_size, p)
        self.generator = UNetGenerator(s, cfg.channels, int(p["latent_dim"]), int(p["base_width"]),
                                       int(p["drop_skips"]), float(p["skip_dropout"]))
        self.discriminator = Discriminator(s, cfg.channels, int(self.params['base_width']))
        self.generator.apply(weights_init)
        self.discriminator.apply(weights_init)
        self.init_residual()

    # -------------------------------------------------------------- inference
    def forward(self, x: torch.Tensor) -> ScoreOutput:
        if self.window:
            return self.reconstruction_output(x, self.windowed(x, self.generator), None)
        x_hat = self.generator(x)
        if not self.uses_paper_score:  # the map's score: no discriminator pass
            return self.reconstruction_output(x, x_hat, None)
        _, feat_real = self.discriminator(x)
        _, feat_fake = self.discriminator(x_hat)
        lam = float(self.params["lam"])
        scores = lam * per_image_mse(x, x_hat) + (1.0 - lam) * per_image_mse(feat_real, feat_fake)
        return self.reconstruction_output(x, x_hat, scores)

    # --------------------------------------------------------------- training
    def training_step(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, float]:
        if not self.optimizers:
            raise RuntimeError("skip-ganomaly: call configure_optimizers() before training_step()")
        p = self.params
        x = self.training_view(x)
        with frozen(self.discriminator), self.autocast():
            x_hat = self.generator(self.training_input(x))
            _, feat_real = self.discriminator(x)
            fake_logits, feat_fake = self.discriminator(x_hat)
            # the generator wants D to call its reconstructions real
            g_adv = F.binary_cross_entropy_with_logits(
                fake_logits.float(), torch.ones_like(fake_logits, dtype=torch.float32)
            )
            g_con = F.l1_loss(x_hat.float(), x.float())
            g_lat = F.mse_loss(feat_fake.float(), feat_real.detach().float())
            g_loss = p["w_adv"] * g_adv + p["w_con"] * g_con + p["w_lat"] * g_lat + self.perceptual_term(x, x_hat)
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
