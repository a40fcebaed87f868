"""A view's background tasks (app.tasks): a restarted task's stale result
never arrives, cancel works, busy goes on and off once, errors arrive as a
message."""

from __future__ import annotations

import threading

import pytest

from app.tasks import TaskSlot, ViewTasks
from inspection_core.progress import Cancelled, ProgressEvent

pytestmark = pytest.mark.gui


def blocking(result: object, release: threading.Event, honour_cancel: bool = True):
    """A job that reports progress, then waits for ``release`` (or a cancel) and returns ``result``."""

    def job(progress, cancel):
        progress(ProgressEvent("message", message=f"start {result}"))
        while not release.wait(0.01):
            if honour_cancel and cancel.cancelled:
                raise Cancelled()
        return result

    return job


def test_a_restarted_tasks_stale_result_never_arrives(qtbot) -> None:
    slot = TaskSlot("score")
    results, progress, cancels = [], [], []
    slot.finished.connect(results.append)
    slot.progress.connect(lambda ev: progress.append(ev.message))
    slot.cancelled.connect(lambda: cancels.append(1))
    first_release, second_release = threading.Event(), threading.Event()
    first = slot.start(blocking("old", first_release, honour_cancel=False))  # ignores its cancel token
    second = slot.start(blocking("new", second_release))
    assert first.token.cancelled and not second.token.cancelled
    first_release.set()  # the old job ends and returns its result anyway
    assert first.wait(5000)
    qtbot.wait(100)
    assert results == [] and slot.busy
    second_release.set()
    qtbot.waitUntil(lambda: results == ["new"], timeout=5000)
    qtbot.wait(100)
    assert results == ["new"] and cancels == [] and "start old" not in progress
    assert not slot.busy and slot.stop(5000)


def test_cancel_stops_the_task_and_says_so(qtbot) -> None:
    slot = TaskSlot("score")
    results: list[object] = []
    slot.finished.connect(results.append)
    release = threading.Event()
    handle = slot.start(blocking("r", release))
    with qtbot.waitSignal(slot.cancelled, timeout=5000):
        slot.cancel()
    assert handle.was_cancelled and results == [] and not slot.busy


def test_busy_goes_on_once_and_off_when_the_last_task_ends(qtbot) -> None:
    tasks = ViewTasks()
    seen: list[bool] = []
    tasks.busyChanged.connect(seen.append)
    a, b = tasks.slot("score"), tasks.slot("save")
    assert tasks.slot("score") is a
    ra, rb = threading.Event(), threading.Event()
    a.start(blocking(1, ra))
    a.start(blocking(2, ra))  # a restart: still busy, no flicker
    b.start(blocking(3, rb))
    assert tasks.busy and tasks.running("score") and tasks.running("save") and seen == [True]
    ra.set()
    qtbot.waitUntil(lambda: not tasks.running("score"), timeout=5000)
    assert tasks.busy and seen == [True]
    rb.set()
    qtbot.waitUntil(lambda: seen == [True, False], timeout=5000)
    assert not tasks.busy and tasks.stop(5000)


def test_an_error_arrives_as_a_message(qtbot) -> None:
    tasks = ViewTasks()
    slot = tasks.slot("save")

    def fail(_p, _c):
        raise ValueError("the bundle is read-only")

    with qtbot.waitSignal(slot.failed, timeout=5000) as blocker:
        slot.start(fail)
    assert blocker.args == ["ValueError: the bundle is read-only"]
    assert not slot.busy and not tasks.busy


def test_stop_waits_for_stale_tasks_too(qtbot) -> None:
    slot = TaskSlot("score")
    release = threading.Event()
    old = slot.start(blocking("old", release))
    slot.start(blocking("new", release))
    assert slot.stop(5000)
    assert not old.running
