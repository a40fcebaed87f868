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
) -> TrainOutcome:
    """Train on ``data``, evaluate on its test split (when it has one and
    ``evaluate_test``), and save the bundle atomically to ``out``
    (``.inspector`` is appended when missing). ``manifest_extra`` is merged
    into the manifest before saving (e.g. a demo record)."""
    from ..bundle import save_bundle
    from ..evaluation import evaluate
    from ..inference import Inspector
    from ..training import train
    from ..training.trainer import in_memory_bundle

    progress = progress or null_progress
    cancel = cancel or CancelToken()
    index = data if isinstance(data, DatasetIndex) else scan_dataset(Path(data), seed=train_cfg.seed)
    result = train(index, model_cfg, train_cfg, progress, cancel, val_data=val_data)
    cancel.raise_if_cancelled()
    manifest = result.manifest
    manifest.update(manifest_extra or {})
    if evaluate_test and index.test:
        def eval_progress(ev: ProgressEvent) -> None:
            progress(ProgressEvent("message", step=ev.step, steps=ev.steps,
                                   message=f"evaluating on the test split: {ev.step}/{ev.steps} images"))

        metrics, _ = evaluate(Inspector(in_memory_bundle(result), device=train_cfg.device), index,
                              progress=eval_progress, cancel=cancel)
        manifest["metrics"] = metrics
    cancel.raise_if_cancelled()
    path = save_bundle(out, result.model, manifest)
    return TrainOutcome(path=path, manifest=manifest, stopped_reason=result.stopped_reason)


__all__ = ["TrainOutcome", "train_and_save"]
