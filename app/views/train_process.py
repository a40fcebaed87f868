"""Training in a child process, driven from a worker thread of the GUI.

Why a process and not just a thread: while a Python thread of the GUI
process holds the GIL, the event loop cannot run; on a busy machine the
operating system can pause that thread *while it holds the GIL* for hundreds
of milliseconds, and the window freezes (measured: 0.5-1 s pauses on a
loaded 2-core machine with training on a thread, none with this module).
The child runs :func:`train_and_save` (train, evaluate on the test split,
save the bundle atomically) and sends its progress events through a queue;
the calling thread only waits on that queue.

No Qt here: the child imports only the core. ``spawn`` is used everywhere
(forking a process that runs Qt and OpenMP threads is unsafe).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inspection_core.progress import CancelToken, Cancelled, ProgressCallback, ProgressEvent

if TYPE_CHECKING:
    from inspection_core.config import ModelConfig, TrainConfig
    from inspection_core.data.dataset import DatasetIndex

STEP_INTERVAL_S = 0.05  # the child sends at most ~20 step events per second
CHILD_NICENESS = 5  # lower CPU priority of the training process (POSIX)
STOP_GRACE_S = 3.0  # after a stop request, how long the child may take to stop by itself before it is terminated


class TrainingProcessError(RuntimeError):
    """The training process failed or ended without a result."""


def train_and_save(index: DatasetIndex, mcfg: ModelConfig, tcfg: TrainConfig, out: Path,
                   progress: ProgressCallback, cancel: CancelToken, evaluate_test: bool = True
                   ) -> tuple[Path, dict[str, Any]]:
    """The core's train use case, as (path, manifest) for the view."""
    from inspection_core.usecases.training import train_and_save as run

    outcome = run(index, mcfg, tcfg, out, progress, cancel, evaluate_test=evaluate_test)
    return outcome.path, outcome.manifest


def _child(args: tuple[DatasetIndex, ModelConfig, TrainConfig, Path, bool], q: Any, stop: Any) -> None:
    """Entry point of the training process."""
    if hasattr(os, "nice"):  # the window (and a live inspection) keeps priority over training
        try:
            os.nice(CHILD_NICENESS)
        except OSError:
            pass
    import torch

    # leave one core to the window and a live inspection on small stations
    cores = os.cpu_count() or 1
    if cores <= 4 and torch.get_num_threads() > max(1, cores - 1):
        torch.set_num_threads(max(1, cores - 1))
    token = CancelToken()
    parent = os.getppid()

    def watch() -> None:  # stop on request, and when the application is gone
        while not stop.wait(1.0):
            if os.getppid() != parent:
                break
        token.cancel()

    threading.Thread(target=watch, daemon=True).start()
    last = [0.0]

    def send(ev: ProgressEvent) -> None:
        now = time.monotonic()
        if ev.kind == "step" and now - last[0] < STEP_INTERVAL_S and ev.step != ev.steps:
            return
        last[0] = now
        q.put(("progress", ev))

    try:
        index, mcfg, tcfg, out, evaluate_test = args
        q.put(("result", train_and_save(index, mcfg, tcfg, out, send, token, evaluate_test)))
    except Cancelled:
        q.put(("cancelled", None))
    except BaseException as exc:  # report every failure to the parent
        q.put(("error", f"{type(exc).__name__}: {exc}"))


def _remove_partial(out: Path) -> None:
    """Temp files an atomic save leaves behind only when its process is killed."""
    from inspection_core.fileio import temp_pattern

    for p in out.parent.glob(temp_pattern(out)):
        try:
            p.unlink()
        except OSError:
            pass


def train_in_process(index: DatasetIndex, mcfg: ModelConfig, tcfg: TrainConfig, out: Path,
                     progress: ProgressCallback, cancel: CancelToken, evaluate_test: bool = True,
                     poll_s: float = 0.05) -> tuple[Path, dict[str, Any]]:
    """Run :func:`train_and_save` in a child process; same contract as calling it
    directly (progress events, ``Cancelled`` on cancel, the result)."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    stop = ctx.Event()
    proc = ctx.Process(target=_child, args=((index, mcfg, tcfg, Path(out), evaluate_test), q, stop),
                       name="inspector-training", daemon=True)
    proc.start()
    stop_sent: float | None = None
    try:
        while True:
            if cancel.cancelled and stop_sent is None:
                stop.set()
                stop_sent = time.monotonic()
            try:
                kind, obj = q.get(timeout=poll_s)
            except queue.Empty:
                if stop_sent is not None and time.monotonic() - stop_sent > STOP_GRACE_S:
                    proc.terminate()
                    proc.join(5)
                    _remove_partial(Path(out))
                    raise Cancelled("training process terminated after a stop request") from None
                if not proc.is_alive():
                    try:  # a last message may still be in the pipe
                        kind, obj = q.get(timeout=1.0)
                    except queue.Empty:
                        raise TrainingProcessError(
                            f"the training process ended unexpectedly (exit code {proc.exitcode})") from None
                else:
                    continue
            if kind == "progress":
                progress(obj)
            elif kind == "result":
                return obj
            elif kind == "cancelled":
                raise Cancelled("training stopped on request")
            else:
                raise TrainingProcessError(obj)
    finally:
        if proc.is_alive():
            stop.set()
            proc.join(STOP_GRACE_S)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
                _remove_partial(Path(out))
        q.close()
