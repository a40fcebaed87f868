"""VGG16 transfer-learning classifier with class activation maps.

A pretrained convolutional base, by default VGG16's (Simonyan and Zisserman,
ICLR 2015; param ``backbone``: also ``mobilenet_v2``, ``resnet18``,
``wide_resnet50_2``), its fully connected layers replaced by global average
pooling and a Linear(C -> 2) head, so that a class activation map (CAM, Zhou et al., CVPR 2016) localises
what drives the "defective" decision. As in the CAM paper the last max-pool
(pool5) is dropped: the map is taken from conv5_3 at 1/16 of the input size.

Supervised: it needs good AND defective training images. Score = softmax
probability of class 1 (defective); anomaly map = ReLU(w_1 . features)
upsampled bilinearly to the input size; no reconstruction.

For the other backbones the base is :class:`inspection_core.backbones.FeatureExtractor`
up to the network's last feature stage (its BatchNorm layers keep their
ImageNet statistics while the weights are fine-tuned).

Start weights (param ``init``): ``"imagenet"`` (torchvision's weights API,
downloaded once into torch's cache),
a path to a local state dict file (offline stations), or ``"scratch"``
(random, only when asked for). They are loaded by :meth:`VGG16Classifier.load_start_weights`,
which ``configure_optimizers`` calls — never at construction, so that a
saved bundle can be rebuilt on a station without the ImageNet file.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models.vgg import cfgs, make_layers

from ...backbones import FeatureExtractor, WeightsUnavailableError, backbone_spec, pretrained_state_dict
from ...config import ModelConfig, TrainConfig
from ..base import Detector, FitInfo, ScoreOutput
from . import FAMILY
from .params import REAL_WIDTH

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB
IMAGENET_STD = (0.229, 0.224, 0.225)


def _features_only(sd: dict[str, torch.Tensor], origin: str) -> dict[str, torch.Tensor]:
    """The ``features.*`` entries of a full torchvision vgg16 state dict, or
    of a features-only one, with the prefix removed."""
    feats = {k[len("features.") :]: v for k, v in sd.items() if k.startswith("features.")}
    if not feats:
        raise WeightsUnavailableError(
            f"{origin} holds no 'features.*' weights: expected a torchvision vgg16 state dict"
        )
    return feats


class VGG16Classifier(Detector):
    """Two-way transfer classifier (good / defective); its parameters:
    ``params.py`` (``init``: "imagenet", "scratch" or a state dict file;
    ``freeze_epochs``: the conv base frozen for epochs 0 .. freeze_epochs-1
    when starting from pretrained weights; ``lr``: its own Adam's)."""

    family = FAMILY
    supervised = True
    #: a small classifier head gains from whole batches (measured: 0.8 ms per
    #: image at batch 32 against 1.6 ms in chunks of 8)
    cpu_chunk_pixels = None
    _mean: torch.Tensor  # buffers (1, 3, 1, 1), registered in __init__
    _std: torch.Tensor

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        p = self.params
        init, backbone, width = p["init"], p["backbone"], p["base_width"]
        if backbone == "vgg16":
            # torchvision's layout (state-dict keys features.N), pool5 dropped: CAM at 1/16 resolution
            scale = width / REAL_WIDTH
            layout = [v if v == "M" else max(1, int(round(int(v) * scale))) for v in cfgs["D"]]
            self.features = make_layers(layout[:-1])
            self.feature_channels = int(layout[-2])
            self.normalise_imagenet = init != "scratch"
        else:
            last = backbone_spec(backbone).last
            self.base = FeatureExtractor(backbone, [last], weights=None)
            self.base.requires_grad_(True)
            self.feature_channels = self.base.channels[last]
            self.normalise_imagenet = False  # FeatureExtractor normalises by itself
        self.head = nn.Linear(self.feature_channels, 2)
        self._init_random(self.head if backbone != "vgg16" else self)
        self.register_buffer("_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.class_weight: torch.Tensor | None = None
        #: which start was used, for the bundle manifest
        self.init_source = "scratch" if init == "scratch" else f"{init} (not loaded yet)"
        self._start_loaded = init == "scratch"

    @staticmethod
    def _init_random(root: nn.Module) -> None:
        # torchvision's VGG initialisation
        for m in root.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:  # VGG's convolutions all have one
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    # ------------------------------------------------------------ start weights
    def load_start_weights(self) -> None:
        """Load the start weights named by ``init`` into the conv base (once).
        Raises :class:`WeightsUnavailableError` with instructions when they
        cannot be had; never falls back to random weights silently."""
        if self._start_loaded:
            return
        init, backbone = self.params["init"], self.params["backbone"]
        source_arg = "imagenet" if init == "imagenet" else str(Path(init).expanduser().resolve())
        try:
            if backbone != "vgg16":
                source = self.base.load_pretrained(source_arg)
            else:
                sd, source = pretrained_state_dict("vgg16", source_arg)
                feats = _features_only(sd, source)
                try:
                    self.features.load_state_dict(feats, strict=True)
                except RuntimeError as exc:
                    raise WeightsUnavailableError(f"{source}: not VGG16 conv weights of the expected shapes: {exc}") from exc
        except WeightsUnavailableError as exc:
            raise WeightsUnavailableError(f"{exc} (or train from random weights with --from-scratch)") from exc
        self.init_source = source
        self._start_loaded = True

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        """Restoring trained weights (a bundle) replaces any start weights."""
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        if not self._start_loaded:
            self.init_source = f"{self.params['init']} (restored from saved weights)"
        self._start_loaded = True
        return result

    def training_record(self) -> dict[str, Any]:
        return {"init_source": self.init_source}

    # -------------------------------------------------------------- inference
    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        """[-1, 1] gray or BGR -> the 3-channel RGB input the network expects
        (ImageNet normalisation when starting from pretrained weights)."""
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x.flip(1)  # BGR -> RGB
        if self.normalise_imagenet:
            x = ((x + 1.0) * 0.5 - self._mean.to(x.dtype)) / self._std.to(x.dtype)
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The base's last feature maps (vgg16: conv5_3 after ReLU, 1/16 of the input)."""
        if self.params["backbone"] != "vgg16":
            return next(iter(self.base(x).values()))
        return self.features(self._prepare(x))

    def logits(self, feats: torch.Tensor) -> torch.Tensor:
        pooled = feats.amax(dim=(2, 3)) if self.params["pooling"] == "max" else feats.mean(dim=(2, 3))
        return self.head(pooled)

    def class_activation_map(self, feats: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """CAM for class 1: ReLU(sum_k w_1k * A_k), bilinear to ``size`` -> (B, H, W)."""
        w = self.head.weight[1].float()
        cam = F.relu(torch.einsum("bchw,c->bhw", feats.float(), w))
        return F.interpolate(cam.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)

    def forward(self, x: torch.Tensor) -> ScoreOutput:
        feats = self.forward_features(x)
        probs = F.softmax(self.logits(feats).float(), dim=1)
        cam = self.class_activation_map(feats, (x.shape[-2], x.shape[-1]))
        return ScoreOutput(scores=probs[:, 1], anomaly_map=cam, reconstruction=None)

    # --------------------------------------------------------------- training
    def setup_training(self, info: FitInfo) -> None:
        self.set_class_balance(info.n_good, info.n_defect)
        self.load_start_weights()

    def set_class_balance(self, n_good: int, n_defect: int) -> None:
        """Class counts of the training split (called by the training loop);
        with ``class_weights="balanced"`` each class gets weight N / (2 n_c)."""
        if n_good < 1 or n_defect < 1:
            raise ValueError(
                f"vgg16 is a supervised classifier: it needs good AND defective training images, "
                f"got {n_good} good and {n_defect} defective"
            )
        if self.params["class_weights"] == "balanced":
            total = n_good + n_defect
            self.class_weight = torch.tensor([total / (2 * n_good), total / (2 * n_defect)], dtype=torch.float32)
        else:
            self.class_weight = None

    def set_base_frozen(self, frozen: bool) -> None:
        """Freeze the whole base, or unfreeze its top ``fine_tune`` share of stages
        (the stages below stay frozen: no gradient flows through them)."""
        stages = list(self.features if self.params["backbone"] == "vgg16" else self.base.stages)
        stages = [s for s in stages if any(True for _ in s.parameters())]
        n_train = 0 if frozen else max(1, math.ceil(float(self.params["fine_tune"]) * len(stages)))
        for i, stage in enumerate(stages):
            stage.requires_grad_(i >= len(stages) - n_train)

    def on_epoch_start(self, epoch: int) -> None:
        """Freeze the conv base for epochs ``0 .. freeze_epochs - 1`` (0-based)
        when it starts from pretrained weights; a random base is never frozen."""
        pretrained = self.params["init"] != "scratch"
        self.set_base_frozen(pretrained and epoch < int(self.params["freeze_epochs"]))

    def configure_optimizers(self, tcfg: TrainConfig) -> None:
        """Loads the start weights (first call) and creates Adam: the base at
        the model's ``lr`` parameter (the schema maps the user's learning rate
        onto it), the new head at ``head_lr``."""
        self.load_start_weights()
        head = list(self.head.parameters())
        head_ids = {id(p) for p in head}
        base = [p for p in self.parameters() if id(p) not in head_ids]
        groups = [{"params": base, "lr": float(self.params["lr"])}, {"params": head, "lr": float(self.params["head_lr"])}]
        self.optimizers = {"clf": torch.optim.Adam(groups, weight_decay=tcfg.weight_decay)}

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """Random horizontal/vertical flips, rotations within +-max_rotation
        degrees (reflected borders), brightness and contrast jitter; the
        output stays in [-1, 1]. Uses torch's global RNG (seeded by training)."""
        b = x.shape[0]
        dev = x.device
        flip_h = (torch.rand(b, device=dev) < 0.5).view(b, 1, 1, 1)
        x = torch.where(flip_h, x.flip(-1), x)
        flip_v = (torch.rand(b, device=dev) < 0.5).view(b, 1, 1, 1)
        x = torch.where(flip_v, x.flip(-2), x)
        max_rot = math.radians(float(self.params["max_rotation"]))
        if max_rot > 0:
            a = (torch.rand(b, device=dev) * 2 - 1) * max_rot
            cos, sin, zero = a.cos(), a.sin(), torch.zeros_like(a)
            theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
            grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        contrast = 0.8 + 0.4 * torch.rand(b, 1, 1, 1, device=dev, dtype=x.dtype)
        brightness = 0.2 * (torch.rand(b, 1, 1, 1, device=dev, dtype=x.dtype) * 2 - 1)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return ((x - mean) * contrast + mean + brightness).clamp(-1.0, 1.0)

    def training_step(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, float]:
        if not self.optimizers:
            raise RuntimeError("vgg16: call configure_optimizers() before training_step()")
        if y is None:
            raise ValueError("vgg16 is supervised: training_step needs labels (0 good, 1 defective)")
        y = y.to(device=x.device, dtype=torch.long)
        if self.training and self.params["augment"]:
            x = self.augment(x)
        weight = None if self.class_weight is None else self.class_weight.to(x.device)
        with self.autocast():
            logits = self.logits(self.forward_features(x))
            loss = F.cross_entropy(logits.float(), y, weight=weight)
        self.step(loss, self.optimizers["clf"])
        acc = (logits.detach().argmax(dim=1) == y).float().mean()
        return {"loss": float(loss.item()), "train_acc": float(acc.item())}
