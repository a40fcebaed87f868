"""Use case: train a detector, evaluate it on the test split, save the bundle.

Written once for every adapter: ``inspector train``, the Train view (in a
child process, see ``app/views/train_process.py``) and the demo builder. A
cancel at any point before saving leaves no file (the save is atomic).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import ModelConfig, TrainConfig
from ..data.dataset import DatasetIndex, scan_dataset
from ..progress import CancelToken, ProgressCallback, ProgressEvent, null_progress


@dataclass
class TrainOutcome:
    """The saved bundle, its manifest and what a user is told about the run."""

    path: Path
    manifest: dict[str, Any]
    stopped_reason: str | None = None


class TrainingLockedError(RuntimeError):
    """Another training is writing the same bundle (``pid``: the one that holds it)."""

    def __init__(self, bundle: Path, pid: str) -> None:
        super().__init__(f"another training is writing '{bundle}' (pid {pid}); wait for it to end or choose "
                         "another file")
        self.bundle, self.pid = bundle, pid


def _holder(fd: int) -> str:
    """The pid a lock file names (for the message)."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
    except OSError:
        return "unknown"


def lock_path(bundle: str | os.PathLike[str]) -> Path:
    """The lock file of a bundle's training: ``<bundle>.lock``."""
    b = Path(bundle)
    return b.with_name(b.name + ".lock")


@contextlib.contextmanager
def training_lock(bundle: str | os.PathLike[str]) -> Iterator[None]:
    """Hold ``<bundle>.lock`` for a whole training, so that two trainings never
    write one bundle (whichever adapter started them: the command line or the
    Train view's child process). The lock is the operating system's (flock;
    released when the process ends however it ends), so a lock file left by
    a process that died, whatever pid it names, is simply taken over; the
    file holds the pid for the message. :class:`TrainingLockedError` when it
    is held; OSError when the lock file cannot be written (before the
    training, not at the save)."""
    bundle = Path(bundle)
    lock = lock_path(bundle)
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = _take_lock(lock, bundle)
    try:
        yield
    finally:
        if sys.platform == "win32":  # pragma: no cover - an open file cannot be removed there
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(lock)  # before the lock is let go: nobody can take a lock on a file on its way out
        if sys.platform != "win32":
            os.close(fd)


def _write_pid(fd: int) -> int:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, f"{os.getpid()}\n".encode("ascii"))
    return fd


def _take_lock(lock: Path, bundle: Path) -> int:
    if sys.platform == "win32":  # pragma: no cover - a byte range of the file, also released when the process ends
        import msvcrt

        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.lseek(fd, 1024, os.SEEK_SET)  # the lock is a byte past the pid, so the pid can be read
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            holder = _holder(fd)
            os.close(fd)
            raise TrainingLockedError(bundle, holder) from None
        return _write_pid(fd)
    import fcntl

    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held by a running training
            holder = _holder(fd)
            os.close(fd)
            raise TrainingLockedError(bundle, holder) from None
        try:  # the holder may have ended and removed the file while we opened it: lock the current one
            same = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            same = False
        if same:
            return _write_pid(fd)
        os.close(fd)


def train_and_save(
    data: DatasetIndex | str | os.PathLike[str],
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    out: str | os.PathLike[str],
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    *,
    evaluate_test: bool = True,
    val_data: DatasetIndex | str | os.PathLike[str] | None = None,
    manifest_extra: dict[str, Any] | None = None,
    check_fast: bool = True,
    fast_precision_request: str | None = None,
) -> TrainOutcome:
    """Train on ``data``, evaluate on its test split (when it has one and
    ``evaluate_test``), and save the bundle atomically to ``out``
    (``.inspector`` is appended when missing). ``manifest_extra`` is merged
    into the manifest before saving (e.g. a demo record).

    ``check_fast``: where this machine has a fast scoring path (see
    :func:`inspection_core.acceleration.fast_precision`;
    ``fast_precision_request`` forces one), the finished model is scored on
    it and on fp32 and the fidelity rule (:mod:`.fidelity`) decides which
    path the bundle's provisional threshold belongs to; the result is
    stored in the bundle either way.

    The whole run holds the bundle's training lock (:func:`training_lock`):
    a second training of the same ``out`` raises :class:`TrainingLockedError`
    before anything is read."""
    from ..bundle import bundle_path

    with training_lock(bundle_path(out)):
        return _train_and_save(data, model_cfg, train_cfg, out, progress, cancel, evaluate_test=evaluate_test,
                               val_data=val_data, manifest_extra=manifest_extra, check_fast=check_fast,
                               fast_precision_request=fast_precision_request)


