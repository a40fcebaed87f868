"""PatchCore's global texture term (see ``model.py``'s docstring): each
image's texture statistics against a Gaussian of the good training images',
as a Mahalanobis distance in units of held-out good images' distances,
scaled by the spread of good images' patch scores."""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch
from torch.nn import functional as F

from ..components.nearest import nearest_distances

#: training images scored leave-one-out for the spread of good images' scores
_LOO_IMAGES = 32
#: fewest training images for the global texture term (else it stays off)
_GLOBAL_MIN_IMAGES = 10
_GLOBAL_FOLDS = 5
#: the layout statistics' channels at most (consecutive channels averaged in
#: groups beyond it): mobilenet_v2's 216 stay as they are; wide_resnet50_2's
#: 1,536 on 4 cells would otherwise need a 7,680 x 7,680 precision matrix
_LAYOUT_CHANNELS = 256


def _gaussian(x: np.ndarray, estimator: Callable[..., Any]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and precision of the rows of ``x`` (a shrunk covariance)."""
    mean = x.mean(0)
    cov, _ = estimator(x - mean, assume_centered=True)
    return mean, np.linalg.pinv(cov, hermitian=True)


class TextureTerm:
    """The global texture term of a PatchCore model (a mixin: it reads the
    model's ``params``, ``memory_bank``, ``appearance_dim`` and its
    ``global_mean``, ``global_precision`` and ``global_norm`` buffers)."""

    params: dict[str, Any]
    memory_bank: torch.Tensor
    appearance_dim: int
    layout_dim: int
    global_mean: torch.Tensor
    global_precision: torch.Tensor
    global_norm: torch.Tensor
    _fit_stats: list[torch.Tensor]
    _fit_stats_src: list[torch.Tensor]
    _loo: list[tuple[int, torch.Tensor]]
    _fit_image_size: int
    _grid: Callable[[int, int], tuple[int, int]]  # the model's
    _map_and_score: Callable[..., tuple[torch.Tensor, torch.Tensor | None]]  # the model's

    # ---------------------------------------------------- global texture term
    def size_texture_stats(self, grid: int) -> None:
        """The global term's Gaussian (all zero: off) sized for the
        statistics of :meth:`texture_stats` on ``grid`` x ``grid`` cells and
        the current ``appearance_dim``."""
        self.layout_dim = min(self.appearance_dim, _LAYOUT_CHANNELS)
        n = self.appearance_dim + self.layout_dim * grid * grid
        dev = self.global_mean.device
        self.global_mean = torch.zeros(n, device=dev)
        self.global_precision = torch.zeros(n, n, device=dev)

    def texture_stats(self, emb: torch.Tensor) -> torch.Tensor:
        """(B, D, h, w) descriptors -> (B, D + L g^2): each backbone
        channel's standard deviation over the image (as a norm of the centred
        values: torch's std over the last axis took 0.4 ms for one 224 px
        image here), then (``global_grid`` = g > 0) its mean in each cell of
        a g x g grid less its mean over the cells, cell by cell, on L =
        min(D, ``_LAYOUT_CHANNELS``) channels (groups of consecutive channels
        averaged where D is larger); the position channels are the same for
        every image and left out."""
        a = emb[:, : self.appearance_dim].float()
        x = a.flatten(2)
        c = x - x.mean(dim=2, keepdim=True)
        spread = torch.linalg.vector_norm(c, dim=2) / math.sqrt(max(1, x.shape[2] - 1))
        g = int(self.params["global_grid"])
        if g == 0:
            return spread
        cells = F.adaptive_avg_pool2d(a, (g, g)).flatten(2)          # (B, D, g*g)
        if self.layout_dim < cells.shape[1]:
            cells = F.adaptive_avg_pool1d(cells.transpose(1, 2), self.layout_dim).transpose(1, 2)
        layout = (cells - cells.mean(dim=2, keepdim=True)).transpose(1, 2)
        return torch.cat([spread, layout.flatten(1)], 1)

    @property
    def global_active(self) -> bool:
        return float(self.params["global_weight"]) > 0 and float(self.global_norm[2]) > 0

    def global_distance(self, stats: torch.Tensor) -> torch.Tensor:
        """Mahalanobis distance of texture statistics (B, D) to the training
        images' Gaussian."""
        c = stats.float() - self.global_mean
        return ((c @ self.global_precision) * c).sum(1).clamp_min(0.0).sqrt()

    def global_term(self, emb: torch.Tensor) -> torch.Tensor:
        """What the global texture adds to the image score: (d - mean) / std
        of held-out good images' distances, where positive, times the good
        images' patch-score spread and ``global_weight``."""
        mu, sd, score_sd = (float(v) for v in self.global_norm)
        z = (self.global_distance(self.texture_stats(emb)) - mu) / sd
        return float(self.params["global_weight"]) * score_sd * z.clamp_min(0.0)

    def _fit_global(self, bank_src: torch.Tensor) -> dict[str, Any]:
        """The global texture term's Gaussian and its two scales (see the
        module docstring); off, with the reason, where they cannot be
        measured."""
        from sklearn.covariance import ledoit_wolf

        self.global_norm.zero_()
        weight = float(self.params["global_weight"])
        stats = torch.cat(self._fit_stats).double().numpy() if self._fit_stats else None
        src = torch.cat(self._fit_stats_src).numpy() if self._fit_stats_src else None
        if weight <= 0:
            return {"weight": 0.0}
        if self.params["score"] == "reweighted":
            return {"weight": weight, "off": "not used with the re-weighted score"}
        n = 0 if src is None else int(src[:, 1].sum())
        if stats is None or src is None or n < _GLOBAL_MIN_IMAGES:
            return {"weight": weight, "off": f"fewer than {_GLOBAL_MIN_IMAGES} training images"}
        # held-out distances of the images themselves: each fold of images
        # (with all their exposures) against the Gaussian of the others
        folds = src[:, 0] % _GLOBAL_FOLDS
        own = src[:, 1] == 1
        held_parts: list[np.ndarray] = []
        for f in range(_GLOBAL_FOLDS):
            inside, out = folds != f, (folds == f) & own
            if not out.any():
                continue
            mean, prec = _gaussian(stats[inside], ledoit_wolf)
            c = stats[out] - mean
            held_parts.append(np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", c, prec, c), 0.0)))
        held = np.concatenate(held_parts)
        mean, prec = _gaussian(stats, ledoit_wolf)
        # the patch score of good images: training images against the bank
        # without their own patches (their other exposures included)
        loo = []
        bank = self.memory_bank.float().cpu()
        bank_sq = (bank * bank).sum(1)
        gh, gw = self._grid(self._fit_image_size, self._fit_image_size)
        size = (self._fit_image_size, self._fit_image_size)
        for i, patches in self._loo:
            others = bank_src != i
            if not others.any():
                continue
            dd, _ = nearest_distances(patches.float(), bank[others], bank_sq[others])
            _, sc = self._map_and_score(dd[:, 0].view(1, gh, gw), size)
            assert sc is not None  # the local score: the re-weighted one returned above
            loo.append(float(sc[0]))
        score_sd, held_sd = float(np.std(loo)) if len(loo) >= 4 else 0.0, float(held.std())
        if score_sd <= 0 or held_sd <= 0:
            return {"weight": weight, "off": "the spread of good images' scores could not be measured"}
        dev = self.global_mean.device
        self.global_mean.copy_(torch.as_tensor(mean, dtype=torch.float32, device=dev))
        self.global_precision.copy_(torch.as_tensor(prec, dtype=torch.float32, device=dev))
        self.global_norm.copy_(torch.tensor([held.mean(), held_sd, score_sd], dtype=torch.float32, device=dev))
        return {"weight": weight, "images": int(n), "held_out_distance": [round(float(held.mean()), 4), round(held_sd, 4)],
                "loo_images": len(loo), "loo_score": [round(float(np.mean(loo)), 5), round(score_sd, 5)]}
