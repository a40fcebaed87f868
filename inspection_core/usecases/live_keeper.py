"""The live line's kept-image writer: FAIL/REVIEW images written after their
history row is committed, on a thread of their own, so that a camera-sized PNG
never holds up the next part."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any


class ImageKeeper:
    """Writes queued images with ``attach(record_id, image)`` (returns None when
    the image could not be kept); ``on_error(message)`` is told of each image
    not kept. The queue is bounded, so a slow disk slows the line instead of
    dropping evidence."""

    def __init__(self, attach: Callable[[int, Any], Any], on_error: Callable[[str], None], maxsize: int = 16) -> None:
        self._attach = attach
        self._on_error = on_error
        self._queue: queue.Queue[tuple[int, Any, str] | None] = queue.Queue(maxsize=maxsize)
        self._thread: threading.Thread | None = None
        self.kept = 0

    def put(self, record_id: int, image: Any, ref: str) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="keeper", daemon=True)
            self._thread.start()
        self._queue.put((record_id, image, ref))

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            record_id, image, ref = item
            try:
                if self._attach(record_id, image) is None:
                    self._on_error(f"{ref}: recorded, but its image could not be kept (see the log)")
                else:
                    self.kept += 1
            except Exception as exc:  # noqa: BLE001 - shown; the row itself is committed
                self._on_error(f"{ref}: recorded, but its image could not be kept ({exc})")

    def stop(self, timeout_s: float) -> bool:
        """Write every queued image, then end the writer (True when it finished in time)."""
        if self._thread is None:
            return True
        self._queue.put(None)
        self._thread.join(timeout_s + 10.0)  # images already scored are evidence: give them time
        done = not self._thread.is_alive()
        if done:
            self._thread = None
        return done


__all__ = ["ImageKeeper"]
