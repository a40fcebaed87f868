"""Teaching PatchCore good parts without training (``inspector teach``).

A good part that PatchCore rejects has patches its memory bank lacks. Every
patch of the taught images, as they were seen, is a candidate; the greedy
k-center selection then goes on from the bank as it is: each new row is the
candidate farthest from the bank and from the rows chosen so far, until every
candidate lies within ``REACH_SHARE`` (half) of the bank's reach (the median
distance of a bank row to its nearest other row: how closely the training
coreset covers the good patches). So nearly every patch of a taught part that
the bank does not already hold joins it, not only the few that made the part
FAIL: a good part's score is its smoothed heat map's maximum, made of many
patches near the bank's own spacing (on screw and pill that spacing, about
2.1, is 80 to 90 % of a calibrated threshold), and a neighbouring part gains
from the whole taught region, not from its peak alone (docs/quality.md: on
screw, adding only the peak patches left 4 of 5 untaught rejected parts
rejected, the whole region 3, with the same escapes). The taught
parts' other views stay out: their other exposures (``bank_augment``) let
defects pass on the demo's washers, and rotations and flips of a screw (which
lies at any angle) carried further to the untaught parts only where they let
4 more of screw's 119 defects pass. Where the bank then passes its cap
(``max_bank``), the coreset selection is run again over the whole bank, on a
random projection as at training, down to the cap. The global texture term is not
changed (its Gaussian is the training images'): a part rejected for its whole
texture is not fixed by teaching.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Callable

import torch

from ..components.coreset import greedy_coreset
from ..components.nearest import nearest_distances

#: a taught patch within this share of the bank's reach (its rows' median
#: spacing) is held by the bank already and stays out
REACH_SHARE = 0.5


def candidate_patches(embed: Callable[[torch.Tensor], torch.Tensor], views: Iterable[torch.Tensor]) -> torch.Tensor:
    """Every patch descriptor of every view (N, D)."""
    parts = []
    for view in views:
        with torch.inference_mode():
            emb = embed(view)
        parts.append(emb.permute(0, 2, 3, 1).reshape(-1, emb.shape[1]).float().cpu())
    return torch.cat(parts)


def bank_reach(bank: torch.Tensor, sample: int = 2000, seed: int = 0) -> float:
    """The median distance of a bank row to its nearest other row (on a seeded
    sample of rows): how closely the bank covers the good patches."""
    n = bank.shape[0]
    if n < 2:
        return 0.0
    rows = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:sample]
    d, _ = nearest_distances(bank[rows], bank, k=2)
    return float(d[:, 1].median())


def extend_from_bank(bank: torch.Tensor, candidates: torch.Tensor, reach: float, limit: int) -> torch.Tensor:
    """Indices of candidates chosen by greedy k-center selection continued from
    ``bank`` (the farthest from the bank and the chosen ones first) until every
    candidate lies within ``reach``, at most ``limit``."""
    if candidates.shape[0] == 0 or limit <= 0:
        return torch.zeros(0, dtype=torch.long)
    min_d = nearest_distances(candidates, bank)[0][:, 0] ** 2 if bank.shape[0] else torch.full(
        (candidates.shape[0],), math.inf)
    c = candidates.float()
    sq = (c * c).sum(1)
    chosen: list[int] = []
    for _ in range(min(limit, c.shape[0])):
        j = int(torch.argmax(min_d))
        if not min_d[j] > reach * reach:
            break
        chosen.append(j)
        d = torch.addmv(sq, c, c[j], alpha=-2.0).add_(sq[j]).clamp_(min=0)
        torch.minimum(min_d, d, out=min_d)
    return torch.tensor(chosen, dtype=torch.long)


def learn_good(bank: torch.Tensor, params: dict[str, Any], embed: Callable[[torch.Tensor], torch.Tensor],
               views: Iterable[torch.Tensor], seed: int = 0, reach: float | None = None
               ) -> tuple[torch.Tensor, dict[str, Any]]:
    """The memory bank with the taught parts' patches (see the module
    docstring) and a record of what changed. ``reach``: the distance within
    which a candidate counts as held by the bank (default: ``REACH_SHARE`` of
    the bank's reach)."""
    cand = candidate_patches(embed, views)
    bank = bank.float().cpu()
    reach = REACH_SHARE * bank_reach(bank, seed=seed) if reach is None else float(reach)
    cap = int(params["max_bank"])
    picked = extend_from_bank(bank, cand, reach, limit=cap)
    grown = torch.cat([bank, cand[picked]]) if picked.numel() else bank
    record: dict[str, Any] = {"bank_before": int(bank.shape[0]), "patches_seen": int(cand.shape[0]),
                              "reach": round(reach, 6),
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


__all__ = ["REACH_SHARE", "bank_reach", "candidate_patches", "extend_from_bank", "learn_good"]
