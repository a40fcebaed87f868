"""The model families: names -> :class:`~.schema.Family`, read from one list.

A family is a package (or module) whose ``FAMILY`` attribute is its
:class:`~.schema.Family`. The registry imports, once and by name, the
built-in families in :data:`BUILTIN_FAMILIES`, then those named in the
``INSPECTOR_FAMILIES`` environment variable (comma-separated module paths:
a family outside this package, e.g. a plant's own detector) and those given
to :func:`register_family`. A family's ``Detector`` class is imported only
when a model is built: listing the families, their presets and checking a
config import no torch.
"""

from __future__ import annotations

import copy
import importlib
import os
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from ..config import ModelConfig
from .schema import Family

if TYPE_CHECKING:
    from .base import Detector

#: the built-in families, one line each
BUILTIN_FAMILIES = (
    "inspection_core.models.ganomaly",
    "inspection_core.models.skip_ganomaly",
    "inspection_core.models.bigan",
    "inspection_core.models.vgg16",
    "inspection_core.models.patchcore",
)
#: comma-separated module paths of more families
FAMILIES_ENV = "INSPECTOR_FAMILIES"

_FAMILIES: dict[str, Family] = {}
_CLASSES: dict[str, type[Detector]] = {}
_loaded = False
T = TypeVar("T", bound="type[Detector]")


def _add(fam: Family) -> Family:
    known = _FAMILIES.get(fam.name)
    if known is not None and known is not fam and known.detector is not fam.detector:
        raise ValueError(f"model name {fam.name!r} registered twice")
    _FAMILIES[fam.name] = fam
    return fam


def register_family(module_path: str) -> Family:
    """Import ``module_path`` and register its ``FAMILY``; returns it."""
    try:
        module = importlib.import_module(module_path)
    except ImportError as exc:
        raise ValueError(f"cannot import model family {module_path!r}: {exc}") from exc
    fam = getattr(module, "FAMILY", None)
    if not isinstance(fam, Family):
        raise ValueError(f"model family {module_path!r} has no FAMILY (an inspection_core.models.schema.Family)")
    return _add(fam)


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    extra = [p.strip() for p in os.environ.get(FAMILIES_ENV, "").split(",") if p.strip()]
    for path in (*BUILTIN_FAMILIES, *extra):
        register_family(path)


def register(name: str) -> Callable[[T], T]:
    """Register an already imported ``Detector`` subclass under ``name``
    (e.g. a test's variant of a family): its schema and its base family's
    checks; no presets, so it is no choice of ``inspector train``."""

    def deco(cls: T) -> T:
        _ensure_loaded()
        base = cls.family
        if base is None:
            fam = Family(name, cls.schema, {}, cls)
        else:
            fam = Family(name, cls.schema, {}, cls, check=base.check, describe_fit=base.describe_fit)
        _add(fam)
        _bind(cls, fam)
        return cls

    return deco


def _bind(cls: type[Detector], fam: Family) -> None:
    cls.name = fam.name
    cls.family = fam
    _CLASSES[fam.name] = cls


def families() -> dict[str, Family]:
    """Every registered family by name."""
    _ensure_loaded()
    return dict(_FAMILIES)


def family(name: str) -> Family:
    """The family called ``name``; ValueError naming the available ones."""
    _ensure_loaded()
    try:
        return _FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(_FAMILIES))}") from None


def available_models() -> list[str]:
    return sorted(families())


def model_class(name: str) -> type[Detector]:
    """The ``Detector`` class of family ``name`` (imports it: torch)."""
    fam = family(name)
    cls = _CLASSES.get(name)
    if cls is None:
        if isinstance(fam.detector, str):
            module, _, attr = fam.detector.partition(":")
            cls = getattr(importlib.import_module(module), attr)
        else:
            cls = fam.detector
        _bind(cls, fam)
    return cls


def build_model(cfg: ModelConfig) -> Detector:
    return model_class(cfg.model)(cfg)


def validate_params(name: str, params: dict[str, Any], image_size: int | None = None) -> dict[str, Any]:
    """``params`` over family ``name``'s defaults, every value checked (kind,
    range, choices; with ``image_size``, also their combination with it):
    ValueError naming the parameter and what it accepts. Returns the resolved
    parameters. No torch, no model built: for ``--param`` and the Train
    view's editors before any image is read."""
    fam = family(name)
    if image_size is None:
        return fam.schema.resolve(name, params)
    cfg = ModelConfig(model=name, image_size=int(image_size), params=dict(params))
    cfg.params = fam.resolve_params(cfg)
    fam.check(cfg)
    return cfg.params


def check_model_config(cfg: ModelConfig) -> None:
    """Raise ValueError when ``cfg`` does not describe a model its family can
    build (unknown family or parameter, a value out of its range or choices,
    an unsupported size). No torch, nothing built."""
    family(cfg.model).validate(cfg)


def resolved_config(cfg: ModelConfig) -> ModelConfig:
    """A copy of ``cfg`` with its parameters resolved over the family's defaults and checked."""
    c = copy.deepcopy(cfg)
    fam = family(c.model)
    c.params = fam.resolve_params(c)
    fam.check(c)
    return c


__all__ = ["BUILTIN_FAMILIES", "FAMILIES_ENV", "available_models", "build_model", "check_model_config", "families",
           "family", "model_class", "register", "register_family", "resolved_config", "validate_params"]
