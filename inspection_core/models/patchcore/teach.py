"""Teaching PatchCore good parts without training (``inspector teach``).

A good part that PatchCore rejects has patches its memory bank lacks. The
taught images' patches (and their exposures, as the bank holds them:
``bank_augment``) are thinned within each image as at training
(``local_keep``), then the greedy k-center selection goes on from the bank as
it is: each new row is the taught patch farthest from the bank and from the
rows chosen so far, so the patches the bank lacks come first. As many rows as
training would keep of those patches (``coreset_ratio``) join the bank. Where
the bank then passes its cap (``max_bank``), the coreset selection is run
again over the whole bank, on a random projection as at training, down to the
cap. The global texture term is not changed (its Gaussian is the training
images'): a part rejected for its whole texture is not fixed by teaching.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Callable

import torch

from ..components.coreset import greedy_coreset, local_coresets
from ..components.nearest import nearest_distances


def candidate_patches(embed: Callable[[torch.Tensor], torch.Tensor], views: Iterable[torch.Tensor],
                      local_keep: float) -> tuple[torch.Tensor, int]:
    """Each view's patches, thinned within each image as at training; and how
    many patches were seen before the thinning."""
    parts, seen = [], 0
    for view in views:
        with torch.inference_mode():
            emb = embed(view)
        b, d = emb.shape[0], emb.shape[1]
        patches = emb.permute(0, 2, 3, 1).reshape(b, -1, d).float().cpu()
        seen += patches.shape[0] * patches.shape[1]
        keep = max(1, int(round(patches.shape[1] * local_keep)))
        idx = local_coresets(patches, keep)
        parts.append(patches[torch.arange(b).unsqueeze(1), idx].reshape(-1, d))
    return torch.cat(parts), seen


def extend_from_bank(bank: torch.Tensor, candidates: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of up to ``k`` candidates chosen by greedy k-center selection
    continued from ``bank``: the farthest from the bank and the chosen ones
    first; none once every candidate is a bank row."""
    if candidates.shape[0] == 0 or k <= 0:
        return torch.zeros(0, dtype=torch.long)
    min_d = nearest_distances(candidates, bank)[0][:, 0] ** 2 if bank.shape[0] else torch.full(
        (candidates.shape[0],), math.inf)
    c = candidates.float()
    sq = (c * c).sum(1)
    chosen: list[int] = []
    for _ in range(min(k, c.shape[0])):
        j = int(torch.argmax(min_d))
        if not min_d[j] > 0:
            break
        chosen.append(j)
        d = torch.addmv(sq, c, c[j], alpha=-2.0).add_(sq[j]).clamp_(min=0)
        torch.minimum(min_d, d, out=min_d)
    return torch.tensor(chosen, dtype=torch.long)


def learn_good(bank: torch.Tensor, params: dict[str, Any], embed: Callable[[torch.Tensor], torch.Tensor],
               views: Iterable[torch.Tensor], seed: int = 0) -> tuple[torch.Tensor, dict[str, Any]]:
    """The memory bank with the taught parts' patches (see the module
    docstring) and a record of what changed."""
    cand, seen = candidate_patches(embed, views, float(params["local_keep"]))
    bank = bank.float().cpu()
    k = max(1, int(math.ceil(seen * float(params["coreset_ratio"]))))
    picked = extend_from_bank(bank, cand, k)
    grown = torch.cat([bank, cand[picked]]) if picked.numel() else bank
    cap = int(params["max_bank"])
    record: dict[str, Any] = {"bank_before": int(bank.shape[0]), "patches_seen": int(seen),
                              "added": int(picked.numel()), "cap": cap, "coreset_rerun": False}
    if grown.shape[0] > cap:
        gen = torch.Generator().manual_seed(int(seed))
        pdim = int(params["projection_dim"])
        d = grown.shape[1]
        reduced = grown @ (torch.randn(d, pdim, generator=gen) / math.sqrt(pdim)) if pdim < d else grown
        grown = grown[greedy_coreset(reduced, cap, gen)].contiguous()
        record["coreset_rerun"] = True
    record["bank_after"] = int(grown.shape[0])
    return grown, record


__all__ = ["candidate_patches", "extend_from_bank", "learn_good"]
