"""The comparison in a child process, driven from a worker thread of the GUI.

The same reasons and the same set-up as a training
(:mod:`app.views.train_process`: lower priority, one core left to the
window, ``spawn``): the child runs the core's compare use case
(:func:`inspection_core.usecases.compare.compare`, then
:func:`~inspection_core.usecases.compare.write_comparison`) and sends its
progress events through a queue; the calling thread only waits on that
queue. Stop sets a flag the child polls (its cancel token); a child that
does not stop within the grace period is terminated and the temp files of
an unfinished save are removed. No Qt here.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.views.train_process import (
    STEP_INTERVAL_S, STOP_POLL_S, _child_setup, _remove_partial, watch_child,
)  # fmt: skip
from inspection_core.progress import CancelToken, Cancelled, ProgressCallback, ProgressEvent

if TYPE_CHECKING:
    from inspection_core.comparison import Comparison
    from inspection_core.usecases.train_settings import TrainSettings


def run_comparison(data: Path, out: Path, settings: list[TrainSettings], progress: ProgressCallback,
                   cancel: CancelToken) -> tuple[Comparison, dict[str, Path]]:
    """The core's compare use case and its files, as (comparison, written paths)."""
    from inspection_core.usecases.compare import compare, write_comparison

    comparison = compare(data, out, settings=settings, progress=progress, cancel=cancel)
    return comparison, write_comparison(out, comparison)


def _child(args: tuple[Path, Path, list[TrainSettings]], q: Any, stop: Any) -> None:
    """Entry point of the comparison process."""
    _child_setup()
    token = CancelToken()
    parent = os.getppid()

    def watch() -> None:  # stop on request, and when the application is gone
        while not stop.value and os.getppid() == parent:
            time.sleep(STOP_POLL_S)
        token.cancel()

    threading.Thread(target=watch, daemon=True).start()
    last = [0.0]

    def send(ev: ProgressEvent) -> None:
        now = time.monotonic()
        if ev.kind == "step" and now - last[0] < STEP_INTERVAL_S and ev.step not in (0, ev.steps):
            return
        last[0] = now
        q.put(("progress", ev))

    try:
        data, out, settings = args
        q.put(("result", run_comparison(data, out, settings, send, token)))
    except Cancelled:
        q.put(("cancelled", None))
    except BaseException as exc:  # report every failure to the parent
        q.put(("error", f"{type(exc).__name__}: {exc}"))


def compare_in_process(data: Path, out: Path, settings: list[TrainSettings], progress: ProgressCallback,
                       cancel: CancelToken, poll_s: float = 0.05) -> tuple[Comparison, dict[str, Path]]:
    """Run :func:`run_comparison` in a child process; same contract as calling
    it directly (progress events, ``Cancelled`` on cancel, the result)."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    stop = ctx.RawValue("b", 0)  # a flag in shared memory, as the training's (see train_process)
    proc = ctx.Process(target=_child, args=((Path(data), Path(out), list(settings)), q, stop),
                       name="inspector-compare", daemon=True)
    proc.start()

    def clean() -> None:
        from inspection_core.usecases.compare import bundle_file

        for s in settings:
            _remove_partial(bundle_file(out, s.model.replace("_", "-")))

    return watch_child(proc, q, stop, progress, cancel, clean, "comparison", poll_s)


__all__ = ["compare_in_process", "run_comparison"]
