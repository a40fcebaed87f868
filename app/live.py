"""The live line's Qt relay: :class:`inspection_core.usecases.live.LiveLine`
does the work on its own threads; ``ScoringWorker`` only turns its events
into signals emitted in the GUI thread.

Re-exported by ``app.workers`` (``from app.workers import ScoringWorker``).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Qt, Signal, Slot

from app.threads import _LINGERING
from inspection_core.usecases.live import LiveLine, LiveResult
from inspection_core.usecases.live_events import (
    CameraWarning, Ended, Failed, FrameError, InputWarning, LiveEvent, Ready, Recording, Result, SourceState, Stopped,
)  # fmt: skip

__all__ = ["LiveResult", "ScoringWorker"]


class ScoringWorker(QObject):
    """A :class:`LiveLine` whose events arrive as signals in the GUI thread
    (queued), so any receiver, even a lambda, runs there. The arguments are
    the line's (see its module docstring)."""

    ready = Signal(object)            # the Inspector, once loaded
    result = Signal(object)           # LiveResult
    stateChanged = Signal(str, str)   # source state ("running", "reconnecting", "ended", "error"), message
    frameError = Signal(str)          # one frame could not be scored, or its image not kept
    recordingChanged = Signal(str, str, int)  # "ok" | "spooling", message, verdicts waiting in the spool
    inputWarning = Signal(str)        # once per run: the frames look unlike the bundle's training data
    cameraWarning = Signal(str)       # frames in a row carried no part (camera covered?); "" when a part is seen again
    failed = Signal(str)              # the line cannot run (bundle or source unusable)
    ended = Signal()                  # the source finished and every frame was handled
    stopped = Signal()                # both threads ended

    _raw = Signal(object)             # a live_events event, from the line's threads

    def __init__(self, source: Any, inspector: Any, history: Any = None, *, parent: QObject | None = None,
                 **options: Any) -> None:
        super().__init__(parent)
        self._raw.connect(self._dispatch, Qt.ConnectionType.QueuedConnection)
        self.line = LiveLine(source, inspector, history, on_event=self._raw.emit, **options)

    # ---------------------------------------------------------------- the line's control and counters
    def start(self) -> "ScoringWorker":
        self.line.start()
        return self

    def stop(self, wait_ms: int = 5000) -> bool:
        """Stop the line; True when its threads ended in time. A thread stuck in
        a driver call keeps this object alive until the process ends."""
        ok = self.line.stop(wait_ms / 1000.0)
        if not ok and self not in _LINGERING:
            _LINGERING.append(self)
        elif ok and self in _LINGERING:
            _LINGERING.remove(self)
        return ok

    def pause(self) -> None:
        self.line.pause()

    def resume(self) -> None:
        self.line.resume()

    def set_mode(self, mode: str) -> None:
        self.line.set_mode(mode)

    def trigger(self) -> None:
        self.line.trigger()

    def set_threshold(self, threshold: Any) -> None:
        self.line.set_threshold(threshold)

    def set_frame_limits(self, limits: Any) -> None:
        """Use the bundle's new frame check (``frame_check.FrameLimits``) from the
        next frame on: one attribute of the loaded Inspector, no torch (a line
        whose model is still loading reads the saved bundle anyway)."""
        inspector = self.line.inspector
        if inspector is not None and hasattr(inspector, "frame_limits"):
            inspector.frame_limits = limits

    @property
    def paused(self) -> bool:
        return self.line.paused

    @property
    def running(self) -> bool:
        return self.line.running

    @property
    def lossless(self) -> bool:
        return self.line.lossless

    @property
    def inspector(self) -> Any:
        return self.line.inspector

    @property
    def frames_read(self) -> int:
        return self.line.frames_read

    @property
    def frames_skipped(self) -> int:
        return self.line.frames_skipped

    @property
    def frames_scored(self) -> int:
        return self.line.frames_scored

    @property
    def frames_dropped(self) -> int:
        return self.line.frames_dropped

    @property
    def frames_invalid(self) -> int:
        return self.line.frames_invalid

    @property
    def images_kept(self) -> int:
        return self.line.images_kept

    # ---------------------------------------------------------------- relay
    @Slot(object)
    def _dispatch(self, event: LiveEvent) -> None:
        if isinstance(event, Result):
            self.result.emit(event.result)
        elif isinstance(event, SourceState):
            self.stateChanged.emit(event.state, event.message)
        elif isinstance(event, Ready):
            self.ready.emit(event.inspector)
        elif isinstance(event, FrameError):
            self.frameError.emit(event.message)
        elif isinstance(event, Recording):
            self.recordingChanged.emit(event.state, event.message, event.pending)
        elif isinstance(event, InputWarning):
            self.inputWarning.emit(event.message)
        elif isinstance(event, CameraWarning):
            self.cameraWarning.emit(event.message)
        elif isinstance(event, Failed):
            self.failed.emit(event.message)
        elif isinstance(event, Ended):
            self.ended.emit()
        elif isinstance(event, Stopped):
            self.stopped.emit()
