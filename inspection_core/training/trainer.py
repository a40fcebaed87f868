"""The training engine shared by every detector family.

It owns the data (splits, loading, the one preprocessing path), the device
and precision, and the bundle manifest (preprocessing, score statistics,
provisional threshold, training record). How the model is fitted is the
family's own declaration (``Detector.fit_mode``), run by
:mod:`inspection_core.training.loops`; there is no case for any model here.
"""

from __future__ import annotations

import copy
import logging
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..bundle import Bundle, utc_now
from ..config import ModelConfig, TrainConfig
from ..data.dataset import DatasetIndex, Sample, load_images, scan_dataset
from ..data.preprocess import Preprocessing
from ..device import resolve_device
from ..frame_check import training_statistics
from ..models import Detector, build_model, model_class
from ..models.base import FitInfo
from ..progress import CancelToken, ProgressCallback, ProgressEvent, null_progress
from .loops import FitData, TrainingError, fit_one_pass, fit_updates, score_batches

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    model: Detector
    manifest: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped_reason: str | None = None
    #: the prepared images the provisional threshold was computed on (for the fast path's check)
    threshold_images: np.ndarray | None = None


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def _split_good(samples: list[Sample], fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    if fraction <= 0 or len(samples) < 10:
        return list(samples), []
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(samples))
    n_val = max(2, int(round(len(samples) * fraction)))
    val_idx = set(order[:n_val].tolist())
    train = [s for i, s in enumerate(samples) if i not in val_idx]
    val = [s for i, s in enumerate(samples) if i in val_idx]
    return train, val


def _precision_for(device: torch.device, tcfg: TrainConfig) -> tuple[torch.dtype | None, bool, str]:
    """(autocast dtype, needs GradScaler, name) for this device and config."""
    if device.type == "cuda" and tcfg.amp:
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16, False, "bf16-amp"
        return torch.float16, True, "fp16-amp"
    if device.type == "cpu" and tcfg.cpu_bf16:
        return torch.bfloat16, False, "bf16-amp"
    return None, False, "fp32"


def score_statistics(scores: np.ndarray, maps: np.ndarray) -> dict[str, float]:
    """Statistics of held-out good images, fixed at training time and stored in
    the bundle (heat maps are scaled with ``map_scale``, never with min/max
    over the images being scored)."""
    scores = np.asarray(scores, np.float64)
    flat = maps.reshape(len(maps), -1) if len(maps) else np.zeros((1, 1))
    return {
        "n": int(len(scores)),
        "mean": float(scores.mean()),
        "std": float(scores.std()),
        "min": float(scores.min()),
        "q50": float(np.quantile(scores, 0.5)),
        "q95": float(np.quantile(scores, 0.95)),
        "q99": float(np.quantile(scores, 0.99)),
        "max": float(scores.max()),
        # a pixel error this large is "fully hot" in the heat map
        "map_scale": float(max(np.quantile(flat, 0.999) * 1.5, 1e-6)),
    }


def _split(index: DatasetIndex, supervised: bool, tcfg: TrainConfig, model: str
           ) -> tuple[list[Sample], list[Sample], dict[str, Any]]:
    """Training and validation samples and the split record for the manifest."""
    if supervised:
        from ..data.splits import supervised_split

        sp = supervised_split(index, seed=tcfg.seed, hold_out_train_good=tcfg.holdout_train_good)
        if not any(s.label == 1 for s in sp.train):
            raise TrainingError(
                f"model '{model}' is supervised and needs defective images for training; "
                f"none found in '{index.root}' (expected test/<defect_type>/ or defect/ folders)"
            )
        info = {"kind": "supervised", "seed": tcfg.seed, "sizes": sp.summary(),
                "test_paths": [str(Path(s.path).relative_to(index.root)) for s in sp.test]}
        return sp.train, sp.val, info
    train, val = _split_good([s for s in index.train if s.label == 0], tcfg.val_fraction, tcfg.seed)
    return train, val, {"kind": "unsupervised", "seed": tcfg.seed, "val_fraction": tcfg.val_fraction}


