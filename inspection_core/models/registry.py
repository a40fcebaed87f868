"""Model registry: names -> detector classes, so new families plug in."""

from __future__ import annotations

from typing import Callable, TypeVar

from ..config import ModelConfig
from .base import Detector

_REGISTRY: dict[str, type[Detector]] = {}
T = TypeVar("T", bound=type[Detector])


def register(name: str) -> Callable[[T], T]:
    def deco(cls: T) -> T:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"model name {name!r} registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def _ensure_loaded() -> None:
    # importing the package registers the built-in families
    from . import _builtin  # noqa: F401


def available_models() -> list[str]:
    _ensure_loaded()
    return sorted(_REGISTRY)


def model_class(name: str) -> type[Detector]:
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(_REGISTRY))}") from None


def build_model(cfg: ModelConfig) -> Detector:
    return model_class(cfg.model)(cfg)


def check_model_config(cfg: ModelConfig) -> None:
    """Raise ValueError when ``cfg`` does not describe a model its family can
    build (unknown family or parameter, unsupported size); builds nothing."""
    import copy

    cls = model_class(cfg.model)
    c = copy.deepcopy(cfg)
    c.params = cls.resolve_params(c)
    cls.check_config(c)
