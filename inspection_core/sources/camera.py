"""Camera source: a device index or a stream URL through ``cv2.VideoCapture``.

A background grabber thread owns the capture: it reads frames continuously and
keeps only the newest one, so a consumer slower than the camera always gets a
fresh image (stale frames are counted in ``dropped``) and the driver's buffer
never fills up. When reading fails (camera unplugged, stream dropped) the
thread releases the capture and reopens it with exponential backoff, showing
``state == "reconnecting"`` and ``last_error`` meanwhile; nothing is raised.
``close()`` returns within about a second even while the driver is stuck: the
thread is a daemon that stops at its next chance.
"""

from __future__ import annotations

import logging
import threading
import time
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np

from .base import Frame, ImageSource, SourceError
from .spec import check_camera_index

log = logging.getLogger(__name__)


def redact_url(url: str) -> str:
    """The URL without its password (stream URLs often carry credentials)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.password is not None else f"{parts.username}@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


class CameraSource(ImageSource):
    """Frames from a camera (``int`` index) or a stream (``"rtsp://..."``, ``"http://..."``).

    Refs are ``"camera:0#frame=N"`` / ``"rtsp://host/path#frame=N"`` (passwords
    removed). ``max_failed_reads`` consecutive failed reads count as a lost camera.
    ``open_timeout``/``read_timeout`` bound how long the FFmpeg backend may hang
    on a stream.
    """

    is_live = True

    def __init__(
        self,
        spec: int | str,
        reconnect_delay: float = 1.0,
        max_reconnect_delay: float = 10.0,
        width: int | None = None,
        height: int | None = None,
        max_failed_reads: int = 5,
        open_timeout: float = 5.0,
        read_timeout: float = 5.0,
    ) -> None:
        if isinstance(spec, str) and spec.strip().lstrip("+-").isdigit():
            spec = int(spec.strip())
        if isinstance(spec, bool) or not isinstance(spec, (int, str)):
            raise SourceError(f"not a camera index or stream URL: {spec!r}")
        if isinstance(spec, int):
            check_camera_index(spec)  # before OpenCV sees it: a negative index segfaults its reader thread
        self.spec: int | str = spec
        label = f"camera:{spec}" if isinstance(spec, int) else redact_url(str(spec))
        super().__init__(label)
        self.reconnect_delay = max(0.01, float(reconnect_delay))
        self.max_reconnect_delay = max(self.reconnect_delay, float(max_reconnect_delay))
        self.width = width
        self.height = height
        self.max_failed_reads = max(1, int(max_failed_reads))
        self.open_timeout = open_timeout
        self.read_timeout = read_timeout
        self.dropped = 0  # frames replaced by a newer one before anyone read them
        self.reconnects = 0  # times the capture was lost and reopened
        self._fps: float | None = None
        self._cond = threading.Condition()
        self._latest: tuple[np.ndarray, float] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def fps(self) -> float | None:
        return self._fps

    # ---------------------------------------------------------------- lifetime

    def _open(self) -> None:
        self._latest = None
        self.dropped = 0
        self.reconnects = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(self._stop,), name=f"grab {self.name}", daemon=True
        )
        self._thread.start()

    def _close(self) -> None:
        self._stop.set()
        with self._cond:
            self._latest = None
            self._cond.notify_all()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=1.0)
            if thread.is_alive():
                log.warning("%s: driver did not return in time; released in the background", self.name)

    # ---------------------------------------------------------------- grabber thread

    def _capture(self) -> cv2.VideoCapture:
        if isinstance(self.spec, int):
            return cv2.VideoCapture(self.spec)
        if "://" in self.spec:
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.open_timeout * 1000),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.read_timeout * 1000),
            ]  # fmt: skip
            try:
                return cv2.VideoCapture(self.spec, cv2.CAP_FFMPEG, params)
            except cv2.error:  # a build without FFmpeg: let OpenCV pick
                pass
        return cv2.VideoCapture(self.spec)

    def _try_open(self) -> cv2.VideoCapture | None:
        try:
            cap = self._capture()
        except cv2.error as exc:
            self._trouble(f"cannot open {self.name}: {exc}")
            return None
        if not cap.isOpened():
            cap.release()
            self._trouble(f"cannot open {self.name} (no such device or stream unreachable)")
            return None
        if self.width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, int(self.width))
        if self.height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, int(self.height))
        fps = cap.get(cv2.CAP_PROP_FPS)
        self._fps = float(fps) if fps and np.isfinite(fps) and 0 < fps < 1000 else None
        return cap

    def _trouble(self, message: str) -> None:
        if self.closed:
            return  # a late report from a thread being stopped
        if self.state != "reconnecting" or message != self.last_error:
            log.warning("%s; retrying", message)
        self.last_error = message
        self.state = "reconnecting"

    def _run(self, stop: threading.Event) -> None:
        delay = self.reconnect_delay
        cap: cv2.VideoCapture | None = None
        failures = 0
        try:
            while not stop.is_set():
                if cap is None:
                    cap = self._try_open()
                    if cap is None:
                        if stop.wait(delay):
                            break
                        delay = min(delay * 2.0, self.max_reconnect_delay)
                        continue
                ok, image = cap.read()
                if stop.is_set():
                    break
                if ok and image is not None and image.size:
                    failures = 0
                    delay = self.reconnect_delay
                    if self.state != "running":
                        if self.state == "reconnecting":
                            log.info("%s: frames again", self.name)
                            self.last_error = ""  # the trouble is over: a recovered stream shows no old error
                        self.state = "running"
                    with self._cond:
                        if stop.is_set():
                            break
                        if self._latest is not None:
                            self.dropped += 1
                        self._latest = (image, time.time())
                        self._cond.notify_all()
                    continue
                failures += 1
                if failures < self.max_failed_reads and cap.isOpened():
                    stop.wait(0.02)
                    continue
                cap.release()
                cap = None
                failures = 0
                self.reconnects += 1
                self._trouble(f"{self.name}: no frames (disconnected or stream ended)")
                if stop.wait(delay):
                    break
                delay = min(delay * 2.0, self.max_reconnect_delay)
        except Exception as exc:  # a driver bug must not kill the app silently
            log.exception("%s: grabber stopped", self.name)
            self.last_error = f"{self.name}: {exc}"
            self.state = "error"
        finally:
            if cap is not None:
                cap.release()

    # ---------------------------------------------------------------- reading

    def _poll(self, timeout: float) -> Frame | None:
        with self._cond:
            self._cond.wait_for(lambda: self._latest is not None or self.closed, timeout)
            if self.closed or self._latest is None:
                return None
            image, stamp = self._latest
            self._latest = None
        index = self._next_index()
        return Frame(image, index, stamp, f"{self.name}#frame={index}")
