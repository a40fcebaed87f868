"""Source specs: what a user types to name an image source, parsed once.

``inspector-app --source``, the File ▸ Open source dialogs, the Inspect view's
source picker, the station settings' ``default_source`` and scripts all go
through :func:`parse_source`, so a spec means the same everywhere:

=====================================  =========  =========================================
spec                                   kind       notes
=====================================  =========  =========================================
``0``, ``1``, ``camera:2``             camera     a camera index
``rtsp://…``, ``http://…``             camera     a stream URL (``camera:`` optional)
``watch:/data/incoming``               watch      a folder the line's software drops images in
``video:/clips/part.avi``, ``*.mp4``   video      a video file (by its extension)
``folder:/parts``, an existing folder  folder     the images in a folder
=====================================  =========  =========================================

Anything else is an error that names the spec: a path that does not exist is
never taken for a camera.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .base import SourceError
from .video import VIDEO_EXTENSIONS

SOURCE_KINDS = ("camera", "video", "folder", "watch")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_INDEX = re.compile(r"^[+-]?\d+$")
#: camera indices OpenCV accepts (a negative one crashes some of its backends)
MAX_CAMERA_INDEX = 9999


def check_camera_index(index: int) -> int:
    """``index`` when it is a usable camera index, else ``SourceError`` saying why."""
    if isinstance(index, bool) or not 0 <= index <= MAX_CAMERA_INDEX:
        raise SourceError(f"camera index must be between 0 and {MAX_CAMERA_INDEX}, got {index!r}")
    return index


def _check_camera_path(target: str) -> None:
    """A camera named by a path must be a device that exists (``/dev/video0``): a folder or a missing
    path picked as "camera" would otherwise be a camera that keeps reconnecting."""
    path = Path(target).expanduser()
    if path.is_dir():
        raise SourceError(f"camera '{target}' is a folder: choose the image folder source for it")
    if not path.exists():
        raise SourceError(f"camera '{target}': no such device (a camera is a number, a stream URL or a device such "
                          "as /dev/video0)")
    if path.is_file():
        raise SourceError(f"camera '{target}' is a file: choose the video file source for it")


@dataclass(frozen=True)
class SourceSpec:
    """A parsed source: its kind and its target (camera index or URL, or a path)."""

    kind: str
    target: str

    def __post_init__(self) -> None:
        if self.kind not in SOURCE_KINDS:
            raise SourceError(f"unknown source kind {self.kind!r}; expected one of {', '.join(SOURCE_KINDS)}")
        if not self.target.strip():
            what = {"camera": "a camera index or stream URL", "video": "a video file", "folder": "a folder",
                    "watch": "a folder, e.g. watch:/data/incoming"}[self.kind]
            raise SourceError(f"'{self.kind}:' needs {what}")
        if self.kind == "camera" and _INDEX.match(self.target.strip()):
            check_camera_index(int(self.target))
        elif self.kind == "camera" and not _URL.match(self.target.strip()):
            _check_camera_path(self.target.strip())

    @property
    def path(self) -> Path:
        """The target as a path (video, folder, watch)."""
        return Path(self.target).expanduser()

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}"


def _guess(text: str) -> SourceSpec:
    if _INDEX.match(text) or _URL.match(text):
        return SourceSpec("camera", text)
    path = Path(text).expanduser()
    if path.suffix.lower() in VIDEO_EXTENSIONS:
        return SourceSpec("video", text)
    if path.is_dir():
        return SourceSpec("folder", text)
    if not path.exists():
        raise SourceError(f"image source '{text}': no such file or folder (a camera is a number or a stream URL)")
    raise SourceError(f"image source '{text}': not a folder or a video file "
                      f"({', '.join(sorted(e[1:] for e in VIDEO_EXTENSIONS))})")


def parse_source(spec: int | str | os.PathLike[str] | SourceSpec, kind: str | None = None) -> SourceSpec:
    """The :class:`SourceSpec` a user means (see the module docstring).
    ``kind`` (e.g. from a picker) says what the text is instead of guessing;
    a ``kind:`` prefix in the text does the same."""
    if isinstance(spec, SourceSpec):
        return spec
    if isinstance(spec, bool):
        raise SourceError(f"not an image source: {spec!r}")
    if isinstance(spec, int):
        return SourceSpec("camera", str(spec))
    text = os.fspath(spec).strip()
    if not text:
        raise SourceError("no image source given (expected a camera index, URL, video file or folder)")
    if kind is not None:
        return SourceSpec(kind, text)
    head, sep, rest = text.partition(":")
    if sep and head.lower() in SOURCE_KINDS and not rest.startswith("//"):
        return SourceSpec(head.lower(), rest.strip())
    return _guess(text)


__all__ = ["MAX_CAMERA_INDEX", "SOURCE_KINDS", "SourceSpec", "check_camera_index", "parse_source"]
