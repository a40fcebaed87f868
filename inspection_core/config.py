"""Typed configurations for models and training, convertible to/from plain dicts
(they are stored in the bundle manifest as JSON).

A :class:`ModelConfig` says only what every detector family has: its name, the
square input size and the channel count. Everything family-specific (a GAN's
latent size and channel width, a backbone and its layers, loss weights) lives
in ``params``, whose names and defaults each family declares
(``Detector.default_params``) and whose values it checks.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, cast

#: the input sizes any family may be asked for; a family narrows this further
#: (the DCGAN families need a power of two, see ``Detector.check_config``)
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 16, 1024
#: sizes offered by the CLI and the Train view (families check their own)
COMMON_IMAGE_SIZES = (32, 64, 128, 224, 256, 320)
#: model-section keys of format-1 manifests that now live in ``params``
LEGACY_MODEL_KEYS = ("latent_dim", "base_width")


def shown(value: Any, width: int = 40) -> str:
    """A value and its kind, for a message that refuses it: ``'3' (text)``,
    ``3.0 (a decimal number)``, ``[1, 2] (a list)``, ``nan (not a number)``;
    a whole number too long to print is shortened and its digits counted."""
    if value is None:
        return "null (nothing)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (true/false)"
    if isinstance(value, int):
        try:
            text = str(value)
        except ValueError:  # more digits than Python prints (4300)
            return "a whole number of more than 4300 digits"
        digits = len(text.lstrip("-"))
        big = ""
        try:
            float(value)
        except OverflowError:
            big = ", too large to compute with"
        if digits > 20:
            return f"{text[:8]}…{text[-4:]} (a whole number of {digits} digits{big})"
        return f"{text} (a whole number{big})"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan (not a number)"
        if math.isinf(value):
            return f"{value} (infinite)"
        return f"{value!r} (a decimal number)"
    kinds = {str: "text", dict: "an object", list: "a list", tuple: "a list"}
    kind = next((k for t, k in kinds.items() if isinstance(value, t)), type(value).__name__)
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a value that cannot print itself: its kind says enough
        return f"({kind})"
    if len(text) > width:
        text = text[: width - 1] + "…"
    return f"{text} ({kind})"


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class ModelConfig:
    """What a detector is: family name, input geometry and photometry, and family parameters."""

    model: str = "ganomaly"
    image_size: int = 128
    channels: int = 3
    params: dict[str, Any] = field(default_factory=dict)
    #: illumination normalisation of the one preprocessing path ("none", "mean_std")
    normalize: str = "none"
    #: legacy keys that :meth:`from_dict` moved into ``params`` (not a field: never saved)
    _legacy = cast("tuple[str, ...]", ())

    def validate(self) -> None:
        """Raise ValueError naming the field and showing the bad value with
        its kind (``channels must be 1 or 3, got '3' (text)``)."""
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"model must be the name of a model family, got {shown(self.model)}")
        if not _is_whole(self.image_size):
            raise ValueError(f"image size must be a whole number, got {shown(self.image_size)}")
        if not MIN_IMAGE_SIZE <= self.image_size <= MAX_IMAGE_SIZE:
            raise ValueError(f"image size must be between {MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE}, "
                             f"got {shown(self.image_size)}")
        # a number equal to 1 or 3 passes here (3.0); a bundle refuses it as not whole
        if isinstance(self.channels, bool) or not isinstance(self.channels, (int, float)) \
                or self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {shown(self.channels)}")
        if not isinstance(self.normalize, str) or self.normalize not in ("none", "mean_std"):
            raise ValueError(f"normalize must be 'none' or 'mean_std', got {shown(self.normalize)}")
        if not isinstance(self.params, dict):
            raise ValueError(f"model params must be an object of name: value pairs, got {shown(self.params)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        """From a manifest's ``model`` section. Format-1 manifests kept
        ``latent_dim`` and ``base_width`` beside ``params``; they move into
        ``params`` (a family that has no such parameter ignores them)."""
        if not isinstance(d, dict):
            raise ValueError("model section must be a mapping")
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known - set(LEGACY_MODEL_KEYS)
        if unknown:
            raise ValueError(f"unknown key(s) in the model section: {', '.join(sorted(unknown))}")
        given = d.get("params")
        if given is not None and not isinstance(given, dict):
            raise ValueError(f"model params must be an object of name: value pairs, got {shown(given)}")
        params = dict(given or {})
        legacy = {k: d[k] for k in LEGACY_MODEL_KEYS if k in d}
        for k, v in legacy.items():
            params.setdefault(k, v)
        cfg = cls(**{k: v for k, v in d.items() if k in known and k != "params"}, params=params)
        cfg._legacy = tuple(legacy)
        return cfg


@dataclass
class TrainConfig:
    """How to train. ``device``: "auto" (CUDA, then MPS, then CPU), "cpu",
    "cuda", "cuda:1", "mps". ``amp``: mixed precision on GPU (bf16 autocast on
    CPU when ``cpu_bf16`` is set).

    Update-loop families train for ``updates`` optimiser steps when it is set
    (the epoch count follows from the data size), else for ``epochs``;
    ``lr_schedule`` is "constant" or "cosine" (to 5 % of ``lr`` at the end,
    after ``warmup`` linear warm-up updates); ``augment`` holds the
    augmentation settings (see :mod:`inspection_core.augment`);
    ``checkpoint``: keep the "best" validation round or the "last" one.
    ``preset`` names the recipe the values came from (for the record).
    """

    epochs: int = 15
    updates: int | None = None
    batch_size: int = 32
    lr: float = 2e-4
    lr_schedule: str = "constant"
    warmup: int = 0
    beta1: float = 0.5
    weight_decay: float = 0.0
    device: str = "auto"
    seed: int = 0
    val_fraction: float = 0.1
    early_stopping_patience: int | None = None
    amp: bool = True
    cpu_bf16: bool = False
    samples_per_epoch: int = 8
    max_steps_per_epoch: int | None = None
    threshold_quantile: float = 0.99
    checkpoint: str = "best"
    #: supervised families: draw each pass over the data half good, half defective
    balanced_batches: bool = False
    holdout_train_good: bool = False
    augment: dict[str, Any] = field(default_factory=dict)
    preset: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.updates is not None and self.updates < 1:
            raise ValueError(f"updates must be at least 1, got {self.updates}")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {self.batch_size}")
        if not self.lr > 0:
            raise ValueError(f"learning rate must be positive, got {self.lr}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"learning-rate schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        if self.checkpoint not in ("best", "last"):
            raise ValueError(f"checkpoint must be 'best' or 'last', got {self.checkpoint!r}")
        if self.warmup < 0:
            raise ValueError(f"warm-up updates must be >= 0, got {self.warmup}")
        if not 0.0 <= self.val_fraction < 0.9:
            raise ValueError(f"validation fraction must be in [0, 0.9), got {self.val_fraction}")
        from .augment import Augmentation

        Augmentation.from_dict(self.augment)  # raises on an unknown key or a bad value

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})
