"""Detector families, one folder each, their shared parts and their registry.

``models/<family>/`` holds a family: ``FAMILY`` (its schema, presets and
what only it knows) in its ``__init__``, its parameters in ``params.py``, its
network in ``model.py``. Names are imported on first use, so that listing the
families and checking a config import no torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Detector": ".base", "ScoreOutput": ".base", "FitInfo": ".base",
    "available_models": ".registry", "build_model": ".registry", "check_model_config": ".registry",
    "families": ".registry", "family": ".registry", "model_class": ".registry", "register": ".registry",
    "register_family": ".registry", "validate_params": ".registry",
    "Family": ".schema", "Param": ".schema", "Recipe": ".schema", "Schema": ".schema",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)


__all__ = ["Detector", "Family", "FitInfo", "Param", "Recipe", "Schema", "ScoreOutput", "available_models",
           "build_model", "check_model_config", "families", "family", "model_class", "register", "register_family",
           "validate_params"]
