"""The interface every detector implements.

A detector is an ``nn.Module`` that scores a batch of preprocessed images
(``forward`` in eval mode, returning :class:`ScoreOutput`) and says how it
trains, so that the engine in :mod:`inspection_core.training` needs no case
for any family:

- ``fit_mode = "updates"``: an optimiser loop. The engine owns epochs or an
  update budget, augmentation, the learning-rate schedule, validation,
  best-epoch checkpoints, early stopping, failure handling, progress and
  cancellation; the model owns its losses and optimisers
  (``configure_optimizers``, ``training_step``, ``on_epoch_start``).
- ``fit_mode = "one_pass"``: the engine shows every training image once
  (``fit_batch``) and then lets the model build itself (``fit_finish``), as
  PatchCore builds its memory bank.

Both get ``setup_training`` first (start weights, class balance) and report
what the bundle should record through ``training_record``.

Inputs are float tensors (B, C, H, W) scaled to [-1, 1] by
:func:`inspection_core.data.preprocess.to_tensor`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterator

import torch
from torch import nn

from ..config import ModelConfig, TrainConfig
from .schema import Family, Schema


@dataclass
class ScoreOutput:
    """Scores for a batch. ``scores``: (B,) float32, larger = more anomalous.
    ``anomaly_map``: (B, H, W) float32 at input resolution.
    ``reconstruction``: (B, C, H, W) in [-1, 1], or None.
    ``texture``: (B,) the part of each score that comes from the texture of
    the whole image rather than from a spot of the map (PatchCore's global
    term), or None for a family without one."""

    scores: torch.Tensor
    anomaly_map: torch.Tensor
    reconstruction: torch.Tensor | None = None
    texture: torch.Tensor | None = None


@dataclass(frozen=True)
class FitInfo:
    """What the engine tells a model before training: the training split's
    class counts, the input size, the seed and the training config."""

    n_train: int
    n_good: int
    n_defect: int
    image_size: int
    seed: int
    train_cfg: TrainConfig


class Detector(nn.Module):
    """Base class of all detectors (see module docstring)."""

    name: ClassVar[str] = ""
    #: supervised models (the classifier) need defective images for training
    supervised: ClassVar[bool] = False
    #: whether ``generate`` draws samples from random latents
    can_generate: ClassVar[bool] = False
    #: how the family trains: "updates" (optimiser loop) or "one_pass"
    fit_mode: ClassVar[str] = "updates"
    #: the parameter naming pretrained start weights ("imagenet" or a file), if any
    weights_param: ClassVar[str | None] = None
    #: its value for "start from random weights", if the family allows that
    scratch_weights: ClassVar[str | None] = None
    #: submodules that stay fp32 on a low-precision (bf16) scoring path, where
    #: the family's own code uses the low precision where it keeps scores
    fp32_on_fast_path: ClassVar[tuple[str, ...]] = ()
    #: on a CPU scoring path, a larger batch is scored in chunks of at most
    #: this many pixels (images x H x W): activations of a few images stay in
    #: the CPU caches (measured on 2 cores: GANomaly 128 px 3.0 ms per image
    #: in chunks of 8 against 5.3 ms at batch 32; PatchCore 224 px best in
    #: chunks of 4-5). None: no chunking (small models gain from big batches).
    cpu_chunk_pixels: ClassVar[int | None] = 1 << 17
    #: whether training defaults to bf16 autocast on a CPU with native bf16
    #: (``acceleration.default_cpu_bf16``, applied by ``recipes.resolve``); True
    #: only where bf16-trained bundles were measured to keep their quality and
    #: their scoring check
    bf16_training: ClassVar[bool] = False

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        cfg.params = self.resolve_params(cfg)
        self.check_config(cfg)
        self.cfg = cfg
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        # set by the training loop
        self._amp_dtype: torch.dtype | None = None
        self._scaler: torch.amp.GradScaler | None = None

    # ----------------------------------------------------------------- config
    #: the family this class implements (a subclass sets it; name and schema follow)
    family: ClassVar[Family | None] = None
    #: the family's parameters (:mod:`.schema`): defaults, descriptions, ranges
    schema: ClassVar[Schema] = Schema(())

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fam = cls.__dict__.get("family")
        if fam is not None:  # a family's class: its name and schema are the family's
            cls.name = fam.name
            cls.schema = fam.schema
        if "schema" in cls.__dict__:  # start weights: the schema's weights parameter that needs nothing else
            wp = cls.schema.weights_param
            primary = wp is not None and not wp.needs
            cls.weights_param = wp.name if primary and wp is not None else None
            cls.scratch_weights = wp.scratch if primary and wp is not None else None

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        """Model-specific hyper-parameters and their defaults (from :attr:`schema`)."""
        return cls.schema.defaults()

    @classmethod
    def param_help(cls) -> dict[str, str]:
        """One line for each of :meth:`default_params` (the Train view's
        tooltips), from :attr:`schema`."""
        return cls.schema.help()

    @classmethod
    def resolve_params(cls, cfg: ModelConfig) -> dict[str, Any]:
        """``cfg.params`` over the family's defaults, every value checked
        against :attr:`schema` (format-1 keys that this family never had are
        dropped)."""
        return (cls.family or Family(cls.name, cls.schema, {}, cls)).resolve_params(cfg)

    @classmethod
    def check_config(cls, cfg: ModelConfig) -> None:
        """Raise ValueError when the family cannot take ``cfg`` (its params
        already resolved): constraints across parameters and the input size.
        Cheap: builds nothing. The family's torch-free ``Family.check``."""
        if cls.family is not None:
            cls.family.check(cfg)

    @property
    def params(self) -> dict[str, Any]:
        return self.cfg.params

    def check_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Raise ValueError (``"<family>: …"``) when ``state_dict`` holds the
        right keys but cannot score: what a bundle's load checks before it
        copies anything (shapes and sizes only, so that it also runs on a
        model built on the "meta" device). Default: nothing beyond torch's
        own key and shape checks."""

    # -------------------------------------------------------------- inference
    def forward(self, x: torch.Tensor) -> ScoreOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    # --------------------------------------------------------------- training
    def setup_training(self, info: FitInfo) -> None:
        """Called once before training (start weights, class balance)."""

    def training_record(self) -> dict[str, Any]:
        """What the bundle's ``training`` section records about this model
        (e.g. where its start weights came from)."""
        return {}

    # fit_mode "updates"
    def configure_optimizers(self, tcfg: TrainConfig) -> None:
        """Create ``self.optimizers`` (name -> optimiser)."""
        raise NotImplementedError(f"{self.name}: an update-loop family must create its optimisers")

    def on_epoch_start(self, epoch: int) -> None:
        """Called before each epoch (0-based), e.g. to unfreeze layers."""

    def training_step(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, float]:
        """One update on a batch (model in train mode). ``y``: labels (0 good,
        1 defective) for supervised models, else None. Returns the losses as
        floats; a non-finite value makes the training loop stop."""
        raise NotImplementedError(f"{self.name}: an update-loop family must implement training_step")

    # fit_mode "one_pass"
    def fit_batch(self, x: torch.Tensor) -> None:
        """Take in one batch of good training images."""
        raise NotImplementedError(f"{self.name}: a one-pass family must implement fit_batch")

    def fit_finish(self, tick: Callable[[int, int], None]) -> dict[str, Any]:
        """Build the model from what ``fit_batch`` took in; ``tick(done, total)``
        reports progress (and raises when the job is cancelled). Returns
        figures for the bundle's training record."""
        raise NotImplementedError(f"{self.name}: a one-pass family must implement fit_finish")

    def generate(self, n: int) -> torch.Tensor | None:
        """Images (n, C, H, W) in [-1, 1] from random latents, or None."""
        return None

    # ------------------------------------------------------------ AMP helpers
    def set_precision(self, dtype: torch.dtype | None, use_scaler: bool = False) -> None:
        """Called by the training loop: autocast dtype (None = fp32) and
        whether a GradScaler is needed (fp16 on CUDA)."""
        self._amp_dtype = dtype
        dev = self.device.type
        self._scaler = torch.amp.GradScaler(dev) if (use_scaler and dev == "cuda") else None

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """Autocast context for the forward pass of a training step."""
        if self._amp_dtype is None:
            yield
        else:
            with torch.autocast(device_type=self.device.type, dtype=self._amp_dtype):
                yield

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """Backward + optimiser step, with gradient scaling when enabled."""
        optimizer.zero_grad(set_to_none=True)
        if self._scaler is not None:
            self._scaler.scale(loss).backward()
            self._scaler.step(optimizer)
            self._scaler.update()
        else:
            loss.backward()
            optimizer.step()

    @property
    def device(self) -> torch.device:
        try:
            return next(self.parameters()).device
        except StopIteration:  # pragma: no cover
            return torch.device("cpu")
