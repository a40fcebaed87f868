"""The built-in source kinds: camera, video file, image folder, watched folder.

Registered in this order, which is the order plain text is guessed in: a
number or a URL is a camera, a path with a video extension a video, an
existing folder a folder; a watched folder is only ever named (``watch:``).
"""

from __future__ import annotations

from pathlib import Path

from .camera import CameraSource
from .folder import FolderSource, WatchedFolderSource
from .kinds import SourceKind, register_source_kind
from .spec import check_camera_target, is_camera_text
from .video import VIDEO_EXTENSIONS, VideoFileSource

_VIDEO_FILTER = f"Videos ({' '.join('*' + e for e in sorted(VIDEO_EXTENSIONS))});;All files (*)"

CAMERA = register_source_kind(SourceKind(
    name="camera", label="Camera / stream", hint="camera index (0, 1, …) or stream URL (rtsp://…)",
    needs="a camera index or stream URL", factory=CameraSource, example="0", pacing="arrival",
    guess=is_camera_text, check=check_camera_target, order=40,
))
VIDEO = register_source_kind(SourceKind(
    name="video", label="Video file", hint="video file (.mp4, .avi, …)", needs="a video file",
    factory=lambda target, **o: VideoFileSource(Path(target).expanduser(), **o), browse="file",
    browse_filter=_VIDEO_FILTER, pacing="realtime", line_options={"realtime": True},
    guess=lambda text: Path(text).expanduser().suffix.lower() in VIDEO_EXTENSIONS, order=30,
))
FOLDER = register_source_kind(SourceKind(
    name="folder", label="Image folder", hint="folder of images", needs="a folder",
    factory=lambda target, **o: FolderSource(Path(target).expanduser(), **o), browse="folder", lossless=True,
    pacing="rate", line_options={"recursive": True}, guess=lambda text: Path(text).expanduser().is_dir(), order=10,
))
WATCH = register_source_kind(SourceKind(
    name="watch", label="Watched folder", hint="folder where the line's camera software drops images",
    needs="a folder, e.g. watch:/data/incoming",
    factory=lambda target, **o: WatchedFolderSource(Path(target).expanduser(), **o), browse="folder",
    lossless=True, pacing="arrival", order=20,
))

__all__ = ["CAMERA", "FOLDER", "VIDEO", "WATCH"]
