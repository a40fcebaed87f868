"""The image-source contract shared by camera, video file, folder and watched folder.

Reading:
- ``read()`` blocks until a frame is available and returns ``None`` only when the
  source is finished: exhausted (folder done, video ended) or closed. A live
  source (camera, watched folder) never finishes on its own, so ``close()`` from
  another thread is how a blocked ``read()`` is released (within ~0.2 s).
- ``poll(timeout)`` waits at most ``timeout`` seconds and returns ``None`` when
  no frame came; ``finished`` tells "nothing yet" from "nothing ever again".
  A GUI worker loop uses ``poll`` and checks its own stop flag between calls.
- Transient trouble (a camera unplugged, a stream dropped) never raises; it
  shows in ``state`` ("reconnecting") and ``last_error``. Only a source that
  cannot start at all (missing video file, missing folder) raises ``SourceError``
  from ``open()``.

``Frame.timestamp`` is the wall-clock time (``time.time()``) when the frame was
acquired, for every kind of source; ``Frame.ref`` identifies the image in the
history (a file path, ``"part.mp4#frame=12"``, ``"camera:0#frame=5"``).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

#: Values of ``ImageSource.state``.
STATES = ("idle", "running", "reconnecting", "ended", "error")


class SourceError(RuntimeError):
    """An image source cannot be opened; the message names it and says why."""


@dataclass(frozen=True)
class Frame:
    """One image from a source.

    ``image``: uint8/uint16 array as OpenCV gives it; ``index``: 0-based count of
    frames this source delivered since ``open()``; ``timestamp``: ``time.time()``
    at acquisition; ``ref``: where the image came from (recorded in the history).
    """

    image: np.ndarray
    index: int
    timestamp: float
    ref: str


class ImageSource(ABC):
    """Base class: a context manager and an iterator of ``Frame`` objects."""

    #: True for sources that never end on their own (camera, watched folder).
    is_live: bool = False

    def __init__(self, name: str) -> None:
        self.name = name
        self.state: str = "idle"
        self.last_error: str = ""
        self._closed = threading.Event()
        self._closed.set()  # not open yet
        self._index = 0

    # ---------------------------------------------------------------- lifetime

    def open(self) -> "ImageSource":
        """Start the source (idempotent while open; reopening after ``close`` restarts it)."""
        if not self._closed.is_set():
            return self
        self._index = 0
        self.last_error = ""
        self.state = "idle"
        self._closed.clear()
        try:
            self._open()
        except BaseException as exc:
            self._closed.set()
            self.state = "error"
            self.last_error = str(exc)
            raise
        return self

    def close(self) -> None:
        """Stop the source and release what it holds (idempotent, thread-safe)."""
        if self._closed.is_set():
            return
        self._closed.set()
        try:
            self._close()
        finally:
            if self.state not in ("ended", "error"):
                self.state = "idle"

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    @property
    def finished(self) -> bool:
        """True when no frame will ever come again: closed, ended, or failed."""
        return self._closed.is_set() or self.state in ("ended", "error")

    # ---------------------------------------------------------------- reading

    def read(self) -> Frame | None:
        """The next frame, waiting as long as needed; ``None`` once finished."""
        while not self.finished:
            frame = self.poll(0.2)
            if frame is not None:
                return frame
        return None

    def poll(self, timeout: float = 0.0) -> Frame | None:
        """The next frame if one comes within ``timeout`` seconds, else ``None``."""
        if self._closed.is_set():
            return None
        if self.state in ("ended", "error"):
            return None
        frame = self._poll(max(0.0, float(timeout)))
        return frame

    def _next_index(self) -> int:
        i = self._index
        self._index += 1
        return i

    # ---------------------------------------------------------------- subclass hooks

    @property
    def fps(self) -> float | None:
        """Nominal frames per second, when the source has one."""
        return None

    @abstractmethod
    def _open(self) -> None:
        """Acquire resources; raise ``SourceError`` when the source cannot start at all."""

    @abstractmethod
    def _close(self) -> None:
        """Release resources (may be called from another thread than the reader)."""

    @abstractmethod
    def _poll(self, timeout: float) -> Frame | None:
        """Return a frame within ``timeout`` s or ``None``; set ``state="ended"`` when exhausted."""

    # ---------------------------------------------------------------- protocols

    def __enter__(self) -> "ImageSource":
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Frame]:
        """Frames until the source finishes (opens it first when needed)."""
        if self._closed.is_set() and self.state not in ("ended", "error"):
            self.open()
        while (frame := self.read()) is not None:
            yield frame

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, state={self.state!r})"
