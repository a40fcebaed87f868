"""The one bridge between Qt and long core jobs.

``JobHandle``/``start_job`` run a plain core function ``fn(progress, cancel)``
on a QThread and deliver its progress events, result or error to the GUI
thread through queued signals. Step events are throttled (about 20 per second)
so a fast training loop never floods the event loop; every other event kind
(epoch, sample, message, done) is always delivered, in order.

The live line itself is the core's (``inspection_core.usecases.live``); its
Qt relay ``ScoringWorker`` lives in ``app.live`` and is re-exported here.
"""

from __future__ import annotations

import threading
import time
import traceback
from typing import Any, Callable

from PySide6.QtCore import QObject, Qt, Signal, Slot

from app.threads import _LINGERING, CallableThread  # noqa: F401 - re-exported
from inspection_core.progress import CancelToken, Cancelled, ProgressEvent

JobFn = Callable[[Callable[[ProgressEvent], None], CancelToken], Any]

PROGRESS_INTERVAL_S = 0.05  # at most ~20 throttled events per second


class JobWorker(QObject):
    """Signals of one job, always emitted in the GUI thread.

    The worker thread emits the private ``_*_raw`` signals; because this
    object lives in the GUI thread those are queued, and the relay slots
    re-emit the public signals there. So any receiver, even a lambda or a plain
    function (which PySide6 would otherwise call directly in the emitting
    thread), runs in the GUI thread.
    """

    progress = Signal(object)   # ProgressEvent
    finished = Signal(object)   # fn's return value
    failed = Signal(str)        # a readable error message
    cancelled = Signal()

    _progress_raw = Signal(object)
    _finished_raw = Signal(object)
    _failed_raw = Signal(str)
    _cancelled_raw = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._progress_raw.connect(self._relay_progress, Qt.ConnectionType.QueuedConnection)
        self._finished_raw.connect(self._relay_finished, Qt.ConnectionType.QueuedConnection)
        self._failed_raw.connect(self._relay_failed, Qt.ConnectionType.QueuedConnection)
        self._cancelled_raw.connect(self._relay_cancelled, Qt.ConnectionType.QueuedConnection)

    @Slot(object)
    def _relay_progress(self, event: object) -> None:
        self.progress.emit(event)

    @Slot(object)
    def _relay_finished(self, result: object) -> None:
        self.finished.emit(result)

    @Slot(str)
    def _relay_failed(self, message: str) -> None:
        self.failed.emit(message)

    @Slot()
    def _relay_cancelled(self) -> None:
        self.cancelled.emit()


class _Throttle:
    """Forwards progress events, dropping "step" events that come faster than
    the interval; the latest dropped step is sent before the next other event."""

    def __init__(self, emit: Callable[[Any], None], interval_s: float = PROGRESS_INTERVAL_S) -> None:
        self._emit = emit
        self._interval = interval_s
        self._last = 0.0
        self._pending: ProgressEvent | None = None
        self._lock = threading.Lock()

    def __call__(self, event: ProgressEvent) -> None:
        now = time.monotonic()
        with self._lock:
            if getattr(event, "kind", None) == "step":
                if now - self._last < self._interval:
                    self._pending = event
                    return
                self._pending = None
                self._last = now
                self._emit(event)
                return
            self._flush_locked()
            self._last = now
            self._emit(event)

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self._emit(pending)


class JobHandle:
    """A running (or finished) job: cancel it, wait for it, ask if it runs."""

    def __init__(self, fn: JobFn, name: str = "job") -> None:
        self.name = name
        self.token = CancelToken()
        self.worker = JobWorker()
        self.result: Any = None
        self.error: str | None = None
        self.was_cancelled = False
        self._done = threading.Event()
        self._throttle = _Throttle(self.worker._progress_raw.emit)
        self._fn = fn
        self._thread = CallableThread(self._run, name=name)

    def start(self) -> "JobHandle":
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            result = self._fn(self._throttle, self.token)
        except Cancelled:
            self._throttle.flush()
            self.was_cancelled = True
            self._done.set()
            self.worker._cancelled_raw.emit()
            return
        except Exception as exc:  # report any job failure to the GUI, never crash the app
            self._throttle.flush()
            self.error = f"{type(exc).__name__}: {exc}"
            self._tb = traceback.format_exc()
            self._done.set()
            self.worker._failed_raw.emit(self.error)
            return
        self._throttle.flush()
        if self.token.cancelled:
            self.was_cancelled = True
            self._done.set()
            self.worker._cancelled_raw.emit()
            return
        self.result = result
        self._done.set()
        self.worker._finished_raw.emit(result)

    def cancel(self) -> None:
        """Ask the job to stop at its next check of the cancel token."""
        self.token.cancel()

    @property
    def running(self) -> bool:
        return not self._done.is_set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, ms: int | None = None) -> bool:
        """Block until the job's thread ended (or ``ms`` passed); True if ended."""
        if ms is None:
            return bool(self._thread.wait())
        return bool(self._thread.wait(int(ms)))


def start_job(
    fn: JobFn,
    on_progress: Callable[[ProgressEvent], None] | None = None,
    on_done: Callable[[Any], None] | None = None,
    on_error: Callable[[str], None] | None = None,
    on_cancelled: Callable[[], None] | None = None,
    name: str = "job",
) -> JobHandle:
    """Run ``fn(progress, cancel)`` on a worker thread; callbacks run in the GUI thread."""
    handle = JobHandle(fn, name=name)
    if on_progress is not None:
        handle.worker.progress.connect(on_progress)
    if on_done is not None:
        handle.worker.finished.connect(on_done)
    if on_error is not None:
        handle.worker.failed.connect(on_error)
    if on_cancelled is not None:
        handle.worker.cancelled.connect(on_cancelled)
    return handle.start()


# The live line's relay lives in app.live; imported here so callers have one place to look.
from app.live import LiveResult, ScoringWorker  # noqa: E402

__all__ = ["CallableThread", "JobHandle", "JobWorker", "LiveResult", "ScoringWorker", "start_job"]
