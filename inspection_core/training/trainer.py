"""The generic training loop shared by every detector.

The model owns its losses and optimisers (``Detector.training_step``); this
loop owns the data, epochs, validation, best-epoch checkpoint, early stopping,
failure handling, progress events and cancellation, and assembles the bundle
manifest (preprocessing, score statistics, provisional threshold).
"""

from __future__ import annotations

import copy
import logging
import math
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
from ..data.preprocess import Preprocessing, from_tensor, to_tensor
from ..device import resolve_device
from ..models import Detector, build_model, model_class
from ..progress import CancelToken, ProgressCallback, ProgressEvent, null_progress

log = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    """Training could not run or had to stop (bad data, diverged losses)."""


@dataclass
class TrainResult:
    model: Detector
    manifest: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped_reason: str | None = None


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


@torch.inference_mode()
def _score_batches(model: Detector, images: np.ndarray, device: torch.device, batch_size: int) -> dict[str, np.ndarray]:
    scores, maps, rec_err = [], [], []
    for i in range(0, len(images), batch_size):
        x = to_tensor(images[i : i + batch_size]).to(device)
        out = model(x)
        scores.append(out.scores.float().cpu().numpy())
        maps.append(out.anomaly_map.float().cpu().numpy())
        if out.reconstruction is not None:
            rec_err.append((x.float() - out.reconstruction.float()).abs().mean(dim=(1, 2, 3)).cpu().numpy())
    return {
        "scores": np.concatenate(scores).astype(np.float64) if scores else np.zeros(0),
        "maps": np.concatenate(maps) if maps else np.zeros((0, 1, 1), np.float32),
        "rec_err": np.concatenate(rec_err).astype(np.float64) if rec_err else np.zeros(0),
    }


def _auroc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    if len(set(labels.tolist())) < 2 or not np.all(np.isfinite(scores)):
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


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


