"""Each family's whole scoring graph as one traceable module.

:func:`scoring_graph` wraps a loaded :class:`~inspection_core.models.base.Detector`
in an ``nn.Module`` whose ``forward(image)`` takes the preprocessed batch
(float32 (N, C, S, S) in [-1, 1], any N) and returns a tuple of tensors named
by its ``output_names``: ``score`` (N,), ``anomaly_map`` (N, S, S), then
``reconstruction`` (N, C, S, S) and/or ``texture`` (N,) where the family
produces them. The tuple is what ``torch.onnx.export`` traces: no per-image
Python loop, nothing that depends on the batch size.

The reconstructing families (GANomaly, Skip-GANomaly, BiGAN) and the
classifier score a batch in one pass already, so their own ``forward`` is
the graph. PatchCore's ``forward`` searches the memory bank image by image
(so that a score never depends on its batch); its graph does the same search
for the whole batch at once, inside the graph: squared distances
``|p|^2 - 2 p.m + |m|^2`` of every patch to every bank row by one matrix
product per block of the bank (the same sums as the model's exact search),
the nearest row's distance, the map upsampled and smoothed, the re-weighted
score (eq. 7, the bank neighbours of the nearest row found the same way)
and the global texture term. Adaptive average pooling with sizes that do not
divide is an operator ONNX lacks, so it is written out as a product with a
constant matrix of the same bins.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..models.base import Detector, ScoreOutput
from ..models.components.nearest import min_over_blocks

#: PatchCore's bank rows per distance block inside the graph: each block's
#: (N, patches, rows) distances are reduced to their minimum before the next
#: block, so that a batch never holds its distances to the whole bank
BANK_BLOCK = 4096
#: output names, in the order the graph returns them
REQUIRED_OUTPUTS = ("score", "anomaly_map")
OPTIONAL_OUTPUTS = ("reconstruction", "texture")


def _bins(n_in: int, n_out: int) -> torch.Tensor:
    """(n_out, n_in) matrix averaging ``n_in`` values into ``n_out`` bins,
    the bins of ``adaptive_avg_pool``: [floor(i n_in / n_out), ceil((i + 1) n_in / n_out))."""
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    for i in range(n_out):
        lo, hi = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
        m[i, lo:hi] = 1.0 / (hi - lo)
    return m.float()


def adaptive_avg_pool2d(x: torch.Tensor, size: tuple[int, int] | Any) -> torch.Tensor:
    """``F.adaptive_avg_pool2d`` of (N, C, H, W) as two products with constant bin matrices."""
    oh, ow = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    h, w = int(x.shape[-2]), int(x.shape[-1])
    rows, cols = _bins(h, oh).to(x.device), _bins(w, ow).to(x.device)
    return torch.matmul(torch.matmul(rows, x), cols.t())


def adaptive_avg_pool_last(x: torch.Tensor, n_out: int) -> torch.Tensor:
    """``F.adaptive_avg_pool1d`` over the last axis, as a product with a constant bin matrix."""
    return torch.matmul(x, _bins(int(x.shape[-1]), n_out).to(x.device).t())


class FamilyGraph(nn.Module):
    """A detector whose own ``forward`` scores a whole batch in one pass: its
    outputs as a tuple (see the module docstring)."""

    def __init__(self, model: Detector, output_names: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.output_names = output_names

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return as_outputs(self.model(image), self.output_names)


def as_outputs(out: ScoreOutput, names: tuple[str, ...]) -> tuple[torch.Tensor, ...]:
    values = {"score": out.scores, "anomaly_map": out.anomaly_map, "reconstruction": out.reconstruction,
              "texture": out.texture}
    result = []
    for name in names:
        v = values[name]
        if v is None:
            raise RuntimeError(f"the model produced no {name} for this batch")
        result.append(v.float())
    return tuple(result)


def _gemm(q: torch.Tensor, weight_t: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return torch.addmm(bias, q, weight_t)


class PatchCoreGraph(nn.Module):
    """PatchCore's scoring for a whole batch, the bank search inside the graph."""

    def __init__(self, model: Any, output_names: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.output_names = output_names
        bank = model.memory_bank.detach().float()
        blocks = [bank[i : i + BANK_BLOCK] for i in range(0, bank.shape[0], BANK_BLOCK)]
        # the bank's blocks, transposed and times -2 for the product, with their squared norms
        self.block_t = nn.ParameterList([nn.Parameter((-2.0 * b).t().contiguous(), requires_grad=False) for b in blocks])
        self.block_sq = nn.ParameterList([nn.Parameter((b * b).sum(1), requires_grad=False) for b in blocks])
        # the texture term's scales as numbers (constants of the graph)
        self.global_scales = tuple(float(v) for v in model.global_norm)

    def _texture_stats(self, emb: torch.Tensor) -> torch.Tensor:
        """The model's ``texture_stats`` with its adaptive pools as products."""
        m = self.model
        a = emb[:, : m.appearance_dim].float()
        x = a.flatten(2)
        c = x - x.mean(dim=2, keepdim=True)
        spread = torch.sqrt((c * c).sum(dim=2)) / math.sqrt(max(1, int(x.shape[2]) - 1))
        g = int(m.params["global_grid"])
        if g == 0:
            return spread
        cells = adaptive_avg_pool2d(a, (g, g)).flatten(2)                 # (N, D, g*g)
        if m.layout_dim < cells.shape[1]:
            cells = adaptive_avg_pool_last(cells.transpose(1, 2), m.layout_dim).transpose(1, 2)
        layout = (cells - cells.mean(dim=2, keepdim=True)).transpose(1, 2)
        return torch.cat([spread, layout.flatten(1)], 1)

    def _nearest(self, q: torch.Tensor, with_index: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Squared distance of each query (Q, D) to its nearest bank row (Q,),
        and that row (Q,) where ``with_index``: the model's exact search
        (``nearest.min_over_blocks``), one Gemm per block of the bank with the
        block's squared norms as its bias, |m|^2 - 2 q.m (the block holds
        -2 m^T), written once and read once."""
        return min_over_blocks(q, zip(self.block_t, self.block_sq), _gemm, with_index)

    def _reweight(self, patches: torch.Tensor, dist: torch.Tensor, nn_idx: torch.Tensor) -> torch.Tensor:
        """Eq. 7 of the paper for the batch (the model's ``_reweight``)."""
        m = self.model
        bank = m.memory_bank.float()
        arg = dist.argmax(dim=1, keepdim=True)                                        # (N, 1)
        d = patches.shape[-1]
        test_patch = patches.gather(1, arg.unsqueeze(-1).expand(-1, -1, d)).squeeze(1)  # (N, D)
        m_star = bank.index_select(0, nn_idx.gather(1, arg).squeeze(1))               # (N, D)
        s_star = dist.gather(1, arg).squeeze(1)                                       # (N,)
        k = min(int(m.params["neighbours"]), int(bank.shape[0]))
        sq = (m_star * m_star).sum(1, keepdim=True) + (bank * bank).sum(1) - 2.0 * m_star @ bank.t()
        neigh = sq.topk(k, dim=1, largest=False).indices                             # (N, k)
        neigh_feats = bank.index_select(0, neigh.flatten()).view(-1, k, d)
        diff = neigh_feats - test_patch.unsqueeze(1)
        d_test = torch.sqrt((diff * diff).sum(2))
        return (1.0 - torch.softmax(-d_test, dim=1)[:, 0]) * s_star

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        m = self.model
        x = image.float()
        emb = self._embed(x)
        b, d, h, w = emb.shape
        patches = emb.permute(0, 2, 3, 1).reshape(-1, h * w, d)
        reweighted = m.params["score"] == "reweighted"
        sq, nn_idx = self._nearest(patches.reshape(-1, d), with_index=reweighted)
        dist = sq.clamp_min(0.0).sqrt().view(-1, h * w)
        amap, scores = m._map_and_score(dist.view(-1, h, w), (int(x.shape[-2]), int(x.shape[-1])))
        texture = None
        if scores is None:
            assert nn_idx is not None
            scores = self._reweight(patches, dist, nn_idx.view(-1, h * w))
        elif "texture" in self.output_names:
            mu, sd, score_sd = self.global_scales
            c = self._texture_stats(emb) - m.global_mean
            dm = ((c @ m.global_precision) * c).sum(1).clamp_min(0.0).sqrt()
            texture = float(m.params["global_weight"]) * score_sd * ((dm - mu) / sd).clamp_min(0.0)
            scores = scores + texture
        return as_outputs(ScoreOutput(scores, amap, None, texture), self.output_names)

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        """The model's ``embed``, its adaptive pooling written as products."""
        from ..models.patchcore.model import position_channels

        m = self.model
        feats = m.features(x)
        size = m._grid(int(x.shape[-2]), int(x.shape[-1]))
        parts = [m.layer_on_grid(feats[name], size, pool=adaptive_avg_pool2d) for name in m.features.layers]
        w = float(m.params["position_weight"])
        if w > 0:
            parts.append(position_channels(1, size, w, x.device).expand(x.shape[0], -1, -1, -1))
        return torch.cat(parts, dim=1)


#: pixels per call of an exported PatchCore graph: one 224 px image (its distance blocks grow with the
#: batch and leave the cache; on 2 cores, 160 screw images at 224 px: ONNX Runtime 16.5 ms per image one
#: at a time, 17.5 in fours, 20.4 in one call of 32; OpenVINO 12.9, 13.1 and 16.1)
PATCHCORE_CHUNK_PIXELS = 1 << 16


def graph_chunk(model: Detector, size: int) -> int | None:
    """Images per call of the exported graph on a station: PatchCore's
    :data:`PATCHCORE_CHUNK_PIXELS`, the other families' PyTorch CPU chunk
    (GANomaly at 128 px: 8, measured as fast as any in both runtimes)."""
    from ..acceleration import cpu_chunk

    if model.name == "patchcore":
        return max(1, PATCHCORE_CHUNK_PIXELS // max(1, size * size))
    return cpu_chunk(model, size)


def probe_outputs(model: Detector, channels: int, size: int) -> tuple[str, ...]:
    """The outputs this model produces: scored once on two random images."""
    g = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        out = model(torch.rand(2, channels, size, size, generator=g) * 2.0 - 1.0)
    extra = tuple(n for n, v in (("reconstruction", out.reconstruction), ("texture", out.texture)) if v is not None)
    return REQUIRED_OUTPUTS + extra


def scoring_graph(model: Detector, channels: int, size: int) -> FamilyGraph | PatchCoreGraph:
    """The traceable scoring graph of a loaded detector (eval mode, CPU)."""
    names = probe_outputs(model, channels, size)
    if model.name == "patchcore":
        return PatchCoreGraph(model, names).eval()
    return FamilyGraph(model, names).eval()


__all__ = ["BANK_BLOCK", "OPTIONAL_OUTPUTS", "PATCHCORE_CHUNK_PIXELS", "REQUIRED_OUTPUTS", "FamilyGraph",
           "PatchCoreGraph", "adaptive_avg_pool2d", "graph_chunk", "probe_outputs", "scoring_graph"]
