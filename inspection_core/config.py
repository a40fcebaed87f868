"""Typed configurations for models and training, convertible to/from plain dicts
(they are stored in the bundle manifest as JSON)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

VALID_IMAGE_SIZES = (32, 64, 128, 256)


@dataclass
class ModelConfig:
    """Architecture of a detector. ``params`` holds model-specific
    hyper-parameters (loss weights, score mixing factors); each model family
    fills in its defaults (see ``Detector.default_params``)."""

    model: str = "ganomaly"
    image_size: int = 128
    channels: int = 3
    latent_dim: int = 100
    base_width: int = 64
    params: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.image_size not in VALID_IMAGE_SIZES:
            raise ValueError(
                f"image size must be one of {', '.join(map(str, VALID_IMAGE_SIZES))}, got {self.image_size}"
            )
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if self.latent_dim < 1 or self.base_width < 1:
            raise ValueError("latent size and base width must be positive")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class TrainConfig:
    """How to train. ``device``: "auto" (CUDA, then MPS, then CPU), "cpu",
    "cuda", "cuda:1", "mps". ``amp``: mixed precision on GPU (bf16 autocast on
    CPU when ``cpu_bf16`` is set)."""

    epochs: int = 15
    batch_size: int = 32
    lr: float = 2e-4
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
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {self.batch_size}")
        if not 0.0 <= self.val_fraction < 0.9:
            raise ValueError(f"validation fraction must be in [0, 0.9), got {self.val_fraction}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})
