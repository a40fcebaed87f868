"""The one preprocessing path from a camera/file image to model input.

Training, evaluation, calibration and live inspection all call
``to_model_image`` then ``to_tensor``; a second, drifting copy of this code is
the most common cause of "scored well in evaluation, flags everything live".

Steps of ``to_model_image`` (fixed order):
1. bit depth -> 8 bit (16-bit values divided by 257 with rounding, i.e. the
   full dtype range maps onto 0..255; no per-image contrast stretch),
2. alpha channel dropped,
3. BGR -> gray with ``cv2.cvtColor`` when the model wants 1 channel,
4. resize to S x S: ``INTER_AREA`` when shrinking, ``INTER_LINEAR`` when
   enlarging (per axis when one axis shrinks and the other grows). Non-square
   images are stretched to a square, not cropped or padded, so that nothing
   on the part is cut away; train and inspect with the same camera framing,
5. gray -> BGR by replicating the plane when the model wants 3 channels,
6. optional illumination normalisation (``normalize``, recorded in the
   bundle): ``"mean_std"`` maps each image to a fixed mean and contrast
   (mean 128, standard deviation 48 over all its pixels and channels,
   clipped to 0..255), so that a global brightness or gain change of the
   lighting or camera is not taken for a defect, nor a defect for one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:  # torch is imported lazily: the GUI and sources start fast
    import torch

from .images import _to_supported_dtype


NORMALIZATIONS = ("none", "mean_std")
NORM_MEAN, NORM_STD = 128.0, 48.0


@dataclass(frozen=True)
class Preprocessing:
    """Model input: square side ``image_size``, ``channels`` (1 gray, 3 BGR)
    and the illumination normalisation (``"none"`` or ``"mean_std"``)."""

    image_size: int
    channels: int
    normalize: str = "none"

    def __post_init__(self) -> None:
        if int(self.image_size) < 1:
            raise ValueError(f"image size must be positive, got {self.image_size}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if self.normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {', '.join(NORMALIZATIONS)}, got {self.normalize!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"image_size": int(self.image_size), "channels": int(self.channels), "normalize": self.normalize}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Preprocessing":
        return cls(image_size=int(d["image_size"]), channels=int(d["channels"]), normalize=str(d.get("normalize", "none")))


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Convert any supported bit depth to uint8 (16 bit: round(x / 257))."""
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.bool_:
        return img.astype(np.uint8) * 255
    img = _to_supported_dtype(img)
    if img.dtype == np.uint8:
        return img
    return ((img.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    if h == size and w == size:
        return img
    if h >= size and w >= size:
        return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    if h <= size and w <= size:
        return cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)
    # One axis shrinks, the other grows: resize each axis with its own filter.
    interp_w = cv2.INTER_AREA if w > size else cv2.INTER_LINEAR
    interp_h = cv2.INTER_AREA if h > size else cv2.INTER_LINEAR
    img = cv2.resize(img, (size, h), interpolation=interp_w)
    return cv2.resize(img, (size, size), interpolation=interp_h)


def to_model_image(img: np.ndarray, pp: Preprocessing) -> np.ndarray:
    """Turn a decoded image (any size, 8/16 bit, gray/BGR/BGRA) into model
    geometry: C-contiguous uint8 (S, S, C)."""
    return normalize(to_geometry(img, pp), pp)


def normalize(img: np.ndarray, pp: Preprocessing) -> np.ndarray:
    """Step 6 alone: the illumination normalisation of an image in model geometry."""
    if pp.normalize == "mean_std":
        return np.ascontiguousarray(normalize_mean_std(img))
    return img


def to_geometry(img: np.ndarray, pp: Preprocessing) -> np.ndarray:
    """Steps 1-5 of :func:`to_model_image`: model geometry before any
    normalisation (what the frame check looks at)."""
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (3, 4)):
        raise ValueError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image, got shape {img.shape}")
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f"cannot preprocess a zero-size image (shape {img.shape})")
    img = to_uint8(img)
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    if pp.channels == 1 and img.ndim == 3:
        img = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_BGR2GRAY)
    img = _resize(np.ascontiguousarray(img), int(pp.image_size))
    if img.ndim == 2:
        img = img[:, :, None]
        if pp.channels == 3:
            img = np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img)


def normalize_mean_std(img: np.ndarray) -> np.ndarray:
    """uint8 image -> the same image at mean 128 and standard deviation 48
    (all pixels and channels together, so colour ratios are kept), uint8."""
    f = img.astype(np.float32)
    mean, std = float(f.mean()), float(f.std())
    out = (f - mean) * (NORM_STD / max(std, 1.0)) + NORM_MEAN
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def to_tensor(batch: np.ndarray | Sequence[np.ndarray]) -> "torch.Tensor":
    """uint8 (N, S, S, C) array or list of (S, S, C) arrays -> float32 (N, C, S, S) in [-1, 1]."""
    if isinstance(batch, np.ndarray):
        arr = batch
        if arr.ndim == 3:
            raise ValueError(
                f"to_tensor expects a batch (N, S, S, C) or a list of (S, S, C) images, got shape {arr.shape}"
            )
    else:
        items = [np.asarray(b) for b in batch]
        if not items:
            raise ValueError("to_tensor got an empty list of images")
        items = [b[:, :, None] if b.ndim == 2 else b for b in items]
        try:
            arr = np.stack(items)
        except ValueError as exc:
            shapes = sorted({b.shape for b in items})
            raise ValueError(f"images in a batch must have one shape, got {shapes}") from exc
    if arr.ndim != 4:
        raise ValueError(f"expected a uint8 batch (N, S, S, C), got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"expected uint8 images (use to_model_image first), got {arr.dtype}")
    import torch

    t = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2)
    return t.float().div_(127.5).sub_(1.0).contiguous()


def from_tensor(t: "torch.Tensor") -> np.ndarray:
    """float (N, C, S, S) in [-1, 1] -> uint8 (N, S, S, C); values are clamped and rounded.

    A single (C, S, S) image gives a batch of one.
    """
    import torch

    t = t.detach()
    if t.ndim == 3:
        t = t.unsqueeze(0)
    if t.ndim != 4:
        raise ValueError(f"expected a tensor (N, C, S, S), got shape {tuple(t.shape)}")
    x = ((t.float().cpu() + 1.0) * 127.5).round_().clamp_(0.0, 255.0)
    return np.ascontiguousarray(x.to(torch.uint8).permute(0, 2, 3, 1).numpy())


def prepare_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Ground-truth mask (any bit depth, 1-4 channels) -> bool (S, S), nearest neighbour.

    A pixel is defective when any channel is non-zero.
    """
    m: np.ndarray = np.asarray(mask)
    if m.ndim == 3:
        m = np.any(m > 0, axis=2)
    elif m.ndim != 2:
        raise ValueError(f"expected a 2-D mask, got shape {m.shape}")
    else:
        m = m > 0
    m8: np.ndarray = m.astype(np.uint8)
    if m8.shape != (size, size):
        m8 = cv2.resize(m8, (size, size), interpolation=cv2.INTER_NEAREST)
    return m8.astype(bool)
