"""Kept images: the FAIL and REVIEW parts' pictures beside the history.

A kept image lives under the history's image folder at
``YYYY-MM-DD/<id>_<verdict>.png`` (the row stores that relative path, so the
whole folder can be moved); it is PNG-encoded here and written atomically.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from ..fileio import atomic_write_bytes

log = logging.getLogger(__name__)


def kept_image_name(time_iso: str, record_id: int, verdict: str) -> Path:
    """Where a kept image lives under the image folder: ``YYYY-MM-DD/<id>_<verdict>.png``."""
    return Path(time_iso[:10]) / f"{record_id}_{verdict}.png"


def save_kept_image(target: Path, image: np.ndarray) -> bool:
    """Encode ``image`` as PNG and write it atomically to ``target``; a failure
    is logged and returns False, never fatal to recording."""
    try:
        ok, buf = cv2.imencode(".png", np.ascontiguousarray(image))
        if not ok:
            raise ValueError(f"cannot encode a {image.dtype} array of shape {image.shape} as PNG")
        atomic_write_bytes(target, buf.tobytes())
        return True
    except (OSError, ValueError, cv2.error) as exc:
        log.warning("history: could not keep image '%s': %s", target, exc)
        return False
