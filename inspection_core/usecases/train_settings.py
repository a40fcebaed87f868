"""What a user sets for a training run, turned into configs in one place.

``inspector train``'s flags and the Train view's fields are the same
settings: a family and a preset, then whatever the user changed. This module
lays them over the preset with :func:`inspection_core.recipes.resolve`, with
the rules the command line has always applied, so that the desktop app can
reproduce any CLI recipe (the shipped demo's included):

- a family parameter applies only to a family that declares it;
- a local weights file, or "from scratch", goes to the parameter the
  family's schema marks as naming start weights (``Param.weights``), which
  may need another one set (``Param.needs``: a reconstruction family's
  perceptual weights need its perceptual backbone);
- a training setting that a family reads from its own parameter
  (``Param.train_setting``: the classifier's ``lr``) goes to that parameter
  too;
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
        from ..models.registry import family
        from ..recipes import resolve

        schema = family(self.model).schema
        unknown = sorted(set(self.params) - set(schema.names()))
        if unknown:
            raise ValueError(f"model '{self.model}' has no parameter(s) {', '.join(unknown)}; "
                             f"its parameters: {', '.join(sorted(schema.names()))}")
        params = dict(self.params)
        if self.weights and self.from_scratch:
            raise ValueError("give either a weights file or from-scratch, not both")
        wp = schema.weights_param
        if self.weights or self.from_scratch:
            if wp is None:
                raise ValueError(f"pretrained weights do not apply to model '{self.model}'")
            if self.from_scratch and wp.scratch is None:
                raise ValueError(f"model '{self.model}' needs pretrained weights: from scratch does not apply")
            params[wp.name] = str(self.weights) if self.weights else wp.scratch
        train: dict[str, Any] = {"device": self.device, "seed": self.seed, "val_fraction": self.val_fraction,
                                 "cpu_bf16": self.cpu_bf16, **self.train}
        if self.early_stopping_patience is not None:  # else the preset's (the classifier stops by its validation AUROC)
            train["early_stopping_patience"] = self.early_stopping_patience
        for name in ("epochs", "updates", "batch_size", "lr", "lr_schedule", "augment"):
            value = getattr(self, name)
            if value is not None:
                train[name] = value
        for p in schema.params:  # a training setting the user gave that this family reads from its own parameter
            if p.train_setting:
                given = getattr(self, p.train_setting, None)
                given = self.train.get(p.train_setting) if given is None else given
                if given is not None:
                    params[p.name] = given
        mcfg, tcfg = resolve(self.model, self.preset, channels=channels, image_size=self.image_size, params=params,
                             train=train, normalize=self.normalize)
        if self.weights and wp is not None and wp.needs and not mcfg.params.get(wp.needs):
            raise ValueError(f"pretrained weights do not apply to model '{self.model}' without {wp.needs} "
                             f"(the {self.preset} preset has none; set --param {wp.needs}=...)")
        return mcfg, tcfg


__all__ = ["TrainSettings"]
