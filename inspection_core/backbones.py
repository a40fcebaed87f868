"""Frozen ImageNet backbones that return named intermediate feature maps.

The one place that builds a pretrained torchvision network for the core:
PatchCore's patch features, the transfer classifier's convolutional base and
the GAN detectors' perceptual residuals all come from here.

Weights follow torchvision's weights API: ``"imagenet"`` asks the backbone's
``Weights`` entry for its state dict, which torchvision downloads once into
the torch hub cache (``$TORCH_HOME/hub/checkpoints``) and reads from there
afterwards; a path names a local copy of the same file (offline stations);
``"random"`` builds untrained weights (tests of the mechanics only). When
none can be had, :class:`WeightsUnavailableError` says which file to get and
where to put it. Weights are always read with ``weights_only=True``.

A :class:`FeatureExtractor` keeps only the stages up to the deepest layer it
returns, so that a model bundle carries just those weights and an offline
station needs nothing but the bundle.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from .fileio import file_sha256


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights cannot be found, downloaded or read."""


@dataclass(frozen=True)
class BackboneSpec:
    """A torchvision network seen as a chain of stages.

    ``stages``: attribute paths of the modules that ``forward`` runs one after
    another up to the classifier; a *layer* is the output of one of them.
    ``weights``: the torchvision weights entry used for ``"imagenet"``.
    """

    name: str
    weights: str
    stages: tuple[str, ...]
    default_layers: tuple[str, ...]
    #: the last feature stage (before pooling and the classifier)
    last: str


def _seq(prefix: str, n: int) -> tuple[str, ...]:
    return tuple(f"{prefix}.{i}" for i in range(n))


_RESNET_STAGES = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")

BACKBONES: dict[str, BackboneSpec] = {
    "mobilenet_v2": BackboneSpec("mobilenet_v2", "IMAGENET1K_V1", _seq("features", 19), ("features.6", "features.13"),
                                 "features.18"),
    "resnet18": BackboneSpec("resnet18", "IMAGENET1K_V1", _RESNET_STAGES, ("layer2", "layer3"), "layer4"),
    "wide_resnet50_2": BackboneSpec("wide_resnet50_2", "IMAGENET1K_V1", _RESNET_STAGES, ("layer2", "layer3"), "layer4"),
    "vgg16": BackboneSpec("vgg16", "IMAGENET1K_V1", _seq("features", 31), ("features.15", "features.22"), "features.29"),
}


