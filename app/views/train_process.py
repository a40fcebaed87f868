"""Training in a child process, driven from a worker thread of the GUI.

Why a process and not just a thread: while a Python thread of the GUI
process holds the GIL, the event loop cannot run; on a busy machine the
operating system can pause that thread *while it holds the GIL* for hundreds
of milliseconds, and the window freezes (measured: 0.5-1 s pauses on a
loaded 2-core machine with training on a thread, none with this module).
The child runs :func:`train_and_save` (train, evaluate on the test split,
save the bundle atomically) and sends its progress events through a queue;
the calling thread only waits on that queue. The Train view's estimate of a
run's time (:func:`estimate_in_process`) is measured in a child set up the
same way (priority, threads), so it times what the run will get.

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
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from inspection_core.progress import CancelToken, Cancelled, ProgressCallback, ProgressEvent

if TYPE_CHECKING:
    from inspection_core.config import ModelConfig, TrainConfig
    from inspection_core.data.dataset import DatasetIndex
    from inspection_core.usecases.estimate import ProbeCosts, TrainingEstimate

STEP_INTERVAL_S = 0.05  # the child sends at most ~20 step events per second
CHILD_NICENESS = 5  # lower CPU priority of the training process (POSIX)
STOP_GRACE_S = 3.0  # after a stop request, how long the child may take to stop by itself before it is terminated
STOP_POLL_S = 0.25  # how often the child looks at the stop flag (and whether its parent is still there)


class TrainingProcessError(RuntimeError):
    """The training process failed or ended without a result."""


def train_and_save(index: DatasetIndex, mcfg: ModelConfig, tcfg: TrainConfig, out: Path,
                   progress: ProgressCallback, cancel: CancelToken, evaluate_test: bool = True
                   ) -> tuple[Path, dict[str, Any]]:
    """The core's train use case, as (path, manifest) for the view."""
    from inspection_core.usecases.training import train_and_save as run

    outcome = run(index, mcfg, tcfg, out, progress, cancel, evaluate_test=evaluate_test)
    return outcome.path, outcome.manifest


def training_threads(cores: int | None = None, torch_default: int | None = None) -> int | None:
    """The torch threads of a training process: one core is left to the
    window and a live inspection on a station of up to 4 cores; None: torch's
    own choice."""
    cores = cores or os.cpu_count() or 1
    if cores <= 4 and (torch_default is None or torch_default > max(1, cores - 1)):
        return max(1, cores - 1)
    return None


def _child_setup() -> None:
    """A child's priority and threads, the same for training and its estimate."""
    if hasattr(os, "nice"):  # the window (and a live inspection) keeps priority over training
        try:
            os.nice(CHILD_NICENESS)
        except OSError:
            pass
    import torch

    threads = training_threads(torch_default=torch.get_num_threads())
    if threads:
        torch.set_num_threads(threads)


def _child(args: tuple[DatasetIndex, ModelConfig, TrainConfig, Path, bool], q: Any, stop: Any) -> None:
    """Entry point of the training process."""
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


def _estimate_child(requests: list[tuple[ModelConfig, TrainConfig, int, int, ProbeCosts | None]], q: Any) -> None:
    """Entry point of an estimate's process: as a training process is set up."""
    try:
        _child_setup()
        from inspection_core.usecases.estimate import estimate_training

        q.put(("result", [estimate_training(m, t, n_train, n_test, costs=costs)
                          for m, t, n_train, n_test, costs in requests]))
    except BaseException as exc:  # report every failure to the parent
        q.put(("error", f"{type(exc).__name__}: {exc}"))


def estimate_in_process(requests: list[tuple[ModelConfig, TrainConfig, int, int, ProbeCosts | None]],
                        cancel: CancelToken | None = None, poll_s: float = 0.05,
                        timeout_s: float = 120.0) -> list[TrainingEstimate]:
    """:func:`inspection_core.usecases.estimate.estimate_training` of each
    (model config, training config, training images, test images, known
    probe costs or None), measured in a child process set up as the training
    process is (priority, threads), so the probe times what the run will get
    and leaves the window's own torch state alone. A cancel ends the child."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=_estimate_child, args=(requests, q), name="inspector-estimate", daemon=True)
    proc.start()
    t0 = time.monotonic()
    try:
        while True:
            if cancel is not None and cancel.cancelled:
                raise Cancelled("estimate cancelled")
            try:
                kind, obj = q.get(timeout=poll_s)
            except queue.Empty:
                if time.monotonic() - t0 > timeout_s:
                    raise TrainingProcessError(f"the estimate took more than {timeout_s:.0f} s") from None
                if not proc.is_alive():
                    try:
                        kind, obj = q.get(timeout=1.0)
                    except queue.Empty:
                        raise TrainingProcessError(
                            f"the estimate process ended unexpectedly (exit code {proc.exitcode})") from None
                else:
                    continue
            if kind == "result":
                return obj
            raise TrainingProcessError(obj)
    finally:
        if proc.is_alive():
            proc.terminate()
            proc.join(5)
        q.close()


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
    # A flag in shared memory, not a multiprocessing.Event: Event.set() waits
    # for every process sleeping in wait() to wake, and a child that ended
    # while its watcher slept in wait() never does (the parent hung for good
    # after a finished training, seen on the 2-core machine)
    stop = ctx.RawValue("b", 0)
    proc = ctx.Process(target=_child, args=((index, mcfg, tcfg, Path(out), evaluate_test), q, stop),
                       name="inspector-training", daemon=True)
    proc.start()
    return watch_child(proc, q, stop, progress, cancel, lambda: _remove_partial(Path(out)), "training", poll_s)


def watch_child(proc: Any, q: Any, stop: Any, progress: ProgressCallback, cancel: CancelToken,
                clean: Callable[[], None], what: str, poll_s: float = 0.05) -> Any:
    """The parent's side of a child process that reports ``(kind, obj)``
    messages: forwards progress, returns the result, raises ``Cancelled`` (a
    stop is asked for through ``stop`` and enforced after ``STOP_GRACE_S``;
    ``clean`` removes what a killed child left) or ``TrainingProcessError``.
    The stop-grace check comes before the dead-child check, so a child killed
    after a stop request reads as stopped, not as failed."""
    stop_sent: float | None = None
    try:
        while True:
            if cancel.cancelled and stop_sent is None:
                stop.value = 1
                stop_sent = time.monotonic()
            try:
                kind, obj = q.get(timeout=poll_s)
            except queue.Empty:
                if stop_sent is not None and time.monotonic() - stop_sent > STOP_GRACE_S:
                    proc.terminate()
                    proc.join(5)
                    clean()
                    raise Cancelled(f"{what} process terminated after a stop request") from None
                if not proc.is_alive():
                    try:  # a last message may still be in the pipe
                        kind, obj = q.get(timeout=1.0)
                    except queue.Empty:
                        raise TrainingProcessError(
                            f"the {what} process ended unexpectedly (exit code {proc.exitcode})") from None
                else:
                    continue
            if kind == "progress":
                progress(obj)
            elif kind == "result":
                return obj
            elif kind == "cancelled":
                raise Cancelled(f"{what} stopped on request")
            else:
                raise TrainingProcessError(obj)
    finally:
        if proc.is_alive():
            stop.value = 1
            proc.join(STOP_GRACE_S)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
                clean()
        q.close()
