"""Reference cycles are freed on the GUI thread, never in a worker thread
(a Qt widget destroyed off the GUI thread crashes the app)."""

from __future__ import annotations

import gc
import threading

import pytest

pytestmark = pytest.mark.gui


class _Cycle:
    freed_in: list[str] = []

    def __init__(self) -> None:
        self.me = self

    def __del__(self) -> None:
        _Cycle.freed_in.append(threading.current_thread().name)


def test_cycles_are_collected_on_the_gui_thread_not_in_a_busy_worker(qtbot) -> None:
    from app import gc_guard

    assert not gc.isenabled(), "the app tests run with the GUI-thread collector, as the app does"
    _Cycle.freed_in.clear()
    gc.collect()
    _Cycle()  # unreachable cycle: only the cyclic collector can free it

    kept: list = []

    def allocate() -> None:  # a worker that builds objects (as loading a model does), far past the threshold
        kept.extend([] for _ in range(gc.get_threshold()[0] * 20))

    t = threading.Thread(target=allocate, name="worker")
    t.start()
    t.join()
    assert _Cycle.freed_in == [], "nothing may be collected in the worker thread"
    qtbot.waitUntil(lambda: bool(_Cycle.freed_in), timeout=5000)
    assert _Cycle.freed_in == [threading.main_thread().name]
    assert gc_guard._INSTANCE is not None and gc_guard._INSTANCE.collections > 0