def backbone_spec(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; available: {', '.join(BACKBONES)}") from None


def weights_entry(name: str) -> Any:
    """torchvision's ``Weights`` enum member for ``name`` (carries url, transforms, meta)."""
    from torchvision.models import get_model_weights

    return get_model_weights(name)[backbone_spec(name).weights]


def weights_file_name(name: str) -> str:
    return Path(weights_entry(name).url).name


def hub_checkpoint_path(name: str) -> Path:
    """Where torchvision caches (and looks for) the ImageNet weights of ``name``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / weights_file_name(name)


def _how_to_get(name: str) -> str:
    url = weights_entry(name).url
    cached = hub_checkpoint_path(name)
    return (f"download {url} on a machine with internet and put the file at '{cached}' "
            f"(torchvision's cache, where training looks first), or pass it with --weights FILE")


def pretrained_state_dict(name: str, source: str = "imagenet") -> tuple[dict[str, torch.Tensor], str]:
    """The full torchvision state dict of backbone ``name`` and a line saying
    where it came from. ``source``: ``"imagenet"`` (torch hub cache, download
    on first use) or a local file path."""
    spec = backbone_spec(name)
    if source == "imagenet":
        entry = weights_entry(name)
        try:
            sd = entry.get_state_dict(progress=False, check_hash=True, weights_only=True)
        except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as exc:
            raise WeightsUnavailableError(
                f"{name} ImageNet weights are not available: not in torch's cache ('{hub_checkpoint_path(name)}') "
                f"and the download failed ({type(exc).__name__}: "
                f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc}). "
                f"To get them: {_how_to_get(name)}."
            ) from exc
        return sd, f"imagenet (torchvision {type(entry).__name__}.{spec.weights})"
    path = Path(source).expanduser()
    if not path.is_file():
        raise WeightsUnavailableError(f"{name} weights file '{path}' does not exist; {_how_to_get(name)}")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt, not a torch file, or pickled code
        raise WeightsUnavailableError(f"cannot read {name} weights file '{path}': {type(exc).__name__}: {exc}") from exc
    if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise WeightsUnavailableError(f"'{path}' is not a state dict (a mapping of names to tensors) of {name}")
    return sd, f"file {path.resolve()} (sha256 {file_sha256(path)})"


def _get(module: nn.Module, path: str) -> nn.Module:
    for part in path.split("."):
        module = getattr(module, part) if not part.isdigit() else module[int(part)]  # type: ignore[index]
    return module


def build_torchvision(name: str) -> nn.Module:
    """The torchvision network ``name`` with untrained weights (no download)."""
    import torchvision

    backbone_spec(name)
    return getattr(torchvision.models, name)(weights=None)


def _to_rgb_input(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """[-1, 1] gray (1 channel) or BGR (3) -> the ImageNet-normalised RGB the weights expect."""
    x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x.flip(1)
    return ((x + 1.0) * 0.5 - mean.to(x.dtype)) / std.to(x.dtype)


class FeatureExtractor(nn.Module):
    """Frozen backbone stages returning ``{layer: (B, C, h, w)}``.

    Input: a batch in the core's convention, float (B, 1 or 3, H, W) in
    [-1, 1], BGR. It is converted to ImageNet-normalised RGB with the mean and
    standard deviation of the weights' own transforms. Always in eval mode
    (BatchNorm uses its ImageNet statistics) and never trained: ``train()``
    leaves it in eval mode and its parameters need no gradient.

    ``weights``: ``"imagenet"``, a file path, ``"random"`` or ``None`` (the
    same as random: used when the weights come from a bundle's state dict).
    """

    mean: torch.Tensor  # buffers (1, 3, 1, 1), registered in __init__
    std: torch.Tensor

    def __init__(self, backbone: str, layers: Sequence[str], weights: str | None = "imagenet") -> None:
        super().__init__()
        spec = backbone_spec(backbone)
        layers = list(layers)
        if not layers:
            raise ValueError(f"{backbone}: give at least one layer")
        bad = [name for name in layers if name not in spec.stages]
        if bad:
            raise ValueError(f"{backbone} has no layer(s) {bad}; layers are: {', '.join(spec.stages)}")
        self.backbone = backbone
        self.layers = sorted(set(layers), key=spec.stages.index)
        deepest = max(spec.stages.index(name) for name in self.layers)
        full = build_torchvision(backbone)
        self.source = "random"
        self.stage_names = list(spec.stages[: deepest + 1])
        self.stages = nn.ModuleList([_get(full, p) for p in self.stage_names])
        del full  # the stages after the deepest layer are not kept
        t = weights_entry(backbone).transforms()
        self.register_buffer("mean", torch.tensor(t.mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(t.std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        super().train(False)
        with torch.no_grad():
            probe = self(torch.zeros(1, 3, 64, 64))
        self.channels = {k: int(v.shape[1]) for k, v in probe.items()}
        self.strides = {k: 64 // int(v.shape[-1]) for k, v in probe.items()}
        if weights not in (None, "random"):
            self.load_pretrained(weights)

    def train(self, mode: bool = True) -> "FeatureExtractor":
        return super().train(False)  # frozen: BatchNorm keeps its ImageNet statistics

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = _to_rgb_input(x, self.mean, self.std)
        out: dict[str, torch.Tensor] = {}
        wanted = set(self.layers)
        for name, stage in zip(self.stage_names, self.stages):
            h = stage(h)
            if name in wanted:
                out[name] = h
                if len(out) == len(wanted):
                    break
        return out

    def load_pretrained(self, weights: str) -> str:
        """Load ``weights`` (``"imagenet"`` or a file) into the kept stages;
        returns where they came from."""
        sd, source = pretrained_state_dict(self.backbone, weights)
        full = build_torchvision(self.backbone)
        try:
            full.load_state_dict(sd, strict=True)
        except RuntimeError as exc:
            raise WeightsUnavailableError(
                f"{source}: not {self.backbone} weights of the expected shapes: {str(exc).splitlines()[0]}") from exc
        for i, p in enumerate(self.stage_names):
            self.stages[i].load_state_dict(_get(full, p).state_dict())
        self.source = source
        return source


__all__ = [
    "BACKBONES",
    "BackboneSpec",
    "FeatureExtractor",
    "WeightsUnavailableError",
    "backbone_spec",
    "hub_checkpoint_path",
    "pretrained_state_dict",
    "weights_entry",
]
