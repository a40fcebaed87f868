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
import functools
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterator

import torch
from torch import nn
from torch.nn import functional as F

from ..config import LEGACY_MODEL_KEYS, ModelConfig, TrainConfig


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
    @classmethod
    def default_params(cls) -> dict[str, Any]:
        """Model-specific hyper-parameters and their defaults."""
        return {}

    @classmethod
    def param_help(cls) -> dict[str, str]:
        """One line for each of :meth:`default_params` (the Train view's
        tooltips; the contract test checks that none is missing)."""
        return {}

    @classmethod
    def resolve_params(cls, cfg: ModelConfig) -> dict[str, Any]:
        """``cfg.params`` over the family's defaults; an unknown name is an error
        (format-1 keys that this family never had are dropped)."""
        cfg.validate()
        merged = dict(cls.default_params())
        given = dict(cfg.params)
        for k in getattr(cfg, "_legacy", ()):
            if k in LEGACY_MODEL_KEYS and k not in merged:
                given.pop(k, None)
        unknown = set(given) - set(merged)
        if unknown:
            raise ValueError(f"{cls.name}: unknown parameter(s) {sorted(unknown)}; known: {sorted(merged)}")
        for k, v in given.items():
            _check_type(cls.name, k, v, merged[k])
        merged.update(given)
        return merged

    @classmethod
    def check_config(cls, cfg: ModelConfig) -> None:
        """Raise ValueError when the family cannot take ``cfg`` (its params
        already resolved): image size, network size. Cheap: builds nothing."""

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


def _check_type(family: str, key: str, value: Any, default: Any) -> None:
    """A parameter has its default's type: a finite number where the default
    is a number (a whole one where it is an int), a string, a list, a bool."""
    import math

    if isinstance(default, bool):
        ok = isinstance(value, bool)
        want = "true or false"
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
        want = "a whole number"
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))
        want = "a finite number"
    elif isinstance(default, str):
        ok, want = isinstance(value, str), "a text"
    elif isinstance(default, (list, tuple)):
        ok, want = isinstance(value, (list, tuple)), "a list"
    else:
        return
    if not ok:
        raise ValueError(f"{family}: parameter {key} must be {want}, got {value!r}")


def weights_init(m: nn.Module) -> None:
    """DCGAN initialisation (N(0, 0.02) convs, N(1, 0.02) BatchNorm)."""
    cls = m.__class__.__name__
    if cls.find("Conv") != -1 and hasattr(m, "weight") and m.weight is not None:
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif cls.find("BatchNorm") != -1:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def _kernel_radius(sigma: float) -> int:
    return max(1, int(round(3 * sigma)))


def gaussian_kernel1d(sigma: float, device: torch.device) -> torch.Tensor:
    radius = _kernel_radius(sigma)
    xs = torch.arange(-radius, radius + 1, device=device, dtype=torch.float32)
    k = torch.exp(-(xs**2) / (2 * sigma * sigma))
    return k / k.sum()


#: maps up to this side are blurred by two matrix products (one BLAS call per
#: axis for the whole batch; a 1-channel convolution is a slow oneDNN case)
_MATMUL_BLUR_MAX = 512


@functools.lru_cache(maxsize=32)
def _blur_matrix(n: int, sigma: float, device: str) -> torch.Tensor:
    """(n, n) matrix M with (M @ v) = v blurred by the Gaussian kernel, with
    reflect padding folded in (the same sums as ``F.pad(mode="reflect")``
    then a valid 1-D convolution)."""
    k = gaussian_kernel1d(sigma, torch.device("cpu")).double()
    r = (k.numel() - 1) // 2
    idx = torch.arange(n).unsqueeze(1) + torch.arange(-r, r + 1).unsqueeze(0)   # (n, 2r+1)
    idx = idx.abs()                                                               # reflect below 0
    idx = torch.where(idx > n - 1, 2 * (n - 1) - idx, idx)                        # reflect above n-1
    m = torch.zeros(n, n, dtype=torch.float64)
    m.scatter_add_(1, idx, k.expand(n, -1).contiguous())
    return m.float().to(device)


def smooth_map(m: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B, H, W) maps; ``sigma`` in pixels,
    reflect padding at the borders."""
    if sigma <= 0:
        return m
    # always fp32, also on a bf16 scoring path: under autocast the products
    # would round the map (and the score taken from it) to bf16
    with torch.autocast(m.device.type, enabled=False):
        x = m.float()
        h, w = x.shape[-2], x.shape[-1]
        if _kernel_radius(sigma) < min(h, w) and max(h, w) <= _MATMUL_BLUR_MAX:
            dev = str(x.device)
            x = torch.matmul(x, _blur_matrix(w, float(sigma), dev).t())
            return torch.matmul(_blur_matrix(h, float(sigma), dev), x)
        k = gaussian_kernel1d(sigma, m.device).float()
        r = (k.numel() - 1) // 2
        x = x.unsqueeze(1)
        x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
        x = F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1))
        return x.squeeze(1)


def reconstruction_map(x: torch.Tensor, x_hat: torch.Tensor, sigma: float | None = None) -> torch.Tensor:
    """Per-pixel anomaly map: channel-mean absolute reconstruction error,
    Gaussian-smoothed (sigma defaults to image_size / 64 pixels)."""
    err = (x.float() - x_hat.float()).abs().mean(dim=1)
    if sigma is None:
        sigma = max(1.0, x.shape[-1] / 64)
    return smooth_map(err, sigma)
