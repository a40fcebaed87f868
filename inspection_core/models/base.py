"""The interface every detector implements.

A detector is an ``nn.Module`` that (1) scores a batch of preprocessed images
(``forward`` in eval mode, returning :class:`ScoreOutput`) and (2) knows how to
make one training update on a batch (``training_step``). The generic training
loop in :mod:`inspection_core.training` owns epochs, validation, checkpoints,
progress and cancellation; the model owns its losses and optimisers.

Inputs are float tensors (B, C, H, W) scaled to [-1, 1] by
:func:`inspection_core.data.preprocess.to_tensor`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator

import torch
from torch import nn
from torch.nn import functional as F

from ..config import ModelConfig, TrainConfig


@dataclass
class ScoreOutput:
    """Scores for a batch. ``scores``: (B,) float32, larger = more anomalous.
    ``anomaly_map``: (B, H, W) float32 at input resolution.
    ``reconstruction``: (B, C, H, W) in [-1, 1], or None."""

    scores: torch.Tensor
    anomaly_map: torch.Tensor
    reconstruction: torch.Tensor | None = None


class Detector(nn.Module):
    """Base class of all detectors (see module docstring)."""

    name: ClassVar[str] = ""
    #: supervised models (the classifier) need defective images for training
    supervised: ClassVar[bool] = False
    #: whether ``generate`` draws samples from random latents
    can_generate: ClassVar[bool] = False

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        cfg.validate()
        merged = dict(self.default_params())
        unknown = set(cfg.params) - set(merged)
        if unknown:
            raise ValueError(f"{self.name}: unknown parameter(s) {sorted(unknown)}; known: {sorted(merged)}")
        merged.update(cfg.params)
        cfg.params = merged
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

    @property
    def params(self) -> dict[str, Any]:
        return self.cfg.params

    # -------------------------------------------------------------- inference
    def forward(self, x: torch.Tensor) -> ScoreOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    # --------------------------------------------------------------- training
    def configure_optimizers(self, tcfg: TrainConfig) -> None:  # pragma: no cover - abstract
        """Create ``self.optimizers`` (name -> optimiser)."""
        raise NotImplementedError

    def training_step(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, float]:
        """One update on a batch (model in train mode). ``y``: labels (0 good,
        1 defective) for supervised models, else None. Returns the losses as
        floats; a non-finite value makes the training loop stop."""
        raise NotImplementedError  # pragma: no cover - abstract

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


def weights_init(m: nn.Module) -> None:
    """DCGAN initialisation (N(0, 0.02) convs, N(1, 0.02) BatchNorm)."""
    cls = m.__class__.__name__
    if cls.find("Conv") != -1 and hasattr(m, "weight") and m.weight is not None:
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif cls.find("BatchNorm") != -1:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def gaussian_kernel1d(sigma: float, device: torch.device) -> torch.Tensor:
    radius = max(1, int(round(3 * sigma)))
    xs = torch.arange(-radius, radius + 1, device=device, dtype=torch.float32)
    k = torch.exp(-(xs**2) / (2 * sigma * sigma))
    return k / k.sum()


def smooth_map(m: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B, H, W) maps; ``sigma`` in pixels."""
    if sigma <= 0:
        return m
    k = gaussian_kernel1d(sigma, m.device).to(m.dtype)
    r = (k.numel() - 1) // 2
    x = m.unsqueeze(1)
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
