"""The live inspection pipeline: a capture thread keeps the newest frame, a
scoring thread scores it with the Inspector (the only place torch is called),
records the verdict in the history database and hands the result to the GUI.

Re-exported by ``app.workers`` (``from app.workers import ScoringWorker``).
"""

from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal, Slot

from app.threads import _LINGERING, CallableThread

@dataclass
class LiveResult:
    """One scored frame, as the Inspect view receives it."""

    prediction: Any                  # inspection_core.types.Prediction
    frame_index: int
    frame_ref: str
    frame_timestamp: float
    record_id: int | None            # row in the history database (None: not recorded)
    score_ms: float                  # model time for this frame
    record_ms: float                 # time to commit the history row
    age_ms: float                    # acquisition -> result ready
    fps: float                       # scored frames per second (recent window)
    frames_read: int
    frames_scored: int
    frames_dropped: int              # stale frames replaced before they were scored
    record_error: str | None = None
    image: Any = None                # the frame as captured (for the full-size pane)


class ScoringWorker(QObject):
    """Live inspection: a capture thread and a scoring thread.

    The capture thread reads the source and keeps only the NEWEST frame in a
    one-slot buffer; a frame replaced before it was scored is counted in
    ``frames_dropped``. The scoring thread loads the Inspector (torch is only
    ever touched there), scores the frame in the slot, records the verdict in
    the history database (committed before the result is emitted) and emits a
    :class:`LiveResult`. A FAIL/REVIEW image is kept by a background writer
    after its row is committed (``HistoryDB.attach_image``); ``stop()`` waits
    until every queued image is written.

    ``lossless`` (default: the source is not live, e.g. a folder): the capture
    thread waits until the slot is free, so every image is scored. ``pace_fps``
    limits how fast frames are read (a video file played at its own speed
    behaves like a camera). ``mode``: "continuous" or "triggered" (one frame per
    ``trigger()``: the next frame that arrives after the call, or for a
    lossless source the next image).

    Signals are emitted in the GUI thread (relayed), so any receiver is safe.
    """

    ready = Signal(object)            # the Inspector, once loaded
    result = Signal(object)           # LiveResult
    stateChanged = Signal(str, str)   # source state ("running", "reconnecting", "ended", "error"), message
    frameError = Signal(str)          # one frame could not be scored or recorded
    failed = Signal(str)              # the pipeline cannot run (bundle or source unusable)
    ended = Signal()                  # the source finished and every frame was handled
    stopped = Signal()                # both threads ended

    _raw = Signal(str, object)

    def __init__(
        self,
        source: Any,
        inspector: Any,
        history: Any = None,
        *,
        mode: str = "continuous",
        lossless: bool | None = None,
        pace_fps: float | None = None,
        loop: bool = False,
        station: str = "",
        source_label: str = "",
        device: str = "auto",
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._raw.connect(self._dispatch, Qt.ConnectionType.QueuedConnection)
        self._source_arg = source
        self._inspector_arg = inspector
        self.inspector: Any = None
        self.source: Any = None
        self.history = history
        self.mode = mode
        self._lossless_arg = lossless
        self.pace_fps = pace_fps
        self.loop = loop
        self.station = station
        self.source_label = source_label or (source if isinstance(source, str) else getattr(source, "name", ""))
        self.device = device
        self.frames_read = 0
        self.frames_scored = 0
        self.frames_dropped = 0
        self.frames_skipped = 0      # deliberately not scored (paused, triggered mode)
        self._cond = threading.Condition()
        self._slot: Any = None
        self._stop = threading.Event()
        self._paused = False
        self._triggers = 0
        self._capture_done = False
        self._source_ready = threading.Event()
        self._pending_threshold: Any = None
        self._done_times: list[float] = []
        # Kept images (FAIL/REVIEW) are written by a background writer after their
        # row is committed: a camera-sized PNG must not hold up the next part.
        # Bounded, so a slow disk slows the line instead of dropping evidence.
        self._keep_queue: queue.Queue = queue.Queue(maxsize=16)
        self._keeper: threading.Thread | None = None
        self.images_kept = 0
        self._capture = CallableThread(self._capture_loop, "capture")
        self._scoring = CallableThread(self._scoring_loop, "scoring")
        self._finished_threads = 0

    # ---------------------------------------------------------------- control (GUI thread)
    def start(self) -> "ScoringWorker":
        self._capture.start()
        self._scoring.start()
        return self

    @property
    def lossless(self) -> bool:
        if self._lossless_arg is not None:
            return bool(self._lossless_arg)
        return not bool(getattr(self.source, "is_live", False)) if self.source is not None else True

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def running(self) -> bool:
        return self._capture.isRunning() or self._scoring.isRunning()

    def pause(self) -> None:
        with self._cond:
            self._paused = True
            self._cond.notify_all()

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    def set_mode(self, mode: str) -> None:
        if mode not in ("continuous", "triggered"):
            raise ValueError(f"mode must be 'continuous' or 'triggered', got {mode!r}")
        with self._cond:
            self.mode = mode
            self._triggers = 0
            self._cond.notify_all()

    def trigger(self) -> None:
        """Triggered mode: score the next frame (the next one acquired from now on for a live source)."""
        with self._cond:
            self._triggers += 1
            if not self.lossless and self._slot is not None:
                self._slot = None
                self.frames_skipped += 1
            self._cond.notify_all()

    def set_threshold(self, threshold: Any) -> None:
        """Use a new Threshold from the next frame on (after a calibration)."""
        with self._cond:
            self._pending_threshold = threshold

    def stop(self, wait_ms: int = 5000) -> bool:
        """Stop both threads and close the source; True when they ended in time."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        src = self.source
        if src is not None:
            try:
                src.close()  # releases a blocked read()
            except Exception:  # noqa: BLE001 - closing a broken source must not stop shutdown
                pass
        ok = bool(self._capture.wait(wait_ms) and self._scoring.wait(wait_ms))
        if ok:
            ok = self._stop_keeper(wait_ms)
        if not ok and self not in _LINGERING:  # stuck in a driver call: keep its objects alive until it ends
            _LINGERING.append(self)
        elif ok and self in _LINGERING:
            _LINGERING.remove(self)
        return ok

    # ---------------------------------------------------------------- kept images
    def _keep_later(self, record_id: int, image: Any, ref: str) -> None:
        if self._keeper is None:
            self._keeper = threading.Thread(target=self._keeper_loop, name="keeper", daemon=True)
            self._keeper.start()
        self._keep_queue.put((record_id, image, ref))

    def _keeper_loop(self) -> None:
        while True:
            item = self._keep_queue.get()
            if item is None:
                return
            record_id, image, ref = item
            try:
                if self.history.attach_image(record_id, image) is None:
                    self._emit("frameError", f"{ref}: recorded, but its image could not be kept (see the log)")
                else:
                    self.images_kept += 1
            except Exception as exc:  # noqa: BLE001 - shown; the row itself is committed
                self._emit("frameError", f"{ref}: recorded, but its image could not be kept ({exc})")

    def _stop_keeper(self, wait_ms: int) -> bool:
        """Write every queued image, then end the writer (True when it finished in time)."""
        if self._keeper is None:
            return True
        self._keep_queue.put(None)
        self._keeper.join(wait_ms / 1000.0 + 10.0)  # images already scored are evidence: give them time
        done = not self._keeper.is_alive()
        if done:
            self._keeper = None
        return done

    # ---------------------------------------------------------------- relay
    def _emit(self, kind: str, payload: Any = None) -> None:
        self._raw.emit(kind, payload)

    @Slot(str, object)
    def _dispatch(self, kind: str, payload: Any) -> None:
        if kind == "result":
            self.result.emit(payload)
        elif kind == "state":
            self.stateChanged.emit(payload[0], payload[1])
        elif kind == "ready":
            self.ready.emit(payload)
        elif kind == "frameError":
            self.frameError.emit(payload)
        elif kind == "failed":
            self.failed.emit(payload)
        elif kind == "ended":
            self.ended.emit()
        elif kind == "thread_done":
            self._finished_threads += 1
            if self._finished_threads == 2:
                self.stopped.emit()

    # ---------------------------------------------------------------- capture thread
    def _open_source(self) -> Any:
        src = self._source_arg
        if isinstance(src, str):
            from inspection_core.sources import open_source

            src = open_source(src)
        self.source = src
        if getattr(src, "closed", True):
            src.open()
        return src

    def _capture_loop(self) -> None:
        try:
            try:
                src = self._open_source()
            except Exception as exc:  # noqa: BLE001 - shown to the user, never a crash
                self._emit("failed", f"cannot open source: {exc}")
                self._stop.set()
                return
            finally:
                self._source_ready.set()
            last_state = None
            next_t = time.monotonic()
            while not self._stop.is_set():
                state = getattr(src, "state", "running")
                if state != last_state:
                    last_state = state
                    self._emit("state", (state, getattr(src, "last_error", "") or ""))
                if self._paused and self.lossless:
                    with self._cond:
                        self._cond.wait(0.1)
                    continue
                frame = src.poll(0.1)
                if frame is None:
                    if src.finished and not self._stop.is_set():
                        if self.loop and not getattr(src, "is_live", False) and src.state == "ended":
                            src.close()
                            src.open()
                            continue
                        state = getattr(src, "state", "ended")
                        if state != last_state:
                            self._emit("state", (state, getattr(src, "last_error", "") or ""))
                        break
                    continue
                with self._cond:
                    self.frames_read += 1
                    if self.lossless:
                        while self._slot is not None and not self._stop.is_set():
                            self._cond.wait(0.1)
                    elif self._slot is not None:
                        if self._paused or self.mode == "triggered":
                            self.frames_skipped += 1
                        else:
                            self.frames_dropped += 1
                    self._slot = frame
                    self._cond.notify_all()
                if self.pace_fps:
                    next_t = max(next_t + 1.0 / self.pace_fps, time.monotonic() - 1.0)
                    delay = next_t - time.monotonic()
                    if delay > 0:
                        self._stop.wait(delay)
        finally:
            if self.source is not None:
                try:
                    self.source.close()  # also when stop() came before the source was open
                except Exception:  # noqa: BLE001
                    pass
            with self._cond:
                self._capture_done = True
                self._cond.notify_all()
            self._emit("thread_done")

    # ---------------------------------------------------------------- scoring thread
    def _load_inspector(self) -> bool:
        insp = self._inspector_arg
        if isinstance(insp, (str, os.PathLike)):
            try:
                from inspection_core.inference import Inspector

                insp = Inspector(insp, device=self.device)
            except Exception as exc:  # noqa: BLE001
                self._emit("failed", f"cannot load model bundle: {exc}")
                return False
        self.inspector = insp
        self._emit("ready", insp)
        return True

    def _next_frame(self) -> Any:
        with self._cond:
            while not self._stop.is_set():
                want = not self._paused and (self.mode == "continuous" or self._triggers > 0)
                if want and self._slot is not None:
                    frame, self._slot = self._slot, None
                    if self.mode == "triggered":
                        self._triggers -= 1
                    self._cond.notify_all()
                    return frame
                if self._capture_done and self._slot is None:
                    return None
                self._cond.wait(0.1)
        return None

    def _scoring_loop(self) -> None:
        try:
            if not self._load_inspector():
                self._stop.set()
                if self.source is not None:
                    self.source.close()
                return
            self._source_ready.wait()
            while not self._stop.is_set():
                frame = self._next_frame()
                if frame is None:
                    if not self._stop.is_set():
                        self._emit("ended")
                    break
                self._score(frame)
        finally:
            self._emit("thread_done")

    def _score(self, frame: Any) -> None:
        if self._pending_threshold is not None:
            with self._cond:
                self.inspector.threshold, self._pending_threshold = self._pending_threshold, None
        t0 = time.perf_counter()
        try:
            pred = self.inspector.predict(frame.image)
        except Exception as exc:  # noqa: BLE001 - one bad frame must not stop the line
            self._emit("frameError", f"{frame.ref}: cannot be scored ({exc})")
            return
        t1 = time.perf_counter()
        record_id, record_error = None, None
        if self.history is not None:
            keep_later = frame.image is not None and self.history.keeps_image_for(pred.verdict)
            try:
                record_id = self.history.record(
                    score=pred.score, verdict=pred.verdict, threshold_high=pred.threshold.high,
                    threshold_low=pred.threshold.low, source=self.source_label, image_ref=frame.ref,
                    bundle=getattr(self.inspector, "name", ""), bundle_id=getattr(self.inspector, "bundle_id", ""),
                    station=self.station, latency_ms=pred.latency_ms, image=None if keep_later else frame.image,
                    time=frame.timestamp,
                )  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - shown, and the frame is not counted as recorded
                record_error = f"{frame.ref}: not recorded ({exc})"
                self._emit("frameError", record_error)
            else:
                if keep_later:
                    self._keep_later(record_id, frame.image, frame.ref)
        t2 = time.perf_counter()
        now = time.monotonic()
        self._done_times.append(now)
        if len(self._done_times) > 30:
            del self._done_times[0]
        span = self._done_times[-1] - self._done_times[0]
        fps = (len(self._done_times) - 1) / span if span > 0 else 0.0
        self.frames_scored += 1
        self._emit("result", LiveResult(
            prediction=pred, frame_index=frame.index, frame_ref=frame.ref, frame_timestamp=frame.timestamp,
            record_id=record_id, score_ms=(t1 - t0) * 1000.0, record_ms=(t2 - t1) * 1000.0,
            age_ms=(time.time() - frame.timestamp) * 1000.0, fps=fps, frames_read=self.frames_read,
            frames_scored=self.frames_scored, frames_dropped=self.frames_dropped, record_error=record_error,
            image=frame.image,
        ))  # fmt: skip
