"""Run Python's cyclic garbage collector on the GUI thread only.

Python starts a cyclic collection in whichever thread happens to allocate
past the threshold. In this app that is often a worker thread (loading a
bundle builds hundreds of torch modules, the capture thread lists folders),
and a collection there may free the last reference to a Qt widget caught in
a reference cycle: the C++ widget is then destroyed off the GUI thread, which
crashes the process (seen as a segfault in CI while a worker built a model).

The fix is the one pyqtgraph documents: switch off automatic collection and
collect from a timer on the GUI thread, by generation, with the same
thresholds Python would use. Reference counting still frees everything that
is not in a cycle immediately; only cycles wait for the next tick.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

_INSTANCE: "GuiThreadCollector | None" = None


class GuiThreadCollector(QObject):
    """A QTimer on the GUI thread that does the collections Python would have done."""

    def __init__(self, interval_ms: int = 500, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.collections = 0
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.check)

    def start(self) -> None:
        gc.disable()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()
        gc.enable()

    def check(self) -> None:
        """Collect the oldest generation whose count is past its threshold (as CPython does)."""
        t0, t1, t2 = gc.get_threshold()
        c0, c1, c2 = gc.get_count()
        if t2 and c2 > t2:
            gen = 2
        elif t1 and c1 > t1:
            gen = 1
        elif t0 and c0 > t0:
            gen = 0
        else:
            return
        gc.collect(gen)
        self.collections += 1


def install(app: QObject, interval_ms: int = 500) -> GuiThreadCollector:
    """Start collecting on ``app``'s thread (call once, from the GUI thread, after QApplication exists).
    Also neutralises PySide6 6.12.0's reference-count bug (:mod:`app.pyside_refcount`), which every
    way of starting the application must do as early."""
    global _INSTANCE
    from app import pyside_refcount

    pyside_refcount.neutralise()
    if _INSTANCE is None:
        _INSTANCE = GuiThreadCollector(interval_ms, parent=app)
    _INSTANCE.start()
    return _INSTANCE


def settle() -> None:
    """Before a long run (a live line, once its model is loaded): collect once,
    then move every survivor to the permanent generation (``gc.freeze``), so a
    full collection during the run scans only what the run creates. A full
    collection over torch's and the model's objects took 270 ms of GUI-thread
    time on a busy 2-core machine: a visible freeze of the live view."""
    gc.collect()
    gc.freeze()


def uninstall() -> None:
    """Give collection back to Python (tests that leave the Qt part of the suite)."""
    global _INSTANCE
    if _INSTANCE is not None:
        _INSTANCE.stop()
        gc.collect()
        _INSTANCE.deleteLater()
        _INSTANCE = None