def _load(index: DatasetIndex, train_samples: list[Sample], val_samples: list[Sample], pp: Preprocessing,
          supervised: bool, progress: ProgressCallback, cancel: CancelToken
          ) -> tuple[FitData, list[tuple[Path, str]], dict[str, Any], dict[str, Any]]:
    """The images in model geometry, what was skipped, and the training
    images' statistics (``drift.input_statistics``: what inputs a station
    should expect; ``frame_check.training_statistics``: what a frame that
    carries a part looks like)."""
    from ..drift import input_statistics

    progress(ProgressEvent("message", message=f"loading {len(train_samples)} training images"))
    loaded = load_images(train_samples, pp, cancel=cancel)
    if len(loaded.images) < 2:
        raise TrainingError(f"too few readable training images in '{index.root}' ({len(loaded.images)}); need at least 2")
    val_loaded = load_images(val_samples, pp, cancel=cancel) if val_samples else None
    skipped = list(loaded.skipped) + (list(val_loaded.skipped) if val_loaded else [])
    shape = loaded.images.shape[1:]
    data = FitData(
        train_images=loaded.images,
        train_labels=np.array([s.label for s in loaded.samples], dtype=np.int64),
        val_images=val_loaded.images if val_loaded else np.zeros((0,) + shape, np.uint8),
        val_labels=np.array([s.label for s in val_loaded.samples], dtype=np.int64) if val_loaded else np.zeros(0, np.int64),
        supervised=supervised,
    )
    good_frames = [f for f, s in zip(loaded.frames, loaded.samples) if s.label == 0] or loaded.frames
    return data, skipped, input_statistics(loaded.images, loaded.shapes), training_statistics(good_frames)


