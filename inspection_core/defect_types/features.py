"""The features a defect type is told from: backbone descriptors pooled over
the heat map's hottest region.

The region is the part of the map above half-way between its median and its
maximum (the spot the verdict came from, whatever its size); the features
are the descriptors' heat-weighted mean there, their maximum there, their
mean over the whole image (what the part looks like around the spot) and
the region's share of the image (log): a scratch is long and thin, a
contamination a blob, an uneven surface large.

The descriptors are the detector's own where it has them (PatchCore's patch
descriptors, ``embed``), else those of a pretrained backbone of
:mod:`inspection_core.backbones` (the other families: their features are
trained for reconstruction, not for telling defects apart).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable

import numpy as np
import torch
from torch.nn import functional as F

from ..backbones import FeatureExtractor
from ..data.preprocess import to_tensor

#: the backbone and layers used for a family without descriptors of its own
DEFAULT_BACKBONE = "mobilenet_v2"
DEFAULT_LAYERS = ("features.3", "features.6", "features.10", "features.13")
#: the descriptors' grid step in input pixels (PatchCore's default)
GRID_STRIDE = 8

Embed = Callable[[torch.Tensor], torch.Tensor]


def feature_spec(model: torch.nn.Module, backbone: str = DEFAULT_BACKBONE, weights: str = "imagenet") -> dict[str, Any]:
    """Where a bundle's type features come from: the model's own descriptors
    when it has them, else a pretrained backbone (recorded in the manifest)."""
    if callable(getattr(model, "embed", None)):
        return {"source": "model"}
    return {"source": "backbone", "backbone": backbone, "layers": list(DEFAULT_LAYERS), "weights": weights}


def _on_grid(feats: Mapping[str, torch.Tensor], layers: list[str], size: tuple[int, int]) -> torch.Tensor:
    parts = []
    for name in layers:
        f = feats[name].float()
        f = F.avg_pool2d(f, 3, stride=1, padding=1)
        f = F.adaptive_avg_pool2d(f, size) if f.shape[-1] > size[-1] or f.shape[-2] > size[-2] else f
        if f.shape[-2:] != size:
            f = F.interpolate(f, size=size, mode="bilinear", align_corners=False)
        parts.append(f)
    return torch.cat(parts, dim=1)


def build_embed(model: torch.nn.Module, spec: Mapping[str, Any], device: torch.device | str = "cpu") -> Embed:
    """The descriptor function ``spec`` names: (B, C, H, W) in [-1, 1] -> (B, D, h, w)."""
    if spec.get("source") == "model":
        embed = getattr(model, "embed", None)
        if not callable(embed):
            raise ValueError("the bundle's defect-type features come from its model, which has no descriptors")
        keep = getattr(model, "appearance_dim", None)

        def own(x: torch.Tensor) -> torch.Tensor:
            e = embed(x)
            return e[:, :keep] if isinstance(keep, int) else e
        return own
    layers = [str(x) for x in spec.get("layers") or DEFAULT_LAYERS]
    extractor = FeatureExtractor(str(spec.get("backbone") or DEFAULT_BACKBONE), layers,
                                 weights=str(spec.get("weights") or "imagenet")).to(device)
    order = extractor.layers

    def backbone(x: torch.Tensor) -> torch.Tensor:
        size = (max(1, -(-x.shape[-2] // GRID_STRIDE)), max(1, -(-x.shape[-1] // GRID_STRIDE)))
        return _on_grid(extractor(x), order, size)
    return backbone


def pool_region(desc: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """(B, D, h, w) descriptors and (B, H, W) anomaly maps -> (B, 3 D + 1)
    region features (see the module docstring)."""
    b, d, h, w = desc.shape
    m = F.adaptive_avg_pool2d(maps.float().unsqueeze(1), (h, w)).reshape(b, h * w)
    flat = desc.float().reshape(b, d, h * w)
    med = m.median(dim=1, keepdim=True).values
    top = m.max(dim=1, keepdim=True).values
    cut = med + 0.5 * (top - med)
    hot = m >= cut
    weight = (m - med).clamp(min=0) * hot
    weight = torch.where(weight.sum(1, keepdim=True) > 0, weight, hot.float())
    mean_hot = (flat * weight.unsqueeze(1)).sum(2) / weight.sum(1, keepdim=True).clamp(min=1e-12)
    max_hot = flat.masked_fill(~hot.unsqueeze(1), float("-inf")).max(dim=2).values
    area = torch.log(hot.float().mean(1, keepdim=True).clamp(min=1.0 / (h * w)))
    return torch.cat([mean_hot, max_hot, flat.mean(2), area], dim=1)


@torch.inference_mode()
def region_features(embed: Embed, prepared: np.ndarray, maps: np.ndarray, device: torch.device | str = "cpu",
                    batch_size: int = 16) -> np.ndarray:
    """Region features (N, F) of prepared uint8 images (N, S, S, C) and their anomaly maps (N, S, S)."""
    out = []
    for i in range(0, len(prepared), batch_size):
        x = to_tensor(prepared[i:i + batch_size]).to(device)
        with torch.autocast(x.device.type, enabled=False):
            desc = embed(x.float())
        out.append(pool_region(desc, torch.as_tensor(np.asarray(maps[i:i + batch_size]), device=desc.device))
                   .cpu().numpy().astype(np.float64))
    return np.concatenate(out) if out else np.zeros((0, 0))


__all__ = ["DEFAULT_BACKBONE", "DEFAULT_LAYERS", "build_embed", "feature_spec", "pool_region", "region_features"]
