"""Use case: train a detector, evaluate it on the test split, save the bundle.

Written once for every adapter: ``inspector train``, the Train view (in a
child process, see ``app/views/train_process.py``) and the demo builder. A
cancel at any point before saving leaves no file (the save is atomic).
"""

from __future__ import annotations

import os
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
    stored in the bundle either way."""
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
        checked = check_at_training(in_memory_bundle(result), result.threshold_images, *test,
                                    quantile=float(manifest["threshold"]["target"]), device=train_cfg.device,
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


__all__ = ["TrainOutcome", "describe_fit", "train_and_save"]
