"""PatchCore (Roth et al., CVPR 2022): a memory bank of good patches'
ImageNet features, nearest-neighbour distances as the anomaly map; see
``model.py``."""

from __future__ import annotations

from typing import Any, Mapping

from ..schema import Family
from .params import PRESETS, SCHEMA, check


def describe_fit(fit: Mapping[str, Any]) -> str:
    """What a fit built (", memory bank of 8468 patches, global texture term on"); "" if nothing."""
    parts = []
    if "memory_bank" in fit:
        parts.append(f"memory bank of {fit['memory_bank']} patches")
    term = fit.get("global_term")
    if isinstance(term, dict) and float(term.get("weight") or 0) > 0:
        parts.append(f"global texture term off ({term['off']})" if term.get("off") else "global texture term on")
    return "".join(", " + p for p in parts)


FAMILY = Family("patchcore", SCHEMA, PRESETS, "inspection_core.models.patchcore.model:PatchCore", check=check,
                describe_fit=describe_fit, summary="memory bank of good patches' features; no training loop")
