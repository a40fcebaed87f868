"""BiGAN / ALI anomaly detector, GANspection variant.

BiGAN (Donahue, Krähenbühl and Darrell, ICLR 2017) and ALI (Dumoulin et al.,
ICLR 2017) learn an encoder E (x -> z) together with a generator G (z -> x):
a joint discriminator D(x, z) tells real pairs (x, E(x)) from generated pairs
(G(z), z), which at the optimum makes E invert G. Zenati et al. (2018) score
anomalies with the reconstruction G(E(x)) and the discriminator's features.

Here the critic is trained with the Wasserstein objective and a gradient
penalty (WGAN-GP, Gulrajani et al., NeurIPS 2017): no sigmoid, no BatchNorm
(the penalty is per-sample, so the critic uses per-sample LayerNorm), and E/G
also get a feature-matching loss between the joint features f_D of real and
generated pairs (the GANspection variant).

E and G also get a consistency loss ``w_cons * (|x - G(E(x))|_1 + |z - E(G(z))|_1)``
(per-element means), as in CBiGAN (Carrara et al., ICPR 2020). Pure BiGAN
learns to invert G only after long training; the score below is 90 %
reconstruction error, so without this term a short training gives a
detector that cannot reconstruct good parts. ``w_cons = 0`` leaves the GANspection objective alone.

Score: ``alpha * mse(x, G(E(x))) + (1 - alpha) * mse(f_D(x, E(x)), f_D(G(E(x)), E(x)))``
where ``mse`` is the per-image mean of squared differences (squared L2 norm
divided by the element count), so the two terms do not depend on image or
feature size, and each image is scored independently of its batch.
"""

from __future__ import annotations


import torch
from torch import nn

from ...config import ModelConfig, TrainConfig
from ..base import Detector, ScoreOutput
from ..components.blocks import Decoder, Encoder, frozen, per_image_mse, weights_init
from ..components.gan_params import net_size, pyramid_widths
from ..components.residual import ResidualScoring
from . import FAMILY