def _sample_payload(model: Detector, images: np.ndarray, device: torch.device, epoch: int) -> dict[str, Any]:
    with torch.inference_mode():
        x = to_tensor(images).to(device)
        out = model(x)
        payload: dict[str, Any] = {"epoch": epoch, "inputs": images.copy()}
        payload["reconstructions"] = None if out.reconstruction is None else from_tensor(out.reconstruction.float().cpu())
        gen = model.generate(len(images)) if model.can_generate else None
        payload["generated"] = None if gen is None else from_tensor(gen.float().cpu())
    return payload


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
    test split is used for per-epoch validation AUROC. Raises
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
    pp = Preprocessing(mcfg.image_size, mcfg.channels)

    # ------------------------------------------------------------ the data
    split_info: dict[str, Any] = {}
    if cls.supervised:
        from ..data.splits import supervised_split

        sp = supervised_split(index, seed=tcfg.seed)
        train_samples, val_samples = sp.train, sp.val
        split_info = {
            "kind": "supervised",
            "seed": tcfg.seed,
            "test_paths": [str(Path(s.path).relative_to(index.root)) for s in sp.test],
        }
        if not any(s.label == 1 for s in train_samples):
            raise TrainingError(
                f"model '{mcfg.model}' is supervised and needs defective images for training; "
                f"none found in '{index.root}' (expected test/<defect_type>/ or defect/ folders)"
            )
    else:
        train_samples, val_samples = _split_good([s for s in index.train if s.label == 0], tcfg.val_fraction, tcfg.seed)
        split_info = {"kind": "unsupervised", "seed": tcfg.seed, "val_fraction": tcfg.val_fraction}
    if val_data is not None:
        vindex = val_data if isinstance(val_data, DatasetIndex) else scan_dataset(Path(val_data), seed=tcfg.seed)
        extra_val = [s for s in vindex.test]
    else:
        extra_val = []

    progress(ProgressEvent("message", message=f"loading {len(train_samples)} training images"))
    loaded = load_images(train_samples, pp)
    if len(loaded.images) < 2:
        raise TrainingError(f"too few readable training images in '{index.root}' ({len(loaded.images)}); need at least 2")
    val_loaded = load_images(val_samples + extra_val, pp) if (val_samples or extra_val) else None
    skipped = list(loaded.skipped) + (list(val_loaded.skipped) if val_loaded else [])
    for path, reason in skipped:
        log.warning("skipped %s: %s", path, reason)
    train_images = loaded.images
    train_labels = np.array([s.label for s in loaded.samples], dtype=np.int64)
    val_images = val_loaded.images if val_loaded else np.zeros((0,) + train_images.shape[1:], np.uint8)
    val_labels = np.array([s.label for s in val_loaded.samples], dtype=np.int64) if val_loaded else np.zeros(0, np.int64)
    has_val_defects = bool(val_labels.size and val_labels.max() == 1 and val_labels.min() == 0)

    # ------------------------------------------------------------ the model
    model = build_model(mcfg).to(device)
    channels_last = device.type != "cpu" or tcfg.cpu_bf16 or bool(tcfg.extra.get("channels_last"))
    if channels_last:  # bf16 oneDNN kernels like NHWC; bf16 training measured 1.8-2.1x fp32 per epoch (docs/performance.md)
        model = model.to(memory_format=torch.channels_last)
    dtype, scaler, precision = _precision_for(device, tcfg)
    model.set_precision(dtype, scaler)
    if hasattr(model, "set_class_balance"):
        model.set_class_balance(int((train_labels == 0).sum()), int((train_labels == 1).sum()))
    model.configure_optimizers(tcfg)

    n = len(train_images)
    bs = min(tcfg.batch_size, n)
    steps = n // bs if n % bs < 2 else n // bs + 1  # no 1-image batch (BatchNorm)
    if tcfg.max_steps_per_epoch:
        steps = min(steps, tcfg.max_steps_per_epoch)
    total_steps = steps * tcfg.epochs
    sample_idx = np.arange(min(tcfg.samples_per_epoch, len(val_images) or n))
    sample_src = val_images if len(val_images) else train_images

    history: list[dict[str, Any]] = []
    best_state: dict[str, torch.Tensor] | None = None
    best_epoch, best_value, best_key = 0, math.inf, ""
    bad_epochs = 0
    stopped_reason: str | None = None
    t_start = time.perf_counter()
    done_steps = 0
    progress(ProgressEvent("message", message=f"training {mcfg.model} on {device} ({precision}), {n} images, {steps} steps/epoch"))

    for epoch in range(1, tcfg.epochs + 1):
        model.train()
        if hasattr(model, "on_epoch_start"):
            model.on_epoch_start(epoch - 1)  # 0-based
        perm = torch.randperm(n, generator=gen).numpy()
        sums: dict[str, float] = {}
        diverged = None
        for step in range(steps):
            cancel.raise_if_cancelled()
            idx = perm[step * bs : (step + 1) * bs]
            x = to_tensor(train_images[idx]).to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = torch.from_numpy(train_labels[idx]).to(device) if cls.supervised else None
            losses = model.training_step(x, y)
            bad = [k for k, v in losses.items() if not math.isfinite(v)]
            if bad:
                diverged = f"loss {', '.join(bad)} became {losses[bad[0]]} at epoch {epoch}, step {step + 1}"
                break
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + v
            done_steps += 1
            elapsed = time.perf_counter() - t_start
            eta = elapsed / done_steps * (total_steps - done_steps)
            progress(ProgressEvent("step", epoch, tcfg.epochs, step + 1, steps, elapsed, eta, losses=losses))
        if diverged:
            stopped_reason = diverged + (
                f"; kept the last good checkpoint (epoch {best_epoch})" if best_state else "; no good checkpoint to keep"
            )
            log.error(stopped_reason)
            progress(ProgressEvent("message", epoch, tcfg.epochs, message=stopped_reason))
            if best_state is None:
                raise TrainingError(f"training diverged: {diverged} (try a lower learning rate)")
            break

        # -------------------------------------------------- validation
        model.eval()
        metrics: dict[str, float] = {}
        if len(val_images):
            v = _score_batches(model, val_images, device, max(bs, 32))
            if has_val_defects:
                auc = _auroc(v["scores"], val_labels)
                if auc is not None:
                    metrics["val_auroc"] = auc
            good = val_labels == 0
            if good.any():
                metrics["val_mean_score"] = float(np.mean(v["scores"][good]))
                if v["rec_err"].size:
                    metrics["val_recon_error"] = float(np.mean(v["rec_err"][good]))
        if "val_auroc" in metrics:
            key, value = "val_auroc", -metrics["val_auroc"]
        elif "val_recon_error" in metrics:
            key, value = "val_recon_error", metrics["val_recon_error"]
        else:
            key, value = "", -epoch  # no validation: keep the last epoch
        if not math.isfinite(value):
            value = math.inf
        improved = value < best_value
        if improved:
            best_value, best_epoch, best_key = value, epoch, key
            best_state = {k: t.detach().clone() for k, t in model.state_dict().items()}
            bad_epochs = 0
        else:
            bad_epochs += 1
        mean_losses = {k: s / max(1, steps) for k, s in sums.items()}
        elapsed = time.perf_counter() - t_start
        record = {"epoch": epoch, "losses": mean_losses, "metrics": metrics, "elapsed_s": round(elapsed, 3), "best": improved}
        history.append(record)
        eta = elapsed / max(1, done_steps) * (total_steps - done_steps)
        progress(ProgressEvent("epoch", epoch, tcfg.epochs, steps, steps, elapsed, eta, losses=mean_losses, metrics=metrics))
        if tcfg.samples_per_epoch > 0:
            progress(ProgressEvent("sample", epoch, tcfg.epochs, payload=_sample_payload(model, sample_src[sample_idx], device, epoch)))
        if tcfg.early_stopping_patience and bad_epochs >= tcfg.early_stopping_patience:
            stopped_reason = f"early stopping: {best_key or 'metric'} did not improve for {bad_epochs} epochs"
            break

    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    model = model.to(memory_format=torch.contiguous_format)
    duration = time.perf_counter() - t_start

    # ------------------------------------------------- score statistics
    stat_images = val_images[val_labels == 0] if len(val_images) and (val_labels == 0).any() else train_images[train_labels == 0]
    st = _score_batches(model, stat_images, device, 32)
    stats = score_statistics(st["scores"], st["maps"])
    stats["source"] = "held-out good images" if len(val_images) else "training images (no held-out split)"
    q = tcfg.threshold_quantile
    provisional = float(np.quantile(st["scores"], q))

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
                "n_train": int(len(train_images)),
                "n_val": int(len(val_images)),
                "n_skipped": len(skipped),
                "skipped": [f"{p}: {r}" for p, r in skipped[:50]],
            },
            "split": split_info,
            "epochs_run": len(history),
            "best_epoch": best_epoch,
            "best_metric": best_key,
            "duration_s": round(duration, 2),
            "device": str(device),
            "precision": precision,
            "history": history,
            "stopped_reason": stopped_reason,
        },
        "score_stats": stats,
        "threshold": {"high": provisional, "low": None, "strategy": "quantile", "target": q, "provisional": True},
        "calibration_history": [],
        "metrics": {},
        "inference": {"precision": "fp32"},
    }
    if hasattr(model, "init_source"):
        manifest["training"]["init_source"] = model.init_source
    progress(ProgressEvent("done", len(history), tcfg.epochs, elapsed_s=duration, message=stopped_reason or "finished"))
    return TrainResult(model=model, manifest=manifest, history=history, stopped_reason=stopped_reason)


def in_memory_bundle(result: TrainResult) -> Bundle:
    """A Bundle of a just-trained model, for scoring before it is saved."""
    return Bundle(path=None, manifest=result.manifest, state_dict=result.model.state_dict())
