"""Image sources: camera, video file, folder and watched folder, behind one interface.

>>> with open_source("parts/") as src:          # doctest: +SKIP
...     for frame in src:
...         inspector.predict(frame.image)

See ``base`` for the reading contract (``read``/``poll``/``finished``/``state``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from .base import STATES, Frame, ImageSource, SourceError
from .camera import CameraSource, redact_url
from .folder import FolderSource, WatchedFolderSource
from .video import VIDEO_EXTENSIONS, VideoFileSource

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
WATCH_PREFIX = "watch:"


def open_source(spec: int | str | os.PathLike[str], **options: Any) -> ImageSource:
    """Build the source a user means by ``spec`` (not opened yet: use ``with``).

    - an ``int`` or a digit string: camera index -> ``CameraSource``
    - a URL (``rtsp://``, ``http://``, ...): stream -> ``CameraSource``
    - ``"watch:/path"``: ``WatchedFolderSource``
    - a path ending in a video extension (mp4, avi, mkv, mov, m4v, webm): ``VideoFileSource``
    - an existing folder: ``FolderSource``

    ``options`` go to the constructor (``loop=True``, ``recursive=True``, ...).
    Raises ``SourceError`` when ``spec`` is none of these.
    """
    if isinstance(spec, bool):
        raise SourceError(f"not an image source: {spec!r}")
    if isinstance(spec, int):
        return CameraSource(spec, **options)
    text = os.fspath(spec).strip() if not isinstance(spec, str) else spec.strip()
    if not text:
        raise SourceError("no image source given (expected a camera index, URL, video file or folder)")
    if text.isdigit():
        return CameraSource(int(text), **options)
    if _URL.match(text):
        return CameraSource(text, **options)
    if text.lower().startswith(WATCH_PREFIX):
        folder = text[len(WATCH_PREFIX):].strip()
        if not folder:
            raise SourceError("'watch:' needs a folder, e.g. watch:/data/incoming")
        return WatchedFolderSource(Path(folder).expanduser(), **options)
    path = Path(text).expanduser()
    if path.suffix.lower() in VIDEO_EXTENSIONS:
        return VideoFileSource(path, **options)
    if path.is_dir():
        return FolderSource(path, **options)
    if not path.exists():
        raise SourceError(f"image source '{text}': no such file or folder")
    raise SourceError(
        f"image source '{text}': not a folder or a video file "
        f"({', '.join(sorted(e[1:] for e in VIDEO_EXTENSIONS))})"
    )


__all__ = [
    "STATES",
    "CameraSource",
    "FolderSource",
    "Frame",
    "ImageSource",
    "SourceError",
    "VIDEO_EXTENSIONS",
    "VideoFileSource",
    "WatchedFolderSource",
    "open_source",
    "redact_url",
]