class JointCritic(nn.Module):
    """D(x, z): a strided-conv trunk on x (LayerNorm, no BatchNorm), a small
    1x1-conv MLP on z, and joint 1x1-conv layers. ``forward`` returns
    ``(critic (B,), joint features f_D (B, F))``; no sigmoid (Wasserstein)."""

    def __init__(self, image_size: int, channels: int, latent_dim: int, width: int) -> None:
        super().__init__()
        widths = pyramid_widths(image_size, width)
        layers: list[nn.Module] = [nn.Conv2d(channels, widths[0], 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        for c_in, c_out in zip(widths, widths[1:]):
            # GroupNorm with one group = LayerNorm over (C, H, W) of each image
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.GroupNorm(1, c_out), nn.LeakyReLU(0.2, inplace=True)]
        layers += [nn.Conv2d(widths[-1], widths[-1], 4, 1, 0), nn.LeakyReLU(0.2, inplace=True)]
        self.x_trunk = nn.Sequential(*layers)
        hz = widths[-1]
        self.z_trunk = nn.Sequential(
            nn.Conv2d(latent_dim, hz, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(hz, hz, 1), nn.LeakyReLU(0.2, inplace=True),
        )
        self.feature_dim = 2 * widths[-1]
        self.joint = nn.Sequential(nn.Conv2d(widths[-1] + hz, self.feature_dim, 1), nn.LeakyReLU(0.2, inplace=True))
        self.out = nn.Conv2d(self.feature_dim, 1, 1)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.cat([self.x_trunk(x), self.z_trunk(z.to(x.dtype))], dim=1)
        feats = self.joint(h)
        return self.out(feats).flatten(), feats.flatten(1)


class BiGAN(ResidualScoring, Detector):
    """BiGAN/ALI detector with a WGAN-GP joint critic. Params: ``alpha``
    (score mix, reconstruction share), ``lambda_gp`` (gradient penalty
    weight), ``n_critic`` (critic updates per E/G update), ``w_feat``
    (feature-matching loss weight for E and G), ``w_cons`` (consistency
    loss weight, 0 turns it off)."""

    family = FAMILY
    can_generate = True

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        p = self.params
        s, c, k, w = net_size(cfg.image_size, p), cfg.channels, int(p['latent_dim']), int(p['base_width'])
        self.encoder = Encoder(s, c, k, w)
        self.generator = Decoder(s, k, c, w)
        self.critic = JointCritic(s, c, k, w)
        for m in (self.encoder, self.generator, self.critic):
            m.apply(weights_init)
        self.init_residual()

    # -------------------------------------------------------------- inference
    def forward(self, x: torch.Tensor) -> ScoreOutput:
        if self.window:
            return self.reconstruction_output(x, self.windowed(x, lambda w: self.generator(self.encoder(w))), None)
        z = self.encoder(x)
        x_hat = self.generator(z)
        if not self.uses_paper_score:  # the map's score: no critic passes
            return self.reconstruction_output(x, x_hat, None)
        _, f_real = self.critic(x, z)
        _, f_rec = self.critic(x_hat, z)
        alpha = float(self.params["alpha"])
        scores = alpha * per_image_mse(x, x_hat) + (1.0 - alpha) * per_image_mse(f_real, f_rec)
        return self.reconstruction_output(x, x_hat, scores)

    def sample_latents(self, n: int) -> torch.Tensor:
        """z ~ N(0, I), shaped (n, latent_dim, 1, 1) on the model's device."""
        return torch.randn(n, int(self.params['latent_dim']), 1, 1, device=self.device)

    @torch.no_grad()
    def generate(self, n: int) -> torch.Tensor:
        """G(z) for z ~ N(0, I): (n, C, H, W) in [-1, 1]. G runs in eval
        mode (running BatchNorm statistics), whatever mode the model is in."""
        was_training = self.generator.training
        self.generator.eval()
        try:
            return self.generator(self.sample_latents(n)).float()
        finally:
            self.generator.train(was_training)

    # --------------------------------------------------------------- training
    def configure_optimizers(self, tcfg: TrainConfig) -> None:
        # WGAN-GP uses beta2 = 0.9; beta1 comes from the training config (0.5)
        betas = (tcfg.beta1, 0.9)
        ge_params = [*self.encoder.parameters(), *self.generator.parameters()]
        self.optimizers = {
            "d": torch.optim.Adam(self.critic.parameters(), lr=tcfg.lr, betas=betas),
            "ge": torch.optim.Adam(ge_params, lr=tcfg.lr, betas=betas, weight_decay=tcfg.weight_decay),
        }

    def gradient_penalty(
        self, x_real: torch.Tensor, z_real: torch.Tensor, x_fake: torch.Tensor, z_fake: torch.Tensor
    ) -> torch.Tensor:
        """WGAN-GP penalty (||grad_(x,z) D(x, z)|| - 1)^2 at random points on
        the lines between real and generated pairs. Always computed in fp32
        with autocast off: the double backward is fragile in half precision."""
        with torch.autocast(device_type=self.device.type, enabled=False):
            b = x_real.shape[0]
            eps = torch.rand(b, 1, 1, 1, device=x_real.device)
            xi = (eps * x_real.detach().float() + (1 - eps) * x_fake.detach().float()).requires_grad_(True)
            zi = (eps * z_real.detach().float() + (1 - eps) * z_fake.detach().float()).requires_grad_(True)
            out, _ = self.critic(xi, zi)
            gx, gz = torch.autograd.grad(out.float().sum(), (xi, zi), create_graph=True)
            norm = torch.sqrt(gx.flatten(1).pow(2).sum(1) + gz.flatten(1).pow(2).sum(1) + 1e-12)
            return (norm - 1.0).pow(2).mean()

    def training_step(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, float]:
        if not self.optimizers:
            raise RuntimeError("bigan: call configure_optimizers() before training_step()")
        p = self.params
        x = self.training_view(x)
        b = x.shape[0]

        # critic: maximise D(x, E(x)) - D(G(z), z), with the gradient penalty
        for _ in range(int(p["n_critic"])):
            with torch.no_grad(), self.autocast():
                z_real = self.encoder(x)
                z_fake = self.sample_latents(b)
                x_fake = self.generator(z_fake)
            with self.autocast():
                d_real, _ = self.critic(x, z_real)
                d_fake, _ = self.critic(x_fake, z_fake)
                wasserstein = d_real.float().mean() - d_fake.float().mean()
            gp = self.gradient_penalty(x, z_real, x_fake, z_fake)
            d_loss = -wasserstein + float(p["lambda_gp"]) * gp
            self.step(d_loss, self.optimizers["d"])

        # encoder + generator: minimise the critic's estimate, plus feature
        # matching. Real and generated pairs are unpaired samples, so the L2
        # is between the batch means of f_D (Salimans et al. 2016), not per pair.
        with frozen(self.critic), self.autocast():
            z_real = self.encoder(x)
            z_fake = self.sample_latents(b)
            x_fake = self.generator(z_fake)
            d_real, f_real = self.critic(x, z_real)
            d_fake, f_fake = self.critic(x_fake, z_fake)
            adv = d_real.float().mean() - d_fake.float().mean()
            feat = (f_real.float().mean(0) - f_fake.float().mean(0)).pow(2).mean()
            g_loss = adv + float(p["w_feat"]) * feat
            w_cons = float(p["w_cons"])
            if w_cons > 0:
                x_rec = self.generator(self.encoder(self.training_input(x)) if float(p["synthetic_defects"]) > 0 else z_real)
                z_rec = self.encoder(x_fake)
                cons = (x_rec.float() - x.float()).abs().mean() + (z_rec.float() - z_fake.float()).abs().mean()
                g_loss = g_loss + w_cons * cons
            else:
                cons = torch.zeros((), device=x.device)
            if float(p["w_perceptual"]) > 0:
                rebuilt = x_rec if w_cons > 0 else self.generator(self.encoder(self.training_input(x)))
                g_loss = g_loss + self.perceptual_term(x, rebuilt)
        self.step(g_loss, self.optimizers["ge"])

        return {
            "d_loss": float(d_loss.item()),
            "gp": float(gp.item()),
            "wasserstein": float(wasserstein.item()),
            "g_loss": float(g_loss.item()),
            "feat_loss": float(feat.item()),
            "cons_loss": float(cons.item()),
        }
