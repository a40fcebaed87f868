"""Image sources: camera, video file, folder and watched folder, behind one interface.

Each kind is declared once (:mod:`.kinds`, :mod:`.builtin_kinds`); a new kind registers itself.

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
from .kinds import SourceKind, kind_names, register_source_kind, source_kind, source_kinds, unregister_source_kind
from .spec import SourceSpec, parse_source
from .video import VIDEO_EXTENSIONS, VideoFileSource
from . import builtin_kinds  # noqa: F401,E402,I001 - registers camera, video, folder, watch


def build_source(spec: SourceSpec, **options: Any) -> ImageSource:
    """The ImageSource for a parsed spec (not opened yet: use ``with``);
    ``options`` go to its kind's factory (``loop=True``, ``recursive=True``, ...)."""
    return source_kind(spec.kind).build(spec.target, **options)


def open_source(spec: int | str | os.PathLike[str] | SourceSpec, **options: Any) -> ImageSource:
    """Build the source a user means by ``spec`` (see :mod:`.spec`; not opened
    yet: use ``with``). ``options`` go to the constructor. Raises
    ``SourceError`` naming the spec when it is none of the known kinds."""
    return build_source(parse_source(spec), **options)


__all__ = [
    "STATES",
    "CameraSource",
    "FolderSource",
    "Frame",
    "ImageSource",
    "SourceError",
    "SourceKind",
    "SourceSpec",
    "VIDEO_EXTENSIONS",
    "VideoFileSource",
    "WatchedFolderSource",
    "build_source",
    "kind_names",
    "open_source",
    "parse_source",
    "redact_url",
    "register_source_kind",
    "source_kind",
    "source_kinds",
    "unregister_source_kind",
]