def _train_and_save(
    data: DatasetIndex | str | os.PathLike[str],
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    out: str | os.PathLike[str],
    progress: ProgressCallback | None,
    cancel: CancelToken | None,
    *,
    evaluate_test: bool,
    val_data: DatasetIndex | str | os.PathLike[str] | None,
    manifest_extra: dict[str, Any] | None,
    check_fast: bool,
    fast_precision_request: str | None,
) -> TrainOutcome:
    from ..bundle import save_bundle
    from ..evaluation import evaluate
    from ..inference import Inspector
    from ..training import train
    from ..training.trainer import in_memory_bundle
    from .fidelity import check_at_training, fidelity_record, path_to_check

    # where this machine has no fast path there is nothing to check, to say
    # or to keep the test images for
    check_fast = check_fast and path_to_check(train_cfg.device, fast_precision_request) is not None

    progress = progress or null_progress
    cancel = cancel or CancelToken()
    index = data if isinstance(data, DatasetIndex) else scan_dataset(Path(data), seed=train_cfg.seed)
    result = train(index, model_cfg, train_cfg, progress, cancel, val_data=val_data)
    cancel.raise_if_cancelled()
    manifest = result.manifest
    manifest.update(manifest_extra or {})
    scored = None
    if evaluate_test and index.test:
        def eval_progress(ev: ProgressEvent) -> None:
            progress(ProgressEvent("message", step=ev.step, steps=ev.steps,
                                   message=f"evaluating on the test split: {ev.step}/{ev.steps} images"))

        metrics, scored = evaluate(Inspector(in_memory_bundle(result), device=train_cfg.device), index,
                                   progress=eval_progress, cancel=cancel,
                                   keep_images=check_fast)  # the fast path's check scores them again
        manifest["metrics"] = metrics
    cancel.raise_if_cancelled()
    if check_fast and result.threshold_images is not None:
        progress(ProgressEvent("message", message="checking the fast scoring path against fp32"))
        test = (scored.images, scored.labels, scored.scores) if scored is not None and scored.images is not None \
            else (None, None, None)
        checked = check_at_training(in_memory_bundle(result), result.threshold_images, *test,  # type: ignore[misc]  # mypy miscounts a 3-tuple
                                    quantile=float(train_cfg.threshold_quantile), device=train_cfg.device,
                                    precision=fast_precision_request)
        if checked is not None:
            fid, fast_inference = checked
            manifest = fidelity_record(manifest, fid, fast_inference)
            progress(ProgressEvent("message", message=fid.summary(), payload={"fidelity": fid.to_dict()}))
    cancel.raise_if_cancelled()
    result.manifest = manifest
    path = save_bundle(out, result.model, manifest)
    return TrainOutcome(path=path, manifest=manifest, stopped_reason=result.stopped_reason)


def describe_fit(fit: dict[str, Any] | None, model: str | None = None) -> str:
    """What a one-pass fit built, for the CLI's and the Train view's summary
    (", memory bank of 8468 patches, global texture term on"); "" if nothing.
    The family ``model`` says it (``Family.describe_fit``); without ``model``,
    the first family that recognises the record."""
    from ..models.registry import families, family

    fit = fit or {}
    if not fit:
        return ""
    if model is not None:
        return family(model).describe_fit(fit)
    return next((text for fam in families().values() if (text := fam.describe_fit(fit))), "")


__all__ = ["TrainOutcome", "TrainingLockedError", "describe_fit", "lock_path", "train_and_save", "training_lock"]
