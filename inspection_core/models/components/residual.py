"""Anomaly maps and image scores from a reconstruction, shared by the
reconstructing families (GANomaly, Skip-GANomaly, BiGAN).

A reconstruction x_hat of a good part looks like the input; where a defect
is, it does not. How that difference is measured decides what is found:

- ``"pixel"``: channel-mean absolute error (the papers' choice). Dominated by
  fine texture the decoder cannot reproduce, so it dilutes small defects.
- ``"ssim"``: 1 - local structural similarity (Bergmann et al., VISAPP 2019),
  insensitive to small brightness offsets.
- ``"perceptual"``: distance between frozen ImageNet features of x and x_hat
  (LPIPS-style: each feature vector normalised to unit length, squared
  differences summed over channels, averaged over layers), upsampled to the
  input. A blurry but faithful reconstruction is close to its input here;
  a missing or added structure is far.

The image score is the map's top-``top_k`` mean (``score = "map"``), so a
small defect is not averaged away by a whole-image mean, or the paper's own
score (``score = "paper"``). Every map is computed per image, so scores
never depend on the batch.

Crops and sliding windows (``window``, a network size smaller than the
input): the networks are built for ``window`` px, trained on one random
``window``-px crop of each full-size training image per update, and at
inspection reconstruct the full image window by window (half-window stride,
the overlaps blended with weights that fall towards each window's border),
so that the map and the reconstruction have the input's full size and a
small defect is seen at full resolution. The paper's scores are per window,
so a windowed model scores with the map.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from .anomaly_map import gaussian_kernel1d, smooth_map

if TYPE_CHECKING:
    from ...backbones import FeatureExtractor


def window_positions(size: int, window: int) -> list[int]:
    """Window starts along one axis: half-window stride, the last flush with the border."""
    step = max(1, window // 2)
    starts = list(range(0, size - window + 1, step))
    if starts[-1] != size - window:
        starts.append(size - window)
    return starts


def _window_weight(window: int, device: torch.device) -> torch.Tensor:
    """(window, window) blending weights: 1 at the centre, falling linearly to
    0.1 at the border, so that overlapping windows meet without seams."""
    t = torch.linspace(-1.0, 1.0, window, device=device).abs()
    w1 = 1.0 - 0.9 * t
    return w1[:, None] * w1[None, :]


def ssim_map(x: torch.Tensor, y: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    """1 - SSIM per pixel (B, H, W) of images in [-1, 1] (Gaussian window)."""
    a, b = (x.float() + 1) * 0.5, (y.float() + 1) * 0.5
    c = a.shape[1]
    k = gaussian_kernel1d(sigma, a.device)
    r = (k.numel() - 1) // 2
    kx = k.view(1, 1, 1, -1).expand(c, 1, 1, -1)
    ky = k.view(1, 1, -1, 1).expand(c, 1, -1, 1)

    def blur(t: torch.Tensor) -> torch.Tensor:
        t = F.conv2d(F.pad(t, (r, r, 0, 0), mode="reflect"), kx, groups=c)
        return F.conv2d(F.pad(t, (0, 0, r, r), mode="reflect"), ky, groups=c)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return (1.0 - s).clamp_min(0.0).mean(dim=1)


class Residual(nn.Module):
    """The map and score of a reconstruction family (see module docstring).
    Holds the frozen perceptual backbone when one is used (its weights are
    part of the bundle, so an offline station needs nothing else)."""

    def __init__(self, params: dict[str, Any]) -> None:
        super().__init__()
        self.p = params
        self.features: FeatureExtractor | None = None
        if params["perceptual_backbone"]:
            from ...backbones import FeatureExtractor, backbone_spec

            layers = list(params["perceptual_layers"]) or list(backbone_spec(params["perceptual_backbone"]).default_layers)
            params["perceptual_layers"] = layers
            self.features = FeatureExtractor(params["perceptual_backbone"], layers, weights=None)
        self.init_source = "" if self.features is None else "not loaded yet"

    def load_pretrained(self) -> None:
        if self.features is not None:
            w = self.p["perceptual_weights"]
            self.init_source = "random" if w == "random" else self.features.load_pretrained(w)

    def perceptual(self, x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
        """LPIPS-style distance map (B, H, W) between frozen features of x and x_hat."""
        assert self.features is not None
        # one backbone pass over x and x_hat together (frozen, eval-mode BatchNorm: each image on its own)
        both = self.features(torch.cat([x.float(), x_hat.float()]))
        n = x.shape[0]
        fx, fy = {k: v[:n] for k, v in both.items()}, {k: v[n:] for k, v in both.items()}
        out = torch.zeros(x.shape[0], x.shape[-2], x.shape[-1], device=x.device)
        for name in fx:
            a = F.normalize(fx[name].float(), dim=1)
            b = F.normalize(fy[name].float(), dim=1)
            d = (a - b).pow(2).sum(dim=1, keepdim=True)
            out = out + F.interpolate(d, size=x.shape[-2:], mode="bilinear", align_corners=False).squeeze(1)
        return out / max(1, len(fx))

    def perceptual_loss(self, x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
        """Mean perceptual distance, a training loss (gradients reach x_hat only)."""
        return self.perceptual(x, x_hat).mean()

    def anomaly_map(self, x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
        """(B, H, W) at the input size, smoothed with sigma = size / 64 pixels."""
        kind = self.p["residual"]
        sigma = max(1.0, x.shape[-1] / 64)
        if kind == "pixel":
            m = (x.float() - x_hat.float()).abs().mean(dim=1)
        elif kind == "ssim":
            m = ssim_map(x, x_hat)
        elif kind == "perceptual":
            m = self.perceptual(x, x_hat)
        else:  # perceptual+ssim: each in its own unit range, summed
            m = self.perceptual(x, x_hat) + ssim_map(x, x_hat)
        return smooth_map(m, sigma)

    def map_score(self, amap: torch.Tensor) -> torch.Tensor:
        """Mean of the top ``top_k`` share of each map (B,)."""
        flat = amap.flatten(1)
        k = max(1, int(round(flat.shape[1] * float(self.p["top_k"]))))
        return flat.topk(k, dim=1).values.mean(dim=1)

    def score(self, amap: torch.Tensor, paper: torch.Tensor | None) -> torch.Tensor:
        if self.p["score"] == "map":
            return self.map_score(amap)
        if paper is None:
            raise ValueError("the paper score was not computed")
        return paper.float()


class ResidualScoring:
    """Mixin for a reconstructing Detector: its map, score, perceptual loss
    and perceptual start weights come from one :class:`Residual`."""

    residual: Residual
    params: dict[str, Any]
    #: the perceptual backbone stays fp32 on a bf16 scoring path: measured on
    #: magnetic_tile GANomaly, a bf16 backbone changed 11 of 452 verdicts at the
    #: Youden threshold (worst score 2.1 %), an fp32 one none (worst 0.33 %)
    fp32_on_fast_path: ClassVar[tuple[str, ...]] = ("residual",)
    #: bf16 training by default on CPUs whose bf16 is fast: it keeps these
    #: families' quality (fp32 and bf16 training compared with
    #: benchmarks/quality.py in docs/performance.md)
    bf16_training = True

    def init_residual(self) -> None:
        self.residual = Residual(self.params)

    def setup_training(self, info: Any) -> None:
        self.residual.load_pretrained()

    def training_record(self) -> dict[str, Any]:
        return {"perceptual_init": self.residual.init_source} if self.residual.features is not None else {}

    @property
    def uses_paper_score(self) -> bool:
        """Whether the image score is the paper's (else the map's: the paper
        score's extra passes, a second encoder or the critic, are skipped)."""
        return self.params["score"] == "paper"

    def reconstruction_output(self, x: torch.Tensor, x_hat: torch.Tensor, paper_score: torch.Tensor | None) -> Any:
        from ..base import ScoreOutput

        amap = self.residual.anomaly_map(x, x_hat)
        return ScoreOutput(scores=self.residual.score(amap, paper_score), anomaly_map=amap, reconstruction=x_hat.float())

    @property
    def window(self) -> int:
        """The network's input size when it slides over a larger image, else 0."""
        return int(self.params.get("window", 0) or 0)

    def training_view(self, x: torch.Tensor) -> torch.Tensor:
        """What a training step sees of a batch: one random ``window``-px
        crop of each image (its own position per image) for a windowed
        model, else ``x`` itself."""
        w = self.window
        h, wd = x.shape[-2], x.shape[-1]
        if not w or (h <= w and wd <= w):
            return x
        b = x.shape[0]
        ys = torch.randint(0, h - w + 1, (b,)).tolist()
        xs = torch.randint(0, wd - w + 1, (b,)).tolist()
        return torch.stack([x[i, :, r : r + w, c : c + w] for i, (r, c) in enumerate(zip(ys, xs))])

    def windowed(self, x: torch.Tensor, reconstruct: Any) -> torch.Tensor:
        """``reconstruct`` (windows -> reconstructed windows) applied to the
        full image window by window and blended back to the input's size;
        ``reconstruct(x)`` itself when the model is not windowed."""
        w = self.window
        h, wd = x.shape[-2], x.shape[-1]
        if not w or (h == w and wd == w):
            return reconstruct(x)
        pos = [(r, c) for r in window_positions(h, w) for c in window_positions(wd, w)]
        b, ch = x.shape[0], x.shape[1]
        crops = torch.stack([x[:, :, r : r + w, c : c + w] for r, c in pos], dim=1).reshape(b * len(pos), ch, w, w)
        rec = reconstruct(crops).float().reshape(b, len(pos), ch, w, w)
        weight = _window_weight(w, x.device)
        out = torch.zeros(b, ch, h, wd, device=x.device)
        total = torch.zeros(h, wd, device=x.device)
        for i, (r, c) in enumerate(pos):
            out[:, :, r : r + w, c : c + w] += rec[:, i] * weight
            total[r : r + w, c : c + w] += weight
        return out / total

    def training_input(self, x: torch.Tensor) -> torch.Tensor:
        """The generator's input in a training step: ``x`` with synthetic
        defects pasted into a ``synthetic_defects`` share of the batch (the
        losses still compare with the clean ``x``), see :mod:`.synthetic`."""
        from .synthetic import paste_defects

        return paste_defects(x, float(self.params["synthetic_defects"]))

    def perceptual_term(self, x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
        """``w_perceptual`` x the perceptual distance of x_hat to x (0 when off)."""
        w = float(self.params["w_perceptual"])
        if w <= 0:
            return torch.zeros((), device=x.device)
        return w * self.residual.perceptual_loss(x, x_hat.float())
