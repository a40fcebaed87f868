"""Use case: run a live inspection line (plain threads, no Qt).

A capture thread reads the source and keeps only the NEWEST frame in a
one-slot buffer (a frame replaced before it was scored counts as dropped); a
scoring thread loads the Inspector (torch is only ever touched there), scores
the frame in the slot, records the verdict (committed to the history, or,
when the history cannot take it, fsync'ed to its spool, see
:class:`inspection_core.history.Recorder`) before the result is announced,
and announces a :class:`LiveResult`. A verdict that can be recorded nowhere
is never announced as a result: the line stops with a "failed" message that
names it; with ``on_unrecorded="stop"`` the line also stops at the first
verdict that had to be spooled. A FAIL/REVIEW
image is kept by a background writer after its row is committed
(``HistoryDB.attach_image``), so a camera-sized PNG never holds up the next
part; :meth:`LiveLine.stop` waits until every queued image is written.

Modes: ``lossless`` (folders, watched folders: every image is a part, the
capture waits for the slot) or newest-frame (cameras, videos played at their
own speed); ``mode`` "continuous" or "triggered" (one frame per
:meth:`LiveLine.trigger`: the next one acquired after the call, or the next
image of a lossless source). ``pace_fps`` limits how fast frames are read.

What happens is told as events (:mod:`.live_events`: ``Ready``, ``Result``,
``SourceState``, ``FrameError``, ``Recording``, ``Failed``, ``InputWarning``,
``CameraWarning``, ``Ended``, and, last, ``Stopped``) to ``on_event(event)``
and to ``listener(event.kind, event.payload)``, on the line's threads. The
desktop app relays them to the GUI thread (``app.live``); a headless station or
a test calls :meth:`LiveLine.run`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from ..drift import InputMonitor
from ..sources import ImageSource, SourceSpec
from .live_keeper import ImageKeeper
from .live_source import LineSettings, line_source
from .live_events import (
    CameraWarning, Ended, Failed, FrameError, InputWarning, LiveEvent, LiveResult, Ready, Recording, Result, SourceState,
    Stopped,
)  # fmt: skip

log = logging.getLogger(__name__)

LiveListener = Callable[[str, Any], None]     # listener(event.kind, event.payload)
EventListener = Callable[[LiveEvent], None]   # on_event(event)
MODES = ("continuous", "triggered")
#: what a line does when a verdict had to go to the spool: keep inspecting, or stop
ON_UNRECORDED = ("spool", "stop")
#: INVALID frames in a row after which the operator is told (camera covered or disconnected?)
INVALID_ALERT = 5


class LiveLine:
    """See the module docstring. ``source``: an ImageSource, or a spec (then
    :func:`line_source` builds it and, unless given, decides ``lossless`` and
    ``pace_fps``; a spec that names nothing raises ``SourceError`` here);
    ``inspector``: an Inspector or a bundle path (loaded on the scoring thread);
    ``history``: a HistoryDB (the line records through its own Recorder), a
    shared Recorder, or None."""

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
        listener: LiveListener | None = None,
        on_event: EventListener | None = None,
        on_unrecorded: str = "spool",
        invalid_alert: int = INVALID_ALERT,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be 'continuous' or 'triggered', got {mode!r}")
        if on_unrecorded not in ON_UNRECORDED:
            raise ValueError(f"on_unrecorded must be 'spool' or 'stop', got {on_unrecorded!r}")
        label = str(source) if isinstance(source, (str, SourceSpec)) else getattr(source, "name", "")
        if not isinstance(source, ImageSource):  # a spec: the source and how a line runs its kind
            source, settings = line_source(source)
            lossless = settings.lossless if lossless is None else lossless
            pace_fps = settings.pace_fps if pace_fps is None else pace_fps
        self._source_arg = source
        self._inspector_arg = inspector
        self.inspector: Any = None
        self.source: Any = None
        self.monitor: InputMonitor | None = None   # inputs unlike the training data: said once per run
        self.history = history
        self.recorder: Any = None    # inspection_core.history.Recorder, made from history on start()
        self._own_recorder = False
        self.on_unrecorded = on_unrecorded
        self.mode = mode
        self._lossless_arg = lossless
        self.pace_fps = pace_fps
        self.loop = loop
        self.station = station
        self.source_label = source_label or label
        self.device = device
        self._listener = listener
        self._on_event = on_event
        self.frames_read = 0
        self.frames_scored = 0
        self.frames_dropped = 0
        self.frames_skipped = 0      # deliberately not scored (paused, triggered mode)
        self.frames_invalid = 0      # frames that carried no part (INVALID)
        self.invalid_run = 0         # INVALID frames in a row, now
        self.invalid_alert = max(1, int(invalid_alert))
        self._cond = threading.Condition()
        self._slot: Any = None
        self._stop = threading.Event()
        self._paused = False
        self._triggers = 0
        self._capture_done = False
        self._source_ready = threading.Event()
        self._pending_threshold: Any = None
        self._done_times: list[float] = []
        self._keeper = ImageKeeper(self._attach, lambda message: self._emit(FrameError(message)))
        self._threads = [threading.Thread(target=self._capture_loop, name="capture", daemon=True),
                         threading.Thread(target=self._scoring_loop, name="scoring", daemon=True)]
        self._alive = 0
        self._alive_lock = threading.Lock()
        self._finished = threading.Event()

    # ---------------------------------------------------------------- control
    def start(self) -> "LiveLine":
        self._start_recorder()
        self._alive = len(self._threads)
        for t in self._threads:
            t.start()
        return self

    def run(self, timeout_s: float | None = None) -> bool:
        """Run until the source finishes (a folder, a video) or ``timeout_s``
        passes, then stop; True when it finished by itself."""
        self.start()
        done = self._finished.wait(timeout_s)
        self.stop()
        return done

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
        return any(t.is_alive() for t in self._threads)

    def pause(self) -> None:
        with self._cond:
            self._paused = True
            self._cond.notify_all()

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
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

    @property
    def images_kept(self) -> int:
        """FAIL/REVIEW images written beside their history rows."""
        return self._keeper.kept

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Stop both threads, close the source and write the queued kept
        images; True when everything ended in time (a thread stuck in a driver
        call may outlive this)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        src = self.source
        if src is not None:
            try:
                src.close()  # releases a blocked read()
            except Exception:  # noqa: BLE001 - closing a broken source must not stop shutdown
                pass
        deadline = time.monotonic() + timeout_s
        for t in self._threads:
            if t.ident is not None:
                t.join(max(0.0, deadline - time.monotonic()))
        if self.running:
            return False
        done = self._keeper.stop(timeout_s)
        self._stop_recorder()
        return done

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until both threads ended; True if they did."""
        return self._finished.wait(timeout_s)

    # ---------------------------------------------------------------- events
    def _emit(self, event: LiveEvent) -> None:
        try:
            if self._on_event is not None:
                self._on_event(event)
            if self._listener is not None:
                self._listener(event.kind, event.payload)
        except Exception:  # noqa: BLE001 - a broken listener must not stop the line
            log.exception("live line: the listener failed on %r", event.kind)

    def _thread_done(self) -> None:
        with self._alive_lock:
            self._alive -= 1
            last = self._alive == 0
        if last:
            self._finished.set()
            self._emit(Stopped())

    # ---------------------------------------------------------------- recording
    def _start_recorder(self) -> None:
        if self.history is None or self.recorder is not None:
            return
        from ..history import Recorder

        if isinstance(self.history, Recorder):
            self.recorder = self.history
        else:
            self.recorder, self._own_recorder = Recorder(self.history), True
        self.recorder.add_listener(self._on_recording)
        if self.recorder.state != "ok":  # said at once, not after the first part
            self._on_recording(self.recorder.state, self.recorder.message, self.recorder.pending)

    def _on_recording(self, state: str, message: str, pending: int) -> None:
        self._emit(Recording(state, message, pending))

    def _stop_recorder(self) -> None:
        rec = self.recorder
        if rec is None:
            return
        rec.remove_listener(self._on_recording)
        if self._own_recorder:
            rec.close()  # one last try to write the spool; the database itself stays open
        self.recorder, self._own_recorder = None, False

    def _attach(self, record_id: int, image: Any) -> Any:
        return None if self.recorder is None else self.recorder.attach_image(record_id, image)

    # ---------------------------------------------------------------- capture thread
    def _open_source(self) -> Any:
        src = self._source_arg
        self.source = src
        if getattr(src, "closed", True):
            src.open()
        return src

    def _capture_loop(self) -> None:
        try:
            try:
                src = self._open_source()
            except Exception as exc:  # noqa: BLE001 - told to the user, never a crash
                self._emit(Failed(f"cannot open source: {exc}"))
                self._stop.set()
                return
            finally:
                self._source_ready.set()
            self._read_frames(src)
        finally:
            if self.source is not None:
                try:
                    self.source.close()  # also when stop() came before the source was open
                except Exception:  # noqa: BLE001
                    pass
            with self._cond:
                self._capture_done = True
                self._cond.notify_all()
            self._thread_done()

    def _read_frames(self, src: Any) -> None:
        last_state = None
        next_t = time.monotonic()
        while not self._stop.is_set():
            state = getattr(src, "state", "running")
            if state != last_state:
                last_state = state
                self._emit(SourceState(state, getattr(src, "last_error", "") or ""))
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
                        self._emit(SourceState(state, getattr(src, "last_error", "") or ""))
                    return
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

    # ---------------------------------------------------------------- scoring thread
    def _load_inspector(self) -> bool:
        insp = self._inspector_arg
        if isinstance(insp, (str, os.PathLike)):
            try:
                from ..station import open_inspector  # an exported model's folder: no torch

                insp = open_inspector(insp, device=self.device)
            except Exception as exc:  # noqa: BLE001
                self._emit(Failed(f"cannot load model bundle: {exc}"))
                return False
        self.inspector = insp
        manifest = getattr(insp, "manifest", None)
        self.monitor = InputMonitor(manifest) if isinstance(manifest, dict) else None
        self._emit(Ready(insp))
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
                        self._warn_inputs(self.monitor.finish() if self.monitor is not None else None)
                        self._emit(Ended())
                    break
                self._score(frame)
        finally:
            self._thread_done()

    def _score(self, frame: Any) -> None:
        if self._pending_threshold is not None:
            with self._cond:
                self.inspector.threshold, self._pending_threshold = self._pending_threshold, None
        t0 = time.perf_counter()
        try:
            pred = self.inspector.predict(frame.image)
        except Exception as exc:  # noqa: BLE001 - one bad frame must not stop the line
            self._emit(FrameError(f"{frame.ref}: cannot be scored ({exc})"))
            return
        t1 = time.perf_counter()
        if pred.reason:
            self._invalid_frame(pred.reason)
        else:
            if self.invalid_run >= self.invalid_alert:
                self._emit(CameraWarning(""))
            self.invalid_run = 0
            if self.monitor is not None:  # a frame with no part says nothing about the parts' inputs
                self._warn_inputs(self.monitor.observe(frame.image, pred.score, pred.image))
        try:
            record_id, spooled = self._record(frame, pred)
        except Exception as exc:  # noqa: BLE001 - recorded nowhere: never shown as a result
            self._emit(Failed(f"{frame.ref} scored {pred.verdict.value} but could not be recorded ({exc}); "
                                 "the line is stopped"))
            self._halt()
            return
        t2 = time.perf_counter()
        now = time.monotonic()
        self._done_times.append(now)
        if len(self._done_times) > 30:
            del self._done_times[0]
        span = self._done_times[-1] - self._done_times[0]
        fps = (len(self._done_times) - 1) / span if span > 0 else 0.0
        self.frames_scored += 1
        self._emit(Result(LiveResult(
            prediction=pred, frame_index=frame.index, frame_ref=frame.ref, frame_timestamp=frame.timestamp,
            record_id=record_id, score_ms=(t1 - t0) * 1000.0, record_ms=(t2 - t1) * 1000.0,
            age_ms=(time.time() - frame.timestamp) * 1000.0, fps=fps, frames_read=self.frames_read,
            frames_scored=self.frames_scored, frames_dropped=self.frames_dropped, image=frame.image, spooled=spooled,
        )))  # fmt: skip
        if spooled and self.on_unrecorded == "stop":
            self._emit(Failed(f"the line is stopped because the history cannot be written: {self.recorder.message}"))
            self._halt()

    def _invalid_frame(self, reason: str) -> None:
        """Count an INVALID frame; tell the operator when ``invalid_alert`` came in a row."""
        self.frames_invalid += 1
        self.invalid_run += 1
        if self.invalid_run == self.invalid_alert:
            message = (f"{self.invalid_run} frames in a row carry no part ({reason}): "
                       "is the camera covered or disconnected, or the light off?")
            log.warning("live line %s: %s", self.source_label, message)
            self._emit(CameraWarning(message))

    def _halt(self) -> None:
        """Stop from the scoring thread (the capture thread and the source follow)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self.source is not None:
            try:
                self.source.close()
            except Exception:  # noqa: BLE001
                pass

    def _warn_inputs(self, message: str | None) -> None:
        if message:
            log.warning("live line %s: %s", self.source_label, message)
            self._emit(InputWarning(message))

    def _record(self, frame: Any, pred: Any) -> tuple[int | None, bool]:
        """Commit the verdict's history row or spool it (the kept image of a
        committed row follows on the writer); raises when neither is possible."""
        rec = self.recorder
        if rec is None:
            return None, False
        keep = frame.image is not None and rec.keeps_image_for(pred.verdict)
        out = rec.record(
            image_to_keep=frame.image if keep else None,
            score=pred.score, verdict=pred.verdict, threshold_high=pred.threshold.high,
            threshold_low=pred.threshold.low, source=self.source_label, image_ref=frame.ref,
            bundle=getattr(self.inspector, "name", ""), bundle_id=getattr(self.inspector, "bundle_id", ""),
            station=self.station, latency_ms=pred.latency_ms, time=frame.timestamp,
            note=getattr(pred, "reason", ""), **_typed(pred),
        )  # fmt: skip
        if keep and out.record_id is not None:
            self._keeper.put(out.record_id, frame.image, frame.ref)
        return out.record_id, out.spooled


def _typed(pred: Any) -> dict[str, Any]:
    """A FAIL's defect type for its history row (only when one was named: a history that predates the column)."""
    return {"defect_type": pred.defect_type} if getattr(pred, "defect_type", None) else {}


__all__ = ["INVALID_ALERT", "EventListener", "LineSettings", "LiveEvent", "LiveLine", "LiveListener", "LiveResult", "MODES",
           "ON_UNRECORDED", "line_source"]
