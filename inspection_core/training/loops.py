"""The two ways a detector family trains (``Detector.fit_mode``).

:func:`fit_updates` is the optimiser loop: an update budget (or epochs), the
learning-rate schedule, augmentation, validation rounds, the best-round
checkpoint, early stopping, divergence handling. :func:`fit_one_pass` shows
every training image once and lets the model build itself. Both report
:class:`~inspection_core.progress.ProgressEvent`\\ s and honour cancellation;
neither knows any model family.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..config import TrainConfig
from ..data.preprocess import from_tensor, to_tensor
from ..models import Detector
from ..progress import CancelToken, ProgressCallback, ProgressEvent
from ..augment import Augmentation

log = logging.getLogger(__name__)

#: validation rounds of an update-budget training (each one at least an epoch)
ROUNDS = 25


class TrainingError(RuntimeError):
    """Training could not run or had to stop (bad data, diverged losses)."""


@dataclass
class FitData:
    """The training and validation images of one run, in model geometry."""

    train_images: np.ndarray
    train_labels: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray
    supervised: bool

    @property
    def has_val_defects(self) -> bool:
        v = self.val_labels
        return bool(v.size and v.max() == 1 and v.min() == 0)


@dataclass
class FitRecord:
    """What a fit reports for the bundle's training section."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_metric: str = ""
    updates: int = 0
    stopped_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@torch.inference_mode()
def score_batches(model: Detector, images: np.ndarray, device: torch.device, batch_size: int) -> dict[str, np.ndarray]:
    """Scores, maps and mean reconstruction errors of ``images`` (eval mode)."""
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


def validation_metrics(model: Detector, data: FitData, device: torch.device, batch_size: int) -> dict[str, float]:
    """Validation AUROC (when the validation set has defects), the mean good
    score and, for reconstructing models, the mean good reconstruction error."""
    metrics: dict[str, float] = {}
    if not len(data.val_images):
        return metrics
    v = score_batches(model, data.val_images, device, batch_size)
    if data.has_val_defects:
        auc = _auroc(v["scores"], data.val_labels)
        if auc is not None:
            metrics["val_auroc"] = auc
    good = data.val_labels == 0
    if good.any():
        metrics["val_mean_score"] = float(np.mean(v["scores"][good]))
        if v["rec_err"].size:
            metrics["val_recon_error"] = float(np.mean(v["rec_err"][good]))
    return metrics


def _sample_payload(model: Detector, images: np.ndarray, device: torch.device, epoch: int) -> dict[str, Any]:
    with torch.inference_mode():
        x = to_tensor(images).to(device)
        out = model(x)
        payload: dict[str, Any] = {"epoch": epoch, "inputs": images.copy()}
        payload["reconstructions"] = None if out.reconstruction is None else from_tensor(out.reconstruction.float().cpu())
        gen = model.generate(len(images)) if model.can_generate else None
        payload["generated"] = None if gen is None else from_tensor(gen.float().cpu())
    return payload


def lr_factor(update: int, total: int, schedule: str, warmup: int) -> float:
    """Multiplier of the base learning rate before update ``update`` (0-based)."""
    if warmup > 0 and update < warmup:
        return (update + 1) / warmup
    if schedule != "cosine" or total <= warmup:
        return 1.0
    t = (update - warmup) / max(1, total - warmup)
    floor = 0.05
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))