def train(
    data: DatasetIndex | str | os.PathLike[str],
    model_cfg: ModelConfig,
    train_cfg: TrainConfig | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    val_data: DatasetIndex | str | os.PathLike[str] | None = None,
) -> TrainResult:
    """Train a detector on ``data`` and return it with its bundle manifest.

    Unsupervised models train on the good training images, holding out
    ``val_fraction`` of them; supervised ones use a stratified split of good
    and defective images. ``val_data`` (optional) is a labelled folder whose
    test split is used for validation AUROC. Raises
    :class:`~inspection_core.progress.Cancelled` when ``cancel`` is set.
    """
    tcfg = train_cfg or TrainConfig()
    tcfg.validate()
    progress = progress or null_progress
    cancel = cancel or CancelToken()
    index = data if isinstance(data, DatasetIndex) else scan_dataset(Path(data), seed=tcfg.seed)
    mcfg = copy.deepcopy(model_cfg)
    mcfg.channels = index.channels
    mcfg.validate()
    cls = model_class(mcfg.model)
    gen = seed_everything(tcfg.seed)
    device = resolve_device(tcfg.device)
    pp = Preprocessing(mcfg.image_size, mcfg.channels, mcfg.normalize)

    train_samples, val_samples, split_info = _split(index, cls.supervised, tcfg, mcfg.model)
    if val_data is not None:
        vindex = val_data if isinstance(val_data, DatasetIndex) else scan_dataset(Path(val_data), seed=tcfg.seed)
        val_samples = val_samples + list(vindex.test)
    fit_data, skipped, input_stats, frame_section = _load(index, train_samples, val_samples, pp, cls.supervised, progress, cancel)
    for path, reason in skipped:
        log.warning("skipped %s: %s", path, reason)

    model = build_model(mcfg).to(device)
    labels = fit_data.train_labels
    model.setup_training(FitInfo(n_train=len(labels), n_good=int((labels == 0).sum()), n_defect=int((labels == 1).sum()),
                                 image_size=mcfg.image_size, seed=tcfg.seed, train_cfg=tcfg))
    channels_last = device.type != "cpu" or tcfg.cpu_bf16 or bool(tcfg.extra.get("channels_last"))
    if channels_last:  # bf16 oneDNN kernels like NHWC; bf16 training measured 1.8-2.1x fp32 per epoch (docs/performance.md)
        model = model.to(memory_format=torch.channels_last)
    dtype, scaler, precision = _precision_for(device, tcfg)
    model.set_precision(dtype, scaler)
    n = len(fit_data.train_images)
    progress(ProgressEvent("message", message=f"training {mcfg.model} on {device} ({precision}), {n} images"))
    t_start = time.perf_counter()
    if cls.fit_mode == "one_pass":
        rec = fit_one_pass(model, fit_data, tcfg, device, channels_last, progress, cancel)
    else:
        rec = fit_updates(model, fit_data, tcfg, device, gen, channels_last, progress, cancel)
    model.eval()
    model = model.to(memory_format=torch.contiguous_format)
    duration = time.perf_counter() - t_start

    # ------------------------------------------------- score statistics
    vi, vl = fit_data.val_images, fit_data.val_labels
    has_val_good = bool(len(vi) and (vl == 0).any())
    stat_images = vi[vl == 0] if has_val_good else fit_data.train_images[labels == 0]
    st = score_batches(model, stat_images, device, 32)
    stats: dict[str, Any] = score_statistics(st["scores"], st["maps"])
    stats["source"] = "held-out good images" if has_val_good else "training images (no held-out split)"
    q = tcfg.threshold_quantile
    provisional = float(np.quantile(st["scores"], q))
    threshold: dict[str, Any] = {"high": provisional, "low": None, "strategy": "quantile", "target": q, "provisional": True}
    if cls.supervised and fit_data.has_val_defects and has_val_good:
        # a classifier has labelled defects to validate on: the point of best balanced accuracy on them
        # (a quantile of a few dozen good scores alone ignores what it learned about defects)
        from ..calibration_thresholds import choose_threshold

        defect_scores = score_batches(model, vi[vl == 1], device, 32)["scores"]  # the good ones are scored above
        val_scores = np.concatenate([st["scores"], defect_scores])
        val_labels = np.concatenate([np.zeros(len(st["scores"]), np.int64), np.ones(len(defect_scores), np.int64)])
        threshold.update(high=choose_threshold(val_scores, val_labels, "youden"), strategy="youden", target=None)

    manifest: dict[str, Any] = {
        "created": utc_now(),
        "model": mcfg.to_dict(),
        "preprocessing": pp.to_dict(),
        "training": {
            "config": tcfg.to_dict(),
            "data": {
                **index.summary(),
                "root": str(index.root),
                "fingerprint": index.fingerprint(),
                "n_train": int(n),
                "n_val": int(len(vi)),
                "n_skipped": len(skipped),
                "skipped": [f"{p}: {r}" for p, r in skipped[:50]],
                "input_stats": input_stats,
            },
            "split": split_info,
            "fit_mode": cls.fit_mode,
            "epochs_run": len(rec.history),
            "updates": rec.updates,
            "best_epoch": rec.best_epoch,
            "best_metric": rec.best_metric,
            "duration_s": round(duration, 2),
            "device": str(device),
            "precision": precision,
            "fit": rec.extra,
            "history": rec.history,
            "stopped_reason": rec.stopped_reason,
            **model.training_record(),
        },
        "score_stats": stats,
        "frame_check": frame_section,
        "threshold": threshold,
        "calibration_history": [],
        "metrics": {},
        "inference": {"precision": "fp32"},
    }
    progress(ProgressEvent("done", len(rec.history), len(rec.history), elapsed_s=duration,
                           message=rec.stopped_reason or "finished"))
    return TrainResult(model=model, manifest=manifest, history=rec.history, stopped_reason=rec.stopped_reason,
                       threshold_images=stat_images)


def in_memory_bundle(result: TrainResult) -> Bundle:
    """A Bundle of a just-trained model, for scoring before it is saved."""
    return Bundle(path=None, manifest=result.manifest, state_dict=result.model.state_dict())


__all__ = ["TrainResult", "TrainingError", "in_memory_bundle", "score_statistics", "train"]
