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
never taken for a camera. The kinds and how each is guessed are the registry's
(:mod:`.kinds`): a registered kind is parsed like the built-in ones.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .base import SourceError
from .kinds import kind_names, source_kind
from .video import VIDEO_EXTENSIONS

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_INDEX = re.compile(r"^[+-]?\d+$")
#: camera indices OpenCV accepts (a negative one crashes some of its backends)
MAX_CAMERA_INDEX = 9999


def check_camera_index(index: int) -> int:
    """``index`` when it is a usable camera index, else ``SourceError`` saying why."""
    if isinstance(index, bool) or not 0 <= index <= MAX_CAMERA_INDEX:
        raise SourceError(f"camera index must be between 0 and {MAX_CAMERA_INDEX}, got {index!r}")
    return index


def is_camera_text(text: str) -> bool:
    """Whether plain text names a camera: an index or a stream URL."""
    return bool(_INDEX.match(text) or _URL.match(text))


def check_camera_target(target: str) -> None:
    """``SourceError`` unless ``target`` is a usable camera index, a URL or an existing device."""
    if _INDEX.match(target):
        check_camera_index(int(target))
    elif not _URL.match(target):
        _check_camera_path(target)


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
        kind = source_kind(self.kind)
        if not self.target.strip():
            raise SourceError(f"'{self.kind}:' needs {kind.needs}")
        if kind.check is not None:
            kind.check(self.target.strip())

    @property
    def path(self) -> Path:
        """The target as a path (video, folder, watch)."""
        return Path(self.target).expanduser()

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}"


def _guess(text: str) -> SourceSpec:
    for name in kind_names():
        guess = source_kind(name).guess
        if guess is not None and guess(text):
            return SourceSpec(name, text)
    path = Path(text).expanduser()
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
    if sep and head.lower() in kind_names() and not rest.startswith("//"):
        return SourceSpec(head.lower(), rest.strip())
    return _guess(text)


__all__ = ["MAX_CAMERA_INDEX", "SourceSpec", "check_camera_index", "check_camera_target", "is_camera_text",
           "parse_source"]
