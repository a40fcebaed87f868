"""What a user sets for a training run, turned into configs in one place.

``inspector train``'s flags and the Train view's fields are the same
settings: a family and a preset, then whatever the user changed. This module
lays them over the preset with :func:`inspection_core.recipes.resolve`, with
the rules the command line has always applied, so that the desktop app can
reproduce any CLI recipe (the shipped demo's included):

- a family parameter applies only to a family that declares it;
- a local weights file, or "from scratch", goes to the family's
  ``weights_param`` (``init`` for the classifier, ``weights`` for PatchCore);
- a family with its own optimiser setting reads the learning rate from
  ``params["lr"]`` (the classifier), every other one from ``TrainConfig.lr``;
- a training setting left out keeps the preset's value;
- bf16 training on the CPU, left unset, is on where the CPU has native bf16
  and the family's bf16-trained bundles were measured to hold
  (``Detector.bf16_training``: the GAN families; not the classifier, whose
  bf16 training lost 0.014 image AUROC), applied by ``recipes.resolve``
  (:func:`inspection_core.acceleration.default_cpu_bf16`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..config import ModelConfig, TrainConfig
from ..recipes import DEFAULT_PRESET


@dataclass
class TrainSettings:
    """A user's training settings; None means "the preset's"."""

    model: str
    preset: str = DEFAULT_PRESET
    image_size: int | None = None
    epochs: int | None = None
    updates: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    lr_schedule: str | None = None
    augment: dict[str, Any] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None          # a local pretrained weights file
    from_scratch: bool = False          # random start weights, asked for explicitly
    device: str = "auto"
    seed: int = 0
    val_fraction: float = 0.1
    early_stopping_patience: int | None = None
    cpu_bf16: bool | None = None       # None: this machine's default for the family (recipes.resolve)
    normalize: str | None = None        # illumination normalisation ("none", "mean_std")
    train: dict[str, Any] = field(default_factory=dict)  # any other TrainConfig field

    def configs(self, channels: int = 3) -> tuple[ModelConfig, TrainConfig]:
        """(ModelConfig, TrainConfig): the preset with these settings laid over it.
        Raises ValueError for a setting the family does not have."""
        from ..models.registry import model_class
        from ..recipes import resolve

        cls = model_class(self.model)
        defaults = cls.default_params()
        unknown = sorted(set(self.params) - set(defaults))
        if unknown:
            raise ValueError(f"model '{self.model}' has no parameter(s) {', '.join(unknown)}; "
                             f"its parameters: {', '.join(sorted(defaults))}")
        params = dict(self.params)
        if self.weights and self.from_scratch:
            raise ValueError("give either a weights file or from-scratch, not both")
        if self.weights or self.from_scratch:
            # a reconstruction family's only pretrained part is its perceptual backbone
            target = cls.weights_param or ("perceptual_weights" if "perceptual_weights" in defaults else None)
            if target is None:
                raise ValueError(f"pretrained weights do not apply to model '{self.model}'")
            if self.from_scratch and (cls.scratch_weights is None or target != cls.weights_param):
                raise ValueError(f"model '{self.model}' needs pretrained weights: from scratch does not apply")
            params[target] = str(self.weights) if self.weights else cls.scratch_weights
        train: dict[str, Any] = {"device": self.device, "seed": self.seed, "val_fraction": self.val_fraction,
                                 "early_stopping_patience": self.early_stopping_patience,
                                 "cpu_bf16": self.cpu_bf16,
                                 **self.train}
        for name in ("epochs", "updates", "batch_size", "lr", "lr_schedule", "augment"):
            value = getattr(self, name)
            if value is not None:
                train[name] = value
        if self.lr is not None and "lr" in defaults:  # a family with its own optimiser setting (the classifier)
            params["lr"] = self.lr
        mcfg, tcfg = resolve(self.model, self.preset, channels=channels, image_size=self.image_size, params=params,
                             train=train, normalize=self.normalize)
        if self.weights and cls.weights_param is None and not mcfg.params.get("perceptual_backbone"):
            raise ValueError(f"pretrained weights do not apply to model '{self.model}' without a perceptual backbone "
                             f"(the {self.preset} preset has none; set --param perceptual_backbone=mobilenet_v2)")
        return mcfg, tcfg


__all__ = ["TrainSettings"]
