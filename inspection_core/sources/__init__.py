"""Image sources: camera, video file, folder and watched folder, behind one interface.

>>> with open_source("parts/") as src:          # doctest: +SKIP
...     for frame in src:
...         inspector.predict(frame.image)

See ``base`` for the reading contract (``read``/``poll``/``finished``/``state``).
"""

from __future__ import annotations

import os
from typing import Any

from .base import STATES, Frame, ImageSource, SourceError
from .camera import CameraSource, redact_url
from .folder import FolderSource, WatchedFolderSource
from .spec import SOURCE_KINDS, SourceSpec, parse_source
from .video import VIDEO_EXTENSIONS, VideoFileSource

def build_source(spec: SourceSpec, **options: Any) -> ImageSource:
    """The ImageSource for a parsed spec (not opened yet: use ``with``);
    ``options`` go to its constructor (``loop=True``, ``recursive=True``, ...)."""
    if spec.kind == "camera":
        return CameraSource(spec.target, **options)
    if spec.kind == "watch":
        return WatchedFolderSource(spec.path, **options)
    if spec.kind == "video":
        return VideoFileSource(spec.path, **options)
    return FolderSource(spec.path, **options)


def open_source(spec: int | str | os.PathLike[str] | SourceSpec, **options: Any) -> ImageSource:
    """Build the source a user means by ``spec`` (see :mod:`.spec`; not opened
    yet: use ``with``). ``options`` go to the constructor. Raises
    ``SourceError`` naming the spec when it is none of the known kinds."""
    return build_source(parse_source(spec), **options)


__all__ = [
    "SOURCE_KINDS",
    "STATES",
    "CameraSource",
    "FolderSource",
    "Frame",
    "ImageSource",
    "SourceError",
    "SourceSpec",
    "VIDEO_EXTENSIONS",
    "VideoFileSource",
    "WatchedFolderSource",
    "build_source",
    "open_source",
    "parse_source",
    "redact_url",
]
