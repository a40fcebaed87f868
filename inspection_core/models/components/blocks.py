"""Shared DCGAN building blocks (Radford et al., ICLR 2016) for the GAN
detectors: a strided-conv encoder, its transposed-conv mirror, and a
discriminator that exposes its last feature map.

All blocks work on square images of 32, 64, 128 or 256 px and on
``channels_last`` inputs (no ``.view`` on possibly non-contiguous tensors).
Channel widths double per level and are capped at ``8 * width`` so that
256 px models stay small.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, cast

import torch
from torch import nn
from torch.nn import functional as F

from .gan_params import pyramid_widths


def weights_init(m: nn.Module) -> None:
    """DCGAN initialisation (N(0, 0.02) convs, N(1, 0.02) BatchNorm). Not on
    torch's "meta" device, where a bundle's shapes are checked before it is
    built (``Bundle._check_on_meta``): there, drawing random numbers runs
    torch's Python reference kernels, whose first use imports torch._dynamo
    (1.8 s of every start with a GAN bundle, measured), for values that
    never exist."""
    weight = getattr(m, "weight", None)
    if isinstance(weight, torch.Tensor) and weight.is_meta:
        return
    cls = m.__class__.__name__
    if cls.find("Conv") != -1 and hasattr(m, "weight") and m.weight is not None:
        nn.init.normal_(cast(torch.Tensor, m.weight), 0.0, 0.02)
    elif cls.find("BatchNorm") != -1:
        nn.init.normal_(cast(torch.Tensor, m.weight), 1.0, 0.02)
        nn.init.zeros_(cast(torch.Tensor, m.bias))


class Encoder(nn.Module):
    """DCGAN encoder: (B, C, S, S) -> (B, out_channels, 1, 1).

    Conv 4x4 stride 2 down to 4x4 (BatchNorm + LeakyReLU(0.2), no BatchNorm
    on the first level as in DCGAN), then a 4x4 valid conv to 1x1.
    ``forward_features`` returns the 4x4 map before that last conv.
    """

    def __init__(self, image_size: int, in_channels: int, out_channels: int, width: int) -> None:
        super().__init__()
        widths = pyramid_widths(image_size, width)
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, widths[0], 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [
                nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(widths[-1], out_channels, 4, 1, 0, bias=False)
        self.feature_channels = widths[-1]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class Decoder(nn.Module):
    """Mirror of :class:`Encoder`: (B, in_channels, 1, 1) -> (B, C, S, S) in [-1, 1].

    Transposed conv 4x4 to 4x4, then transposed convs stride 2 up to S
    (BatchNorm + ReLU), Tanh output.
    """

    def __init__(self, image_size: int, in_channels: int, out_channels: int, width: int) -> None:
        super().__init__()
        widths = pyramid_widths(image_size, width)[::-1]
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(in_channels, widths[0], 4, 1, 0, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        ]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [
                nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]
        layers += [nn.ConvTranspose2d(widths[-1], out_channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z)


class Discriminator(nn.Module):
    """DCGAN encoder-classifier. ``forward`` returns ``(logits (B,), features
    (B, F, 4, 4))``; the features feed the feature-matching / latent losses.

    The classifier outputs logits rather than sigmoid probabilities: the BCE
    is computed with ``binary_cross_entropy_with_logits``, which is the same
    loss but numerically stable and safe under autocast.
    """

    def __init__(self, image_size: int, in_channels: int, width: int) -> None:
        super().__init__()
        self.encoder = Encoder(image_size, in_channels, 1, width)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.encoder.forward_features(x)
        logits = self.encoder.head(feats).flatten()
        return logits, feats


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """BCE real -> 1, fake -> 0, averaged over the two halves (as GANomaly)."""
    real = F.binary_cross_entropy_with_logits(real_logits.float(), torch.ones_like(real_logits, dtype=torch.float32))
    fake = F.binary_cross_entropy_with_logits(fake_logits.float(), torch.zeros_like(fake_logits, dtype=torch.float32))
    return 0.5 * (real + fake)


#: a discriminator loss below this means D has collapsed (GANomaly's rule)
D_COLLAPSE_LOSS = 1e-5


def reinit_if_collapsed(
    netd: nn.Module, d_loss: float, optimizer: torch.optim.Optimizer | None = None
) -> bool:
    """Re-initialise ``netd`` (DCGAN init) when its loss has collapsed to
    ~0, which leaves the generator without a useful gradient. Also drops the
    optimiser's moment estimates, which belong to the collapsed weights.
    Returns whether it re-initialised."""
    if d_loss >= D_COLLAPSE_LOSS:
        return False
    netd.apply(weights_init)
    if optimizer is not None:
        optimizer.state.clear()
    return True


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Temporarily stop gradients into ``module``'s parameters (used for the
    generator update, so that it does not compute unused D gradients)."""
    flags = [p.requires_grad for p in module.parameters()]
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, f in zip(module.parameters(), flags):
            p.requires_grad_(f)


def per_image_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared difference per batch item -> (B,) float32."""
    return (a.float() - b.float()).pow(2).flatten(1).mean(dim=1)
