"""Reading image files into numpy arrays the way OpenCV lays them out.

Images in memory are uint8 or uint16 arrays: (H, W) gray, (H, W, 3) BGR or
(H, W, 4) BGRA. Files are read with ``np.fromfile`` + ``cv2.imdecode`` rather
than ``cv2.imread`` so that paths with non-ASCII characters work on Windows too.

What the header declares is checked before decoding (:mod:`.image_header`): a
file larger than ``MAX_IMAGE_PIXELS`` (a 0.5 MB PNG can declare 12000 × 12000)
or with several full-resolution pages (a multi-page TIFF, of which OpenCV
would return page 1 without a word) is refused with the reason, like any file
that cannot be decoded.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ..fileio import atomic_write_bytes
from .image_header import probe, structural_problem

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
)


#: the largest image read (268 megapixels: 1.5 GiB as 16-bit BGR); a camera image is far smaller
MAX_IMAGE_PIXELS = 1 << 28


class ImageReadError(ValueError):
    """An image file could not be read; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot read image '{self.path}': {reason}")


def _to_supported_dtype(img: np.ndarray) -> np.ndarray:
    """Bring an exotic decoded dtype (float, int8, int32, ...) into uint8/uint16."""
    if img.dtype in (np.uint8, np.uint16):
        return img
    if img.dtype == np.int8:
        return (img.astype(np.int16) + 128).astype(np.uint8)
    if img.dtype == np.int16:
        return (img.astype(np.int32) + 32768).astype(np.uint16)
    if np.issubdtype(img.dtype, np.floating):
        data = np.nan_to_num(img.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = float(data.min()), float(data.max())
        if lo >= 0.0 and hi <= 1.0:
            # Conventional [0, 1] float image (e.g. 32-bit TIFF from a camera SDK).
            scaled = data
        elif hi > lo:
            scaled = (data - lo) / (hi - lo)
        else:
            scaled = np.zeros_like(data)
        return np.round(scaled * 65535.0).astype(np.uint16)
    # Wider integer types: stretch the actual value range into 16 bit.
    data = img.astype(np.float64)
    lo, hi = float(data.min()), float(data.max())
    if lo >= 0 and hi <= 65535:
        return data.astype(np.uint16)
    scaled = (data - lo) / (hi - lo) if hi > lo else np.zeros_like(data)
    return np.round(scaled * 65535.0).astype(np.uint16)


def decode_image(buffer: bytes | np.ndarray, name: str | os.PathLike[str] = "<memory>") -> np.ndarray:
    """Decode encoded image bytes (PNG, JPEG, ...); ``name`` is used in errors."""
    data = np.frombuffer(buffer, dtype=np.uint8) if isinstance(buffer, (bytes, bytearray)) else buffer
    if data.size == 0:
        raise ImageReadError(name, "empty file")
    problem = structural_problem(data)
    if problem is not None:
        raise ImageReadError(name, problem)
    header = probe(data)
    if header is not None:
        if header.pixels > MAX_IMAGE_PIXELS:
            raise ImageReadError(name, f"declares {header.width} × {header.height} pixels "
                                       f"({header.pixels / 1e6:.0f} megapixels), more than the "
                                       f"{MAX_IMAGE_PIXELS / 1e6:.0f} Inspector reads")
        if header.pages > 1:
            raise ImageReadError(name, f"multi-page {header.format.upper()} ({header.pages} pages): Inspector scores "
                                       "one image per file; save each page as its own file")
    try:
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:  # pragma: no cover - depends on the OpenCV build
        raise ImageReadError(name, f"not a decodable image ({str(exc).strip()})") from exc
    if img is None:
        raise ImageReadError(name, "not a decodable image or unsupported format")
    if img.size == 0 or img.shape[0] == 0 or img.shape[1] == 0:
        raise ImageReadError(name, "zero-size image")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3 and img.shape[2] == 2:
        # Gray + alpha: keep the gray plane.
        img = img[:, :, 0]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (3, 4)):
        raise ImageReadError(name, f"unsupported image shape {img.shape}")
    return np.ascontiguousarray(_to_supported_dtype(img))


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file as uint8/uint16 (H, W), (H, W, 3) BGR or (H, W, 4) BGRA.

    Raises ``ImageReadError`` naming the file when it is missing, empty,
    not an image, or has zero size.
    """
    p = Path(path)
    if not p.is_file():
        if p.is_symlink() and not p.exists():
            raise ImageReadError(p, f"broken symbolic link (its target '{os.readlink(p)}' does not exist)")
        raise ImageReadError(p, "file not found" if not p.exists() else "not a file")
    try:
        data = np.fromfile(p, dtype=np.uint8)
    except OSError as exc:
        raise ImageReadError(p, f"cannot open file ({exc.strerror or exc})") from exc
    return decode_image(data, p)


def write_image(path: str | os.PathLike[str], img: np.ndarray, *, fsync: bool = True) -> None:
    """Write an image atomically (:mod:`inspection_core.fileio`); the extension
    picks the format. ``fsync=False`` only for output that can be regenerated
    (the generated demo data set).

    Works with non-ASCII paths (``cv2.imencode`` + a plain file write).
    """
    p = Path(path)
    ext = p.suffix.lower() or ".png"
    ok, buf = cv2.imencode(ext, img)
    if not ok:
        raise ValueError(f"cannot encode image for '{p}' as {ext}")
    atomic_write_bytes(p, buf.tobytes(), fsync=fsync)


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """True for a visible file whose extension is a known image extension."""
    p = Path(path)
    return p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")


def list_images(folder: str | os.PathLike[str], recursive: bool = False) -> list[Path]:
    """Image files in ``folder`` (sorted by path), by extension; hidden files are skipped.

    A broken symbolic link with an image name is listed too, so that the
    reader skips it with its reason and it is counted, never silently dropped.
    A missing folder gives an empty list (callers decide whether that is an error).
    """
    root = Path(folder)
    if not root.is_dir():
        return []
    it = root.rglob("*") if recursive else root.iterdir()
    out = [
        p
        for p in it
        if is_image_file(p)
        and (p.is_file() or (p.is_symlink() and not p.exists()))
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]
    return sorted(out)