def balanced_order(labels: np.ndarray, gen: torch.Generator) -> np.ndarray:
    """One pass over ``len(labels)`` training images drawn half from each class
    (the rarer class repeated, the commoner one subsampled), shuffled: every
    batch sees about as many defective parts as good ones."""
    n = len(labels)
    classes = [np.flatnonzero(labels == c) for c in (0, 1)]
    if any(len(c) == 0 for c in classes):
        return torch.randperm(n, generator=gen).numpy()
    picks = []
    for members, count in zip(classes, (n - n // 2, n // 2)):
        reps = -(-count // len(members))  # enough shuffled copies to draw count without favouring any image
        order = np.concatenate([members[torch.randperm(len(members), generator=gen).numpy()] for _ in range(reps)])
        picks.append(order[:count])
    both = np.concatenate(picks)
    return both[torch.randperm(n, generator=gen).numpy()]


def _batch_plan(n: int, tcfg: TrainConfig) -> tuple[int, int]:
    """(batch size, steps per epoch); no 1-image batch (BatchNorm)."""
    bs = min(tcfg.batch_size, n)
    steps = n // bs if n % bs < 2 else n // bs + 1
    if tcfg.max_steps_per_epoch:
        steps = min(steps, tcfg.max_steps_per_epoch)
    return bs, max(1, steps)


def fit_updates(model: Detector, data: FitData, tcfg: TrainConfig, device: torch.device, gen: torch.Generator,
                channels_last: bool, progress: ProgressCallback, cancel: CancelToken) -> FitRecord:
    """The optimiser loop (``fit_mode = "updates"``)."""
    images, labels = data.train_images, data.train_labels
    n = len(images)
    bs, steps_per_epoch = _batch_plan(n, tcfg)
    total = int(tcfg.updates) if tcfg.updates else steps_per_epoch * tcfg.epochs
    round_len = steps_per_epoch if not tcfg.updates else max(steps_per_epoch, math.ceil(total / ROUNDS))
    rounds = math.ceil(total / round_len)
    aug = Augmentation.from_dict(tcfg.augment)
    model.configure_optimizers(tcfg)
    base_lrs = {name: [g["lr"] for g in opt.param_groups] for name, opt in model.optimizers.items()}

    def set_lr(update: int) -> None:
        f = lr_factor(update, total, tcfg.lr_schedule, tcfg.warmup)
        for name, opt in model.optimizers.items():
            for g, lr0 in zip(opt.param_groups, base_lrs.get(name, [])):
                g["lr"] = lr0 * f

    sample_src = data.val_images if len(data.val_images) else images
    sample_idx = np.arange(min(tcfg.samples_per_epoch, len(sample_src)))
    rec = FitRecord()
    best_state: dict[str, torch.Tensor] | None = None
    best_value = math.inf
    bad_rounds = 0
    t0 = time.perf_counter()
    done = 0
    data_epoch, pos, perm = -1, steps_per_epoch, np.zeros(0, np.int64)

    for rnd in range(1, rounds + 1):
        model.train()
        sums: dict[str, float] = {}
        n_steps = min(round_len, total - done)
        diverged = None
        for step in range(n_steps):
            cancel.raise_if_cancelled()
            if pos >= steps_per_epoch:  # a new pass over the data
                data_epoch += 1
                model.on_epoch_start(data_epoch)
                perm = balanced_order(labels, gen) if data.supervised and tcfg.balanced_batches \
                    else torch.randperm(n, generator=gen).numpy()
                pos = 0
            idx = perm[pos * bs : (pos + 1) * bs]
            pos += 1
            x = to_tensor(images[idx]).to(device, non_blocking=True)
            x = aug(x)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = torch.from_numpy(labels[idx]).to(device) if data.supervised else None
            set_lr(done)
            losses = model.training_step(x, y)
            bad = [k for k, v in losses.items() if not math.isfinite(v)]
            if bad:
                diverged = f"loss {', '.join(bad)} became {losses[bad[0]]} at update {done + 1}"
                break
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + v
            done += 1
            el = time.perf_counter() - t0
            progress(ProgressEvent("step", rnd, rounds, step + 1, n_steps, el, el / done * (total - done), losses=losses))
        if diverged:
            rec.stopped_reason = diverged + (
                f"; kept the last good checkpoint (epoch {rec.best_epoch})" if best_state else "; no good checkpoint to keep")
            log.error(rec.stopped_reason)
            progress(ProgressEvent("message", rnd, rounds, message=rec.stopped_reason))
            if best_state is None:
                raise TrainingError(f"training diverged: {diverged} (try a lower learning rate)")
            break

        model.eval()
        metrics = validation_metrics(model, data, device, max(bs, 32))
        if "val_auroc" in metrics:
            key, value = "val_auroc", -metrics["val_auroc"]
        elif "val_recon_error" in metrics:
            key, value = "val_recon_error", metrics["val_recon_error"]
        else:
            key, value = "", -rnd  # nothing to judge by: keep the last round
        if tcfg.checkpoint == "last":
            key, value = "last", -rnd
        if not math.isfinite(value):
            value = math.inf
        improved = value < best_value
        if improved:
            best_value, rec.best_epoch, rec.best_metric = value, rnd, key
            best_state = {k: t.detach().clone() for k, t in model.state_dict().items()}
            bad_rounds = 0
        else:
            bad_rounds += 1
        mean_losses = {k: s / max(1, n_steps) for k, s in sums.items()}
        el = time.perf_counter() - t0
        rec.history.append({"epoch": rnd, "updates": done, "losses": mean_losses, "metrics": metrics,
                            "elapsed_s": round(el, 3), "best": improved})
        eta = el / max(1, done) * (total - done)
        progress(ProgressEvent("epoch", rnd, rounds, n_steps, n_steps, el, eta, losses=mean_losses, metrics=metrics))
        if tcfg.samples_per_epoch > 0 and len(sample_idx):
            progress(ProgressEvent("sample", rnd, rounds, payload=_sample_payload(model, sample_src[sample_idx], device, rnd)))
        if tcfg.early_stopping_patience and bad_rounds >= tcfg.early_stopping_patience:
            rec.stopped_reason = f"early stopping: {rec.best_metric or 'metric'} did not improve for {bad_rounds} epochs"
            break

    if best_state is not None:
        model.load_state_dict(best_state)
    rec.updates = done
    rec.extra = {"batch_size": bs, "steps_per_epoch": steps_per_epoch, "data_epochs": data_epoch + 1}
    return rec


def fit_one_pass(model: Detector, data: FitData, tcfg: TrainConfig, device: torch.device,
                 channels_last: bool, progress: ProgressCallback, cancel: CancelToken) -> FitRecord:
    """One pass over the training images, then the model builds itself
    (``fit_mode = "one_pass"``). Two progress phases: 1/2 features, 2/2 build."""
    images = data.train_images
    n = len(images)
    bs = max(1, min(tcfg.batch_size, n))
    steps = math.ceil(n / bs)
    t0 = time.perf_counter()
    model.eval()
    progress(ProgressEvent("message", message=f"extracting features of {n} training images"))
    for i in range(steps):
        cancel.raise_if_cancelled()
        x = to_tensor(images[i * bs : (i + 1) * bs]).to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        model.fit_batch(x)
        el = time.perf_counter() - t0
        progress(ProgressEvent("step", 1, 2, i + 1, steps, el, None, message=f"features: {min(n, (i + 1) * bs)}/{n} images"))
    t_feat = time.perf_counter() - t0
    progress(ProgressEvent("message", message="building the model from the training features"))

    def tick(done: int, total: int) -> None:
        cancel.raise_if_cancelled()
        el = time.perf_counter() - t0
        progress(ProgressEvent("step", 2, 2, done, total, el, None, message=f"building: {done}/{total}"))

    extra = dict(model.fit_finish(tick))
    el = time.perf_counter() - t0
    extra.update({"feature_s": round(t_feat, 2), "build_s": round(el - t_feat, 2)})
    model.eval()
    metrics = validation_metrics(model, data, device, max(bs, 32))
    rec = FitRecord(best_epoch=1, best_metric="", updates=0, extra=extra)
    rec.history.append({"epoch": 1, "updates": 0, "losses": {}, "metrics": metrics, "elapsed_s": round(el, 3), "best": True})
    progress(ProgressEvent("epoch", 1, 1, steps, steps, el, 0.0, metrics=metrics))
    return rec
