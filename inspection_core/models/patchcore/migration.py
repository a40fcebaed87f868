"""What a PatchCore bundle's state dict may hold, and how older ones load.

The memory bank takes its size from the bundle (any number of rows loads).
Bundles from before the texture term's layout statistics hold the channel
spreads only (their ``global_grid`` is read from the statistics' size);
bundles from before the texture term have none of its buffers (the term
stays off).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

from .params import MAX_GLOBAL_GRID

if TYPE_CHECKING:
    # a mixin of an nn.Module: its ``super()._load_from_state_dict`` is the module's
    _MixinBase = torch.nn.Module
else:
    _MixinBase = object


class BankStateDict(_MixinBase):
    """State-dict checks and migration of a PatchCore model (a mixin)."""

    params: dict[str, Any]
    memory_bank: torch.Tensor
    feature_dim: int
    appearance_dim: int
    layout_dim: int
    global_mean: torch.Tensor
    features: Any
    _bank_sq: torch.Tensor
    _search: Any
    size_texture_stats: Any  # TextureTerm's

    def check_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        """A bundle's memory bank must hold descriptors of this backbone: any
        number of rows loads, but none, or rows of another length, would fail
        only when the first part is scored."""
        bank = state_dict.get("memory_bank")
        if bank is None:
            return  # strict loading names the missing key
        if bank.dim() != 2:
            raise ValueError(f"patchcore: the memory bank must be a table of descriptors (2 dimensions), "
                             f"got {bank.dim()} dimension(s) {tuple(bank.shape)}")
        if bank.shape[0] == 0:
            raise ValueError("patchcore: the memory bank has 0 rows (the model was never fitted)")
        if bank.shape[1] != self.feature_dim:
            position = " with the patch position" if self.feature_dim != self.appearance_dim else ""
            raise ValueError(f"patchcore: the memory bank rows have {bank.shape[1]} values, the descriptors "
                             f"{self.feature_dim} ({self.params['backbone']} {', '.join(self.features.layers)}"
                             f"{position})")
        if not bank.is_floating_point():
            raise ValueError(f"patchcore: the memory bank must hold decimal numbers, got {bank.dtype}")

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        # the memory bank takes its size from the bundle (any size loads)
        key = prefix + "memory_bank"
        if key in state_dict:
            self.memory_bank = torch.empty_like(state_dict[key], device=self.memory_bank.device)
        # the texture statistics the bundle was fitted with (bundles from
        # before the layout statistics hold the channel spreads only)
        stored = state_dict.get(prefix + "global_mean")
        if stored is not None and stored.numel() != self.global_mean.numel():
            extra = stored.numel() - self.appearance_dim
            cells = extra // max(1, self.layout_dim)
            g = math.isqrt(max(0, cells))
            if extra < 0 or extra % max(1, self.layout_dim) or g * g != cells or g > MAX_GLOBAL_GRID:
                raise ValueError(f"patchcore: the bundle's texture statistics ({stored.numel()} values) do not fit "
                                 f"a backbone of {self.appearance_dim} channels")
            self.params["global_grid"] = g
            self.size_texture_stats(g)
        # bundles from before the global texture term: the term stays off
        for name in ("global_mean", "global_precision", "global_norm"):
            if prefix + name in state_dict or prefix + "memory_bank" not in state_dict:
                continue
            state_dict[prefix + name] = torch.zeros_like(getattr(self, name))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._bank_sq = torch.zeros(0, device=self.memory_bank.device)
        self._search = None
