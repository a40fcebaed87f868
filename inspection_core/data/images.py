"""Reading image files into numpy arrays the way OpenCV lays them out.

Images in memory are uint8 or uint16 arrays: (H, W) gray, (H, W, 3) BGR or
(H, W, 4) BGRA. Files are read with ``np.fromfile`` + ``cv2.imdecode`` rather
than ``cv2.imread`` so that paths with non-ASCII characters work on Windows too.

What the header declares is checked before decoding (:mod:`.image_header`): a
file larger than ``MAX_IMAGE_PIXELS`` (a 0.5 MB PNG can declare 12000 × 12000)
or with several full-resolution pages or frames (a multi-page TIFF, an
animated GIF, WebP or PNG, of which OpenCV would return the first without a
word) is refused with the reason, like any file that cannot be decoded. A
JPEG's EXIF orientation is applied (the image as its user sees it); other
files are read as stored (16 bit and alpha kept).

libpng prints on its own (``libpng warning: iCCP: known incorrect sRGB
profile``, ``libpng error: ...``) beside the reader's one message naming the
file. A PNG's metadata chunks, which libpng warns about, are left out before
decoding, and a damaged (a chunk failing its checksum) or cut PNG is refused
before libpng sees it (:func:`.image_header.structural_problem`). The
process's stderr is never redirected: a library's line that still gets out
(a crafted PNG whose compressed data is wrong under a correct checksum, a
JPEG decoder's warning) is left as it is, rather than risk losing another
thread's output or a crash trace.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from ..fileio import atomic_write_bytes
from .image_header import png_ancillary_chunks, probe, structural_problem

#: file names listed as images: the formats every OpenCV build that Inspector
#: supports decodes (GIF: OpenCV 4.11 and later; an older one refuses a GIF by name)
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".bmp", ".dib", ".tif", ".tiff", ".webp", ".gif",
     ".pgm", ".ppm", ".pbm", ".pnm"}
)

_FORMAT_NAMES = {"gif": "GIF", "webp": "WebP", "png": "PNG (APNG)", "tiff": "TIFF"}


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


# ------------------------------------------------------------ decoder output


#: a 1 × 1 white GIF
_TINY_GIF = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00"
             b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")


@lru_cache(maxsize=1)
def _opencv_reads_gif() -> bool:
    """Whether this OpenCV decodes GIF (4.11 and later do)."""
    try:
        return cv2.imdecode(np.frombuffer(_TINY_GIF, dtype=np.uint8), cv2.IMREAD_UNCHANGED) is not None
    except cv2.error:
        return False


# ------------------------------------------------------------ decoding


def _imdecode(name: str | os.PathLike[str], data: np.ndarray, flags: int) -> np.ndarray | None:
    try:
        return cv2.imdecode(data, flags)
    except cv2.error as exc:  # pragma: no cover - depends on the OpenCV build
        raise ImageReadError(name, f"not a decodable image ({str(exc).strip()})") from exc


def _without_ancillary_chunks(data: np.ndarray) -> np.ndarray:
    """A PNG's bytes less the chunks that do not change its pixels (ICC
    profile, text, EXIF, physical size, ...): libpng warns about many of them
    (``iCCP: known incorrect sRGB profile``, a text chunk's checksum) and
    OpenCV reads them for nothing. Critical chunks and ``tRNS``
    (transparency) are kept. Other data is returned as it is."""
    spans = png_ancillary_chunks(data.data)  # the array's bytes, as a memoryview
    if not spans:
        return data
    pieces, at = [], 0
    for a, b in spans:
        pieces.append(data[at:a])
        at = b
    pieces.append(data[at:])
    return np.concatenate(pieces)


def decode_image(buffer: bytes | np.ndarray, name: str | os.PathLike[str] = "<memory>") -> np.ndarray:
    """Decode encoded image bytes (PNG, JPEG, ...); ``name`` is used in errors."""
    data = np.frombuffer(buffer, dtype=np.uint8) if isinstance(buffer, (bytes, bytearray)) else buffer
    if data.size == 0:
        raise ImageReadError(name, "empty file")
    problem = structural_problem(data.data)  # the array's bytes, as a memoryview
    if problem is not None:
        raise ImageReadError(name, problem)
    header = probe(data.data)
    if header is not None:
        if header.pixels > MAX_IMAGE_PIXELS:
            raise ImageReadError(name, f"declares {header.width} × {header.height} pixels "
                                       f"({header.pixels / 1e6:.0f} megapixels), more than the "
                                       f"{MAX_IMAGE_PIXELS / 1e6:.0f} Inspector reads")
        if header.pages > 1:
            raise ImageReadError(name, f"multi-page {header.format.upper()} ({header.pages} pages): Inspector scores "
                                       "one image per file; save each page as its own file")
        if header.frames > 1:
            kind = _FORMAT_NAMES.get(header.format, header.format.upper())
            raise ImageReadError(name, f"animated {kind} ({header.frames} frames): Inspector scores one image "
                                       "per file; save the frame to inspect as its own file")
    flags = cv2.IMREAD_UNCHANGED  # 16 bit and alpha kept; EXIF orientation ignored
    if header is not None and header.format == "jpeg" and header.orientation != 1:
        # A JPEG is 8-bit without alpha: reading it as gray or colour loses
        # nothing, and OpenCV then turns it as its EXIF orientation says.
        flags = cv2.IMREAD_GRAYSCALE if header.channels == 1 else cv2.IMREAD_COLOR
    img = _imdecode(name, _without_ancillary_chunks(data), flags)
    if img is None:
        if header is not None and header.format == "gif" and not _opencv_reads_gif():
            raise ImageReadError(name, f"a GIF this OpenCV ({cv2.__version__}) does not decode (OpenCV 4.11 and "
                                       "later read GIF); save it as PNG")
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
