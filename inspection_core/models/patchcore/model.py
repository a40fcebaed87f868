"""PatchCore: towards total recall in industrial anomaly detection
(Roth, Pemula, Zepeda, Schölkopf, Brox and Gehler, CVPR 2022).

No training in the gradient sense: the good training images pass once
through a frozen ImageNet backbone; feature maps of several layers, each
averaged over its 3x3 neighbourhood (zero-padded, as the paper's reference
code) and brought to one patch grid (``grid_stride`` pixels: finer layers
are average-pooled down, coarser ones upsampled), give one descriptor per
image patch. A memory bank keeps a greedy (k-center) coreset of those
descriptors, chosen on a random projection so that the selection is fast;
it can also hold the descriptors of the training images at other exposures
(``bank_augment``), so that a brighter or darker good part is not taken for
a defect. A test patch's anomaly is the distance to its nearest neighbour
in the bank; the anomaly map is the patch grid upsampled to the input and
smoothed, and the image score is its maximum (or the largest raw patch
distance, or the paper's re-weighted score, eq. 7).

The patch distances are local: a tile ground with another finish, or a
crack that changes the texture over a larger area, can leave every patch
close to some good patch. The image score therefore adds a global texture
term (``global_weight``): each image's texture statistics (the standard
deviation of every descriptor channel over the image, and, with
``global_grid`` = g > 0, each channel's mean in each cell of a g x g grid
relative to its mean over the cells: the part's coarse layout, where one
half of a tile ground to another finish shows) against a Gaussian of
the training images' at every exposure the bank holds (Ledoit-Wolf
shrinkage), as a Mahalanobis distance in standard deviations of held-out
good images (5 folds of images, each with its exposures), scaled by the spread
of the patch score of good images (leave-one-out on training images: the
bank without the image's own patches) and only where it exceeds the typical
good image, so that it can raise a score and never hide a local defect.

For fixtured parts, each descriptor can also carry the patch's position
(``position_weight``): a feature that good parts have elsewhere, but not
there, then stands out.

Every image is scored on its own (frozen BatchNorm, per-image nearest
neighbours), so scores do not depend on the batch. The memory bank is a
buffer whose size comes from the bundle's state dict.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch.nn import functional as F

from ...backbones import FeatureExtractor, backbone_spec
from ...config import ModelConfig
from ..base import Detector, FitInfo, ScoreOutput
from ..components.anomaly_map import upsample_map
from ..components.coreset import greedy_coreset, local_coresets
from ..components.nearest import CandidateSearch, ExactSearch, NeighbourSearch
from . import FAMILY
from .migration import BankStateDict
from .params import DEFAULT_LAYERS
from .texture import _LOO_IMAGES, TextureTerm

#: extra exposures of the training images in the bank (mirror images: flips)
_GAINS = {"bright": 1.25, "dark": 0.8, "brighter": 1.5, "darker": 0.67}


def _bank_view(x: torch.Tensor, kind: str) -> torch.Tensor:
    """A training batch (in [-1, 1]) at another exposure, or mirrored."""
    if kind in _GAINS:
        return ((x + 1.0) * _GAINS[kind] - 1.0).clamp(-1.0, 1.0)
    return x.flip(-1) if kind == "hflip" else x.flip(-2)


def position_channels(batch: int, size: tuple[int, int], weight: float, device: torch.device | str) -> torch.Tensor:
    """(B, 2, h, w): each patch's row and column on the grid, from 0 to
    ``weight`` (the same for every image)."""
    h, w = size
    rows = torch.linspace(0.0, weight, h, device=device) if h > 1 else torch.zeros(1, device=device)
    cols = torch.linspace(0.0, weight, w, device=device) if w > 1 else torch.zeros(1, device=device)
    grid = torch.stack(torch.meshgrid(rows, cols, indexing="ij"))
    return grid.unsqueeze(0).expand(batch, 2, h, w)


class PatchCore(BankStateDict, TextureTerm, Detector):
    """PatchCore detector. Params: ``backbone`` (one of
    :data:`inspection_core.backbones.BACKBONES`), ``layers`` (feature layers;
    the backbone's defaults when empty), ``weights`` ("imagenet", a local
    weights file, or "random" for tests), ``neighbourhood`` (patch
    aggregation size), ``grid_stride`` (patch grid in input pixels),
    ``coreset_ratio`` (share of training patches kept), ``max_bank`` (cap on
    the memory bank), ``projection_dim`` (random projection used to choose
    the coreset), ``local_keep`` (share of each image's patches that reach
    the global coreset, chosen within the image first), ``bank_augment`` (extra exposures of each training image in
    the bank: "bright" x1.25, "dark" x0.8, "brighter" x1.5, "darker" x0.67,
    and mirror images "hflip", "vflip"), ``score`` ("map_max", "patch_max" or "reweighted"),
    ``neighbours`` (the re-weighting's neighbourhood size b), ``map_sigma``
    (Gaussian smoothing of the map, pixels at 224 px), ``global_weight``
    (weight of the global texture term in the image score, 0: off; with the
    "map_max" and "patch_max" scores), ``global_grid`` (the term's layout
    statistics on a g x g grid of cells, 0: the channel spreads only, as in
    bundles made before it), ``position_weight`` (0: off; > 0 appends
    each patch's row and column on the grid, from 0 to this value, to its
    descriptor, so that a good patch only matches good patches near the same
    place: for fixtured parts, where a hole or an edge in the wrong place is
    a defect; in the descriptors' units, about 3 for mobilenet_v2), ``fit_memory_mb``
    (budget for the patches held while fitting)."""

    family = FAMILY
    fit_mode = "one_pass"
    #: on the bf16 path the backbone stays fp32 (bf16 features moved 1 % of
    #: magnetic_tile's verdicts) and bf16 only finds the nearest-neighbour
    #: candidates, re-measured in fp32 (``components.nearest.CandidateSearch``)
    fp32_on_fast_path = ("features",)
    #: 224 px images in chunks of 5 (4-5 measured fastest per image)
    cpu_chunk_pixels = 1 << 18

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        p = self.params
        spec = backbone_spec(p["backbone"])
        if not p["layers"]:
            p["layers"] = list(DEFAULT_LAYERS.get(p["backbone"], spec.default_layers))
        p["layers"] = list(p["layers"])
        p["bank_augment"] = list(p["bank_augment"])
        # weights are loaded by setup_training (never here), so that a bundle
        # is rebuilt offline from its own state dict
        self.features = FeatureExtractor(p["backbone"], p["layers"], weights=None)
        #: the backbone's channels (the texture statistics), then the patch's
        #: position on the grid where position_weight > 0
        self.appearance_dim = sum(self.features.channels[name] for name in self.features.layers)
        self.feature_dim = self.appearance_dim + (2 if float(p["position_weight"]) > 0 else 0)
        self.register_buffer("memory_bank", torch.zeros(0, self.feature_dim))
        self.register_buffer("_bank_sq", torch.zeros(0), persistent=False)
        # the global texture term (all zero: off, as in bundles made before it)
        self.register_buffer("global_mean", torch.zeros(0))
        self.register_buffer("global_precision", torch.zeros(0, 0))
        self.size_texture_stats(int(p["global_grid"]))
        self.register_buffer("global_norm", torch.zeros(3))  # mean and std of held-out distances, patch-score std
        #: the search prepared for the bank (and autocast dtype) it was made for: (key, search)
        self._search: tuple[tuple[Any, ...], NeighbourSearch] | None = None
        self._fit_parts: list[torch.Tensor] = []
        self._fit_keep = 1.0
        self._fit_gen = torch.Generator().manual_seed(0)
        self.init_source = "not loaded yet"

    # -------------------------------------------------------------- features
    def _grid(self, h: int, w: int) -> tuple[int, int]:
        s = int(self.params["grid_stride"])
        return max(1, math.ceil(h / s)), max(1, math.ceil(w / s))

    def layer_on_grid(self, f: torch.Tensor, size: tuple[int, int],
                      pool: Callable[..., torch.Tensor] = F.adaptive_avg_pool2d) -> torch.Tensor:
        """One layer's feature map averaged over its ``neighbourhood`` and
        brought to the patch grid (finer maps pooled down, coarser ones
        upsampled)."""
        f = f.float()
        k = int(self.params["neighbourhood"])
        if k > 1:
            f = F.avg_pool2d(f, k, stride=1, padding=k // 2)
        if f.shape[-1] > size[-1] or f.shape[-2] > size[-2]:
            f = pool(f, size)
        if f.shape[-2:] != size:
            f = F.interpolate(f, size=size, mode="bilinear", align_corners=False)
        return f

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Patch descriptors (B, D, h, w) on the ``grid_stride`` grid: the
        layers' channels, then (``position_weight`` > 0) the patch's row and
        column on the grid, each from 0 to ``position_weight``."""
        feats = self.features(x)
        size = self._grid(x.shape[-2], x.shape[-1])
        parts = [self.layer_on_grid(feats[name], size) for name in self.features.layers]
        w = float(self.params["position_weight"])
        if w > 0:
            parts.append(position_channels(x.shape[0], size, w, x.device))
        return torch.cat(parts, dim=1)

    # -------------------------------------------------------------- inference
    def _bank_norms(self) -> torch.Tensor:
        if self._bank_sq.numel() != self.memory_bank.shape[0]:
            self._bank_sq = (self.memory_bank.float() ** 2).sum(1)
        return self._bank_sq

    def _searcher(self, device_type: str) -> NeighbourSearch:
        """Exact fp32 search, or, when a low-precision scoring path runs this
        model, low-precision candidates re-measured in fp32. Either is prepared
        once (the exact search's blocks, the candidates' bank in the autocast
        dtype) and kept until the bank (its storage, version or shape) or the
        dtype changes."""
        low = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None
        bank = self.memory_bank
        try:
            version = bank._version
        except RuntimeError:  # a tensor made in inference mode has no version counter
            version = -1
        key = (low, bank.data_ptr(), version, tuple(bank.shape), str(bank.device))
        if self._search is None or self._search[0] != key:
            self._search = (key, ExactSearch(bank) if low is None else CandidateSearch(bank, low))
        return self._search[1]

    def forward(self, x: torch.Tensor) -> ScoreOutput:
        if self.memory_bank.shape[0] == 0:
            raise RuntimeError("patchcore: the memory bank is empty (the model was not fitted)")
        # a low-precision path only finds nearest-neighbour candidates (see
        # fp32_on_fast_path); features, distances, map and score stay fp32
        search = self._searcher(x.device.type)
        with torch.autocast(x.device.type, enabled=False):
            return self._score(x.float(), search)

    def _score(self, x: torch.Tensor, search: NeighbourSearch) -> ScoreOutput:
        emb = self.embed(x)
        b, d, h, w = emb.shape
        patches = emb.permute(0, 2, 3, 1).reshape(b, h * w, d)
        dist = torch.empty(b, h * w, device=x.device)
        nn_idx = torch.empty(b, h * w, dtype=torch.long, device=x.device)
        for i in range(b):  # per image: scores never depend on the batch
            dd, ii = search.search(patches[i])
            dist[i], nn_idx[i] = dd[:, 0], ii[:, 0]
        amap, scores = self._map_and_score(dist.view(b, h, w), x.shape[-2:])
        texture = None
        if scores is None:
            arg = dist.argmax(dim=1)
            scores = self._reweight(patches, dist, nn_idx, arg)
        elif self.global_active:
            texture = self.global_term(emb).float()
            scores = scores + texture
        return ScoreOutput(scores=scores.float(), anomaly_map=amap.float(), reconstruction=None, texture=texture)

    def _map_and_score(self, dist: torch.Tensor, size: tuple[int, int] | torch.Size
                       ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Patch distances (B, h, w) -> the anomaly map (B, H, W) and the
        local image score (None for the re-weighted score, which needs the
        bank neighbours)."""
        b = dist.shape[0]
        amap = upsample_map(dist, size, float(self.params["map_sigma"]) * size[-1] / 224.0)
        kind = self.params["score"]
        if kind == "map_max":
            return amap, amap.flatten(1).max(dim=1).values
        if kind == "patch_max":
            return amap, dist.reshape(b, -1).max(dim=1).values
        return amap, None

    def _reweight(self, patches: torch.Tensor, dist: torch.Tensor, nn_idx: torch.Tensor, arg: torch.Tensor) -> torch.Tensor:
        """Eq. 7 of the paper: s = (1 - softmax weight of the nearest bank
        patch m* among its b neighbours in the bank, seen from the test patch)
        x s*. A test patch close to a rare, isolated bank patch scores higher."""
        b = patches.shape[0]
        rows = torch.arange(b, device=patches.device)
        test_patch = patches[rows, arg]                        # (B, D)
        m_star = self.memory_bank[nn_idx[rows, arg]]           # (B, D)
        s_star = dist[rows, arg]                               # (B,)
        _, neigh = ExactSearch(self.memory_bank, self._bank_norms()).search(m_star, k=int(self.params["neighbours"]))
        neigh_feats = self.memory_bank[neigh]                  # (B, b, D)
        d_test = torch.linalg.vector_norm(neigh_feats - test_patch.unsqueeze(1), dim=2)  # (B, b)
        weight = 1.0 - torch.softmax(-d_test, dim=1)[:, 0]
        return weight * s_star

    # ---------------------------------------------------------------- fitting
    def setup_training(self, info: FitInfo) -> None:
        weights = self.params["weights"]
        self.init_source = "random" if weights == "random" else self.features.load_pretrained(weights)
        self._fit_parts = []
        self._fit_gen = torch.Generator().manual_seed(int(info.seed))
        # patches held while fitting: at most fit_memory_mb of fp32 descriptors
        gh, gw = self._grid(info.image_size, info.image_size)
        budget = int(self.params["fit_memory_mb"]) * 2**20 // (4 * self.feature_dim)
        total = max(1, info.n_train) * (1 + len(self.params["bank_augment"])) * gh * gw * float(self.params["local_keep"])
        self._fit_keep = min(1.0, budget / total)
        pdim = int(self.params["projection_dim"])
        d = self.feature_dim
        self._projection = (torch.randn(d, pdim, generator=self._fit_gen) / math.sqrt(pdim)) if pdim < d else None
        self._fit_reduced: list[torch.Tensor] = []
        # for the global texture term: every training image's texture
        # statistics, which image each candidate patch came from, and all
        # patches of a few images spread over the set (leave-one-out scores)
        self._fit_image_size = int(info.image_size)
        self._fit_count = 0
        self._fit_src: list[torch.Tensor] = []
        self._fit_stats: list[torch.Tensor] = []
        self._fit_stats_src: list[torch.Tensor] = []  # (image index, 1 for the image itself / 0 for a view)
        n = max(1, info.n_train)
        self._loo_pick = {int(round(i * (n - 1) / max(1, _LOO_IMAGES - 1))) for i in range(min(n, _LOO_IMAGES))}
        self._loo: list[tuple[int, torch.Tensor]] = []

    def _reduce(self, feats: torch.Tensor) -> torch.Tensor:
        return feats if self._projection is None else feats @ self._projection

    def fit_batch(self, x: torch.Tensor) -> None:
        first = self._fit_count
        self._fit_count += x.shape[0]
        for v, view in enumerate([x, *(_bank_view(x, a) for a in self.params["bank_augment"])]):
            with torch.inference_mode():
                emb = self.embed(view)
            b, d = emb.shape[0], emb.shape[1]
            patches = emb.permute(0, 2, 3, 1).reshape(b, -1, d).cpu()
            # the Gaussian holds every exposure of each training image (as the bank does)
            self._fit_stats.append(self.texture_stats(emb).cpu())
            self._fit_stats_src.append(torch.stack([torch.arange(first, first + b), torch.full((b,), int(v == 0))], 1))
            if v == 0:
                self._loo.extend((first + i, patches[i].clone()) for i in range(b) if first + i in self._loo_pick)
            reduced = self._reduce(patches)
            keep = max(1, int(round(patches.shape[1] * float(self.params["local_keep"]))))
            idx = local_coresets(reduced, keep)                       # (B, keep)
            rows = torch.arange(b).unsqueeze(1)
            patches, reduced = patches[rows, idx].reshape(-1, d), reduced[rows, idx].reshape(-1, reduced.shape[-1])
            src = (first + rows).expand(b, keep).reshape(-1)
            if self._fit_keep < 1.0:  # subsample on the way: never one array of every patch
                n = max(1, int(round(patches.shape[0] * self._fit_keep)))
                sel = torch.randperm(patches.shape[0], generator=self._fit_gen)[:n]
                patches, reduced, src = patches[sel], reduced[sel], src[sel]
            self._fit_parts.append(patches.clone())
            self._fit_reduced.append(reduced.clone())
            self._fit_src.append(src.to(torch.int32))

    def fit_finish(self, tick: Callable[[int, int], None]) -> dict[str, Any]:
        if not self._fit_parts:
            raise RuntimeError("patchcore: no training patches were collected")
        feats, reduced, src = torch.cat(self._fit_parts), torch.cat(self._fit_reduced), torch.cat(self._fit_src)
        self._fit_parts, self._fit_reduced, self._fit_src = [], [], []
        n = feats.shape[0]
        # the bank's size is a share of all patches seen, before the local thinning
        seen = n / float(self.params["local_keep"])
        k = max(1, min(int(self.params["max_bank"]), n, int(math.ceil(seen * float(self.params["coreset_ratio"])))))
        idx = greedy_coreset(reduced, k, self._fit_gen, tick)
        self.memory_bank = feats[idx].contiguous().to(self.memory_bank.device)
        self._bank_sq = torch.zeros(0, device=self.memory_bank.device)
        self._search = None
        record: dict[str, Any] = {"patches_seen": int(round(seen)), "candidates": int(n),
                                  "memory_bank": int(self.memory_bank.shape[0]), "patch_sampling": round(self._fit_keep, 4)}
        record["global_term"] = self._fit_global(src[idx])
        self._fit_stats, self._fit_stats_src, self._loo = [], [], []
        return record

    def training_record(self) -> dict[str, Any]:
        return {"init_source": self.init_source}

    # -------------------------------------------------------------- teaching
    def learn_good(self, batches: list[torch.Tensor], seed: int = 0, reach: float | None = None) -> dict[str, Any]:
        """Add good parts (batches in [-1, 1]) to the memory bank without
        training (``inspector teach``; :mod:`.teach`: patches within ``reach``
        of the bank stay out); returns what changed."""
        from .teach import learn_good

        device = self.memory_bank.device
        # the parts as they were seen: their other exposures (bank_augment) brought
        # in defect-like patches (a darkened good part looks stained) and let defects pass
        bank, record = learn_good(self.memory_bank, self.params, self.embed, batches, seed, reach)
        self.memory_bank = bank.to(device)
        self._bank_sq = torch.zeros(0, device=device)
        self._search = None
        return record


__all__ = ["PatchCore"]

