"""Training recipes: what ``inspector train --model M`` does with no other flag.

A recipe is a model family's input size, parameters and training settings.
Each family declares three presets in its folder (``models/<family>/params.py``),
which the command line and the Train view share:

- ``quick``: a short check that the data and the pipeline work (minutes),
- ``standard``: the default, measured on ``../shared/data`` (see
  ``docs/quality.md``),
- ``thorough``: a longer run for the last few points.

Anything a user sets explicitly (``--lr``, ``--param lam=1``, the Train
view's fields) is laid over the preset by :func:`resolve`; the preset's name
is recorded in the bundle with the values that were used.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import fields
from typing import Any

from .config import ModelConfig, TrainConfig
from .models.schema import PRESETS, Recipe

DEFAULT_PRESET = "standard"


class _Recipes(Mapping[str, Mapping[str, Recipe]]):
    """family -> preset -> recipe, read from each registered family's folder
    (``models/<family>/params.py``) when first asked; no torch."""

    def _all(self) -> dict[str, Mapping[str, Recipe]]:
        from .models.registry import families

        return {name: fam.presets for name, fam in families().items() if fam.presets}

    def __getitem__(self, model: str) -> Mapping[str, Recipe]:
        return self._all()[model]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


#: family -> preset -> recipe
RECIPES: Mapping[str, Mapping[str, Recipe]] = _Recipes()


def recipe(model: str, preset: str = DEFAULT_PRESET) -> Recipe:
    """The preset ``preset`` of family ``model``."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; presets: {', '.join(PRESETS)}")
    try:
        return RECIPES[model][preset]
    except KeyError:
        raise ValueError(f"no recipe for model {model!r}; models with recipes: {', '.join(sorted(RECIPES))}") from None


def resolve(model: str, preset: str = DEFAULT_PRESET, *, channels: int = 3, image_size: int | None = None,
            params: dict[str, Any] | None = None, train: dict[str, Any] | None = None,
            normalize: str | None = None) -> tuple[ModelConfig, TrainConfig]:
    """The configs of ``preset`` with the user's explicit settings laid over
    it: ``params`` over the recipe's family parameters, ``train`` (TrainConfig
    field names) over its training settings. Unknown training settings are
    an error. ``cpu_bf16`` not given (or None) is
    :func:`inspection_core.acceleration.default_cpu_bf16`: bf16
    training on a CPU with native bf16 for the families measured to keep
    their quality with it."""
    r = recipe(model, preset)
    known = {f.name for f in fields(TrainConfig)}
    overrides = dict(train or {})
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"unknown training setting(s) {sorted(unknown)}")
    tvals = {**copy.deepcopy(r.train), **overrides, "preset": preset}
    if tvals.get("cpu_bf16") is None:
        from .acceleration import default_cpu_bf16

        tvals["cpu_bf16"] = default_cpu_bf16(model)
    if "updates" in overrides and "epochs" not in overrides:
        tvals.pop("epochs", None)  # an update budget replaces the recipe's epochs
    if "epochs" in overrides and "updates" not in overrides:
        tvals.pop("updates", None)
    mcfg = ModelConfig(model=model, image_size=int(image_size or r.image_size), channels=channels,
                       params={**copy.deepcopy(r.params), **(params or {})}, normalize=normalize or r.normalize)
    return mcfg, TrainConfig(**tvals)


__all__ = ["DEFAULT_PRESET", "PRESETS", "RECIPES", "Recipe", "recipe", "resolve"]
