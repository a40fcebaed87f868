"""One explicit step per bundle format: ``MIGRATIONS[n]`` makes a format-n
manifest one of format n + 1 (ADR 0017). No torch here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..config import LEGACY_MODEL_KEYS
from .checks import FORMAT_VERSION

#: the format-1 families whose parameters had these names (a family without them dropped them)
_FORMAT1_LEGACY_PARAMS = {"ganomaly": LEGACY_MODEL_KEYS, "skip-ganomaly": LEGACY_MODEL_KEYS,
                          "bigan": LEGACY_MODEL_KEYS, "vgg16": ("base_width",), "patchcore": ()}


def migrate_1_to_2(m: dict[str, Any]) -> dict[str, Any]:
    """Format 1 wrote ``latent_dim`` and ``base_width`` beside ``model.params``
    (the first releases' ``ModelConfig`` fields); format 2 has them in
    ``params`` for the families that take them (a value in ``params`` wins)."""
    model = m.get("model")
    if isinstance(model, dict) and any(k in model for k in LEGACY_MODEL_KEYS):
        model = dict(model)
        taken = _FORMAT1_LEGACY_PARAMS.get(str(model.get("model")), LEGACY_MODEL_KEYS)
        params = model.get("params")
        params = dict(params) if isinstance(params, dict) else params
        for key in LEGACY_MODEL_KEYS:
            if key in model:
                value = model.pop(key)
                if key in taken and isinstance(params, dict):
                    params.setdefault(key, value)
        if params is not None or "params" in model:
            model["params"] = params
        m = {**m, "model": model}
    return {**m, "format_version": 2}


#: format n -> the step that makes a format n manifest one of format n + 1
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: migrate_1_to_2}


def migrate(m: dict[str, Any]) -> dict[str, Any]:
    """``m`` (whose version is checked) in :data:`FORMAT_VERSION`, one step per version."""
    while m["format_version"] < FORMAT_VERSION:
        m = MIGRATIONS[m["format_version"]](m)
    return m

