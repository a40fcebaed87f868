"""Video file source: the frames of a video file through ``cv2.VideoCapture``."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from .base import Frame, ImageSource, SourceError

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS: frozenset[str] = frozenset({".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm"})


class VideoFileSource(ImageSource):
    """Frames of a video file, refs ``"name.mp4#frame=N"`` (N = frame number in the file).

    ``loop``: start again at the end (demos); ``realtime``: deliver frames no
    faster than the file's frame rate (demos; otherwise as fast as they decode).
    ``open()`` raises ``SourceError`` naming the file when it is missing or has
    no frame OpenCV can decode.
    """

    def __init__(self, path: str | os.PathLike[str], loop: bool = False, realtime: bool = False) -> None:
        self.path = Path(path)
        super().__init__(self.path.name)
        self.loop = loop
        self.realtime = realtime
        self._cap: cv2.VideoCapture | None = None
        self._fps: float | None = None
        self._frame_count: int | None = None
        self._pos = 0  # frame number in the file of the next frame
        self._pending: np.ndarray | None = None  # first frame, decoded by open() as a check
        self._t0 = 0.0  # monotonic time of the first delivered frame (realtime pacing)
        self._delivered = 0
        self._lock = threading.Lock()  # close() from another thread waits for a decode in progress

    @property
    def fps(self) -> float | None:
        return self._fps

    @property
    def frame_count(self) -> int | None:
        """Frames in the file as its header says (may be approximate for some containers)."""
        return self._frame_count

    def _capture(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"video file '{self.path}': cannot be opened (not a video OpenCV can decode)")
        return cap

    def _open(self) -> None:
        if not self.path.is_file():
            what = "not found" if not self.path.exists() else "not a file"
            raise SourceError(f"video file '{self.path}': {what}")
        cap = self._capture()
        ok, first = cap.read()
        if not ok or first is None:
            cap.release()
            raise SourceError(f"video file '{self.path}': no decodable frame")
        fps = cap.get(cv2.CAP_PROP_FPS)
        self._fps = float(fps) if fps and np.isfinite(fps) and 0 < fps < 1000 else None
        n = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self._frame_count = int(n) if n and np.isfinite(n) and n > 0 else None
        self._cap = cap
        self._pending = first
        self._pos = 0
        self._delivered = 0
        self.state = "running"

    def _close(self) -> None:
        with self._lock:
            if self._cap is not None:
                self._cap.release()
                self._cap = None
            self._pending = None

    def _decode(self) -> np.ndarray | None:
        if self._pending is not None:
            image, self._pending = self._pending, None
            return image
        if self._cap is None:
            return None
        ok, image = self._cap.read()
        if ok and image is not None:
            return image
        if not self.loop or self._pos == 0:
            return None
        # Loop: reopen rather than seek (seeking is unreliable with some codecs).
        self._cap.release()
        self._cap = None
        try:
            self._cap = self._capture()
        except SourceError as exc:  # deleted or replaced while playing
            self.last_error = str(exc)
            return None
        self._pos = 0
        ok, image = self._cap.read()
        return image if ok else None

    def _note_early_end(self) -> None:
        """A file that ends well before the frame count in its header is
        truncated or damaged: say so instead of ending quietly half-way (the
        count may be a little off for some containers, hence the margin)."""
        n = self._frame_count
        if n is None or self.loop or self.last_error:
            return
        if self._pos < n - max(2, n // 100):
            self.last_error = (f"video file '{self.path.name}' ended at frame {self._pos} of the {n} its header "
                               "announces: the file is truncated or damaged")
            log.warning("%s", self.last_error)

    def _poll(self, timeout: float) -> Frame | None:
        if self.realtime and self._fps and self._delivered > 0:
            due = self._t0 + self._delivered / self._fps
            wait = due - time.monotonic()
            if wait > timeout:
                self._closed.wait(timeout)
                return None
            if wait > 0 and self._closed.wait(wait):
                return None
        with self._lock:
            if self.closed:
                return None
            image = self._decode()
        if image is None:
            self._note_early_end()
            self.state = "ended"
            return None
        if self._delivered == 0:
            self._t0 = time.monotonic()
        self._delivered += 1
        ref = f"{self.path.name}#frame={self._pos}"
        self._pos += 1
        return Frame(image, self._next_index(), time.time(), ref)
