"""A view's background tasks: one slot per task, the busy state in one place.

In the spirit of Orange3's ``ConcurrentWidgetMixin``: a view makes one
:class:`TaskSlot` per kind of work (``tasks.slot("score")``) and connects
its signals once. Starting a slot's task again cancels the running one (its
:class:`~inspection_core.progress.CancelToken`) and cuts it off, so a stale
result, error or progress event never reaches the view. :class:`ViewTasks`
says whether any of a view's tasks runs (``busyChanged``) and stops them all
when the view closes. The thread bridge itself is :func:`app.workers.start_job`
(or ``AppContext.start_job``, which the window also stops on close).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, Signal

from app.workers import JobFn, JobHandle, start_job

StartJob = Callable[..., JobHandle]


class TaskSlot(QObject):
    """One task at a time. Its signals carry only the current task's news,
    in the GUI thread: ``progress(event)``, ``finished(result)``,
    ``failed(message)``, ``cancelled()``, and ``busyChanged(bool)``."""

    progress = Signal(object)
    finished = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    busyChanged = Signal(bool)

    def __init__(self, name: str = "task", start: StartJob = start_job, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self._start = start
        self._handle: JobHandle | None = None
        self._stale: list[JobHandle] = []  # cut off, maybe still running: stop() waits for them
        self._receivers: list[tuple[Any, Callable[..., Any]]] = []

    @property
    def busy(self) -> bool:
        return self._handle is not None

    @property
    def handle(self) -> JobHandle | None:
        """The current task's handle (None when none runs)."""
        return self._handle

    def start(self, fn: JobFn) -> JobHandle:
        """Run ``fn(progress, cancel)`` on a worker; a task still running in this slot
        is cancelled and its results are dropped."""
        was_busy = self._drop_current()
        handle = self._start(fn, name=self.name)
        self._handle = handle
        w = handle.worker
        self._receivers = [
            (w.progress, lambda ev, h=handle: self._relay(h, False, self.progress, ev)),
            (w.finished, lambda result, h=handle: self._relay(h, True, self.finished, result)),
            (w.failed, lambda msg, h=handle: self._relay(h, True, self.failed, msg)),
            (w.cancelled, lambda h=handle: self._relay(h, True, self.cancelled)),
        ]
        for sig, fn_ in self._receivers:
            sig.connect(fn_)
        if not was_busy:
            self.busyChanged.emit(True)
        return handle

    def cancel(self) -> None:
        """Ask the current task to stop; ``cancelled`` follows when it has."""
        if self._handle is not None:
            self._handle.cancel()

    def stop(self, wait_ms: int = 5000) -> bool:
        """Cancel every task of this slot, current and stale; True when all ended within ``wait_ms``."""
        handles = [h for h in (*self._stale, self._handle) if h is not None]
        for h in handles:
            h.cancel()
        ok = all(h.wait(wait_ms) for h in handles)
        self._stale = [h for h in self._stale if h.running]
        return ok

    def _relay(self, handle: JobHandle, ends: bool, signal: Any, *args: Any) -> None:
        """Re-emit a task's news, only if it is the current task's (a stale one is dropped)."""
        if not shiboken6.isValid(self) or handle is not self._handle:
            return  # the view that held this slot is gone, or a newer task replaced this one
        if ends:
            self._handle, self._receivers = None, []
            self.busyChanged.emit(False)
        signal.emit(*args)

    def _drop_current(self) -> bool:
        """Cancel the current task and disconnect it from this slot; whether there was one."""
        h, self._handle = self._handle, None
        if h is None:
            return False
        h.cancel()
        for sig, fn in self._receivers:  # only ours: the context's bookkeeping stays connected
            try:
                sig.disconnect(fn)
            except (RuntimeError, TypeError):
                pass
        self._receivers = []
        self._stale = [s for s in self._stale if s.running]
        if h.running:
            self._stale.append(h)
        return True


class ViewTasks(QObject):
    """A view's task slots and their busy state: ``busyChanged(bool)`` when the
    first task starts and when the last one ends."""

    busyChanged = Signal(bool)

    def __init__(self, start: StartJob = start_job, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._start = start
        self._slots: dict[str, TaskSlot] = {}
        self._forgotten: list[TaskSlot] = []
        self._busy = False

    def slot(self, name: str) -> TaskSlot:
        """The slot named ``name`` (made on first use)."""
        s = self._slots.get(name)
        if s is None:
            s = self._slots[name] = TaskSlot(name, self._start, self)
            s.busyChanged.connect(self._update)
        return s

    def forget(self, name: str) -> None:
        """Drop a slot that will not be used again (its task, if any, is cancelled)."""
        s = self._slots.pop(name, None)
        if s is not None:
            s.cancel()
            self._forgotten = [f for f in self._forgotten if f.busy] + [s]  # stop() still waits for it

    @property
    def busy(self) -> bool:
        return any(s.busy for s in self._slots.values())

    def running(self, name: str) -> bool:
        s = self._slots.get(name)
        return s is not None and s.busy

    def _update(self, *_: Any) -> None:
        busy = self.busy
        if busy != self._busy:
            self._busy = busy
            self.busyChanged.emit(busy)

    def stop(self, wait_ms: int = 5000) -> bool:
        """Cancel every task and wait for them; True when all ended within ``wait_ms``."""
        stopped = [s.stop(wait_ms) for s in [*self._slots.values(), *self._forgotten]]  # every slot, even after a failure
        return all(stopped)


__all__ = ["TaskSlot", "ViewTasks"]
