"""Use case: how long a training run will take on this machine, before it starts.

The command line and the Train view both warn before a run that would take
more than a few minutes (a GAN preset on a 2-core CPU runs for many minutes
to most of an hour; PatchCore fits in a minute or two). The estimate is
measured, not guessed: :func:`probe_costs` builds the resolved model (random
start weights: the same arithmetic, no download) and times on this machine,
with the thread count the run will use:

- one training unit: a forward and backward update (``fit_mode =
  "updates"``) or one feature batch (``"one_pass"``) at the run's batch
  size (scaled per image from a batch of :data:`PROBE_BATCH` where the full
  batch would cost more than :data:`FULL_BATCH_BUDGET_S`);
- one image scored as the evaluation scores it (an update family; a
  one-pass family's scoring needs what it builds from every image, so it is
  taken as a measured share of its feature cost).

:func:`estimate_training` multiplies them by what
:func:`~inspection_core.usecases.training.train_and_save` does: the update
budget and its validation rounds, or the feature batches and the build;
the score statistics, the test split's evaluation and, where this machine
has a fast scoring path, its check. The probe takes one to three seconds;
torch is imported inside the functions only.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Any

from ..config import ModelConfig, TrainConfig

#: above this, a run is "long": adapters say so before it starts
LONG_RUN_S = 180.0
#: the first batch timed; the run's batch is timed too where that costs at
#: most FULL_BATCH_BUDGET_S, else the probe is scaled per image (a small
#: batch costs more per image: GANomaly 128 px bf16 1.06 s per update of 16
#: scaled from 4 images against 0.46 s measured at 16)
PROBE_BATCH = 4
FULL_BATCH_BUDGET_S = 3.0
#: images per batch when a scored image is timed (the evaluation scores 32 at a time)
SCORE_BATCH = 16
#: a one-pass family's build after its feature pass: a fixed part worth this
#: many images' features plus this share of the pass; and one image scored,
#: as a share of one image's features. Measured with PatchCore standard, 1
#: thread on the 2-core machine: demo washers (43 images) features 8.3 s,
#: build 19.7 s; magnetic_tile (180) features 32 s, build 22.5 s (the
#: global term's Gaussian is most of the fixed part, the coreset the rest);
#: scoring 60-70 ms an image against 150-180 ms of features
ONE_PASS_BUILD_FIXED_IMAGES = 110
ONE_PASS_BUILD_FACTOR = 0.3
ONE_PASS_SCORE_FACTOR = 0.4
#: reading and preprocessing one image (PNG, 256 px: 180 in 1.2 s)
LOAD_S_PER_IMAGE = 0.007
#: starting the training (the Train view's child process imports torch)
START_S = 4.0


@dataclass(frozen=True)
class ProbeCosts:
    """Seconds of one training unit at the run's batch size and of one image scored."""

    unit_s: float
    score_s_per_image: float
    batch_size: int
    probe_batch: int
    threads: int


@dataclass(frozen=True)
class TrainingEstimate:
    """How long a run takes on this machine, and what it is made of."""

    seconds: float
    fit_mode: str           # "updates" or "one_pass"
    units: int              # updates, or feature batches
    unit_s: float           # seconds per update / feature batch
    scoring_s: float        # validation, statistics, test evaluation, fast path's check
    costs: ProbeCosts

    @property
    def long(self) -> bool:
        return self.seconds > LONG_RUN_S

    def what(self, mcfg: ModelConfig, tcfg: TrainConfig) -> str:
        """What the run does, in a user's words ("600 updates of 16 images at 128 px")."""
        if self.fit_mode == "one_pass":
            return (f"one pass over the images at {mcfg.image_size} px ({self.units} batches of "
                    f"{self.costs.batch_size}), then the model is built")
        budget = f"{self.units} updates" if tcfg.updates else f"{tcfg.epochs} epochs ({self.units} updates)"
        return f"{budget} of {self.costs.batch_size} images at {mcfg.image_size} px"


def duration_text(seconds: float) -> str:
    """A rounded duration for a sentence: "under a minute", "about 2 min", "about 1 h 20 min"."""
    if seconds < 45:
        return "under a minute"
    minutes = seconds / 60.0
    if minutes < 60:
        return f"about {max(1, round(minutes))} min"
    h, m = divmod(int(round(minutes / 5.0) * 5), 60)
    return f"about {h} h" + (f" {m} min" if m else "")


def fit_split(n_train: int, tcfg: TrainConfig) -> tuple[int, int]:
    """(images fitted, images held out), as the engine splits a folder's good training images."""
    if tcfg.val_fraction <= 0 or n_train < 10:
        return n_train, 0
    n_val = max(2, int(round(n_train * tcfg.val_fraction)))
    return n_train - n_val, n_val


def _probe_params(mcfg: ModelConfig) -> ModelConfig:
    """The model's config with random start weights everywhere (same cost, no download)."""
    from ..models import model_class

    cls = model_class(mcfg.model)
    probe = copy.deepcopy(mcfg)
    defaults = cls.default_params()
    if cls.weights_param:
        probe.params[cls.weights_param] = cls.scratch_weights or "random"
    if "perceptual_weights" in defaults:
        probe.params["perceptual_weights"] = "random"
    return probe


def probe_costs(mcfg: ModelConfig, tcfg: TrainConfig, n_train: int, threads: int | None = None) -> ProbeCosts:
    """Time one training unit and one scored image of the resolved model on
    this machine (see the module docstring). ``threads``: the torch threads
    the run will use (the calling thread's count is restored after)."""
    import torch

    from ..device import resolve_device
    from ..models import build_model, model_class
    from ..models.base import FitInfo

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        device = resolve_device(tcfg.device)
        cls = model_class(mcfg.model)
        pcfg = _probe_params(mcfg)
        n_fit, _ = fit_split(max(2, n_train), tcfg)
        bs = max(1, min(tcfg.batch_size, n_fit))
        g = torch.Generator().manual_seed(0)
        model = build_model(pcfg).to(device)
        model.setup_training(FitInfo(n_train=n_fit, n_good=n_fit, n_defect=0, image_size=pcfg.image_size,
                                     seed=tcfg.seed, train_cfg=tcfg))
        channels_last = device.type != "cpu" or tcfg.cpu_bf16 or bool(tcfg.extra.get("channels_last"))
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        if device.type == "cpu" and tcfg.cpu_bf16:
            model.set_precision(torch.bfloat16, False)
        elif device.type == "cuda" and tcfg.amp:
            model.set_precision(torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16,
                                not torch.cuda.is_bf16_supported())

        def batch(n: int) -> torch.Tensor:
            x = torch.rand(n, pcfg.channels, pcfg.image_size, pcfg.image_size, generator=g).mul_(2).sub_(1).to(device)
            return x.contiguous(memory_format=torch.channels_last) if channels_last else x

        def timed(fn: Any) -> float:
            """Seconds ``fn`` takes. On a CPU the processor time the probe
            used where that is less than the wall-clock time: a core that
            another program held meanwhile is not this machine's speed (one
            probe on a busy 2-core machine measured 7 s an update on the wall
            clock where the run averaged 1.6 s)."""
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
                return time.perf_counter() - t0
            return min(time.perf_counter() - t0, time.process_time() - c0)

        if cls.fit_mode == "one_pass":
            model.eval()
            step = model.fit_batch
        else:
            model.configure_optimizers(tcfg)
            model.train()

            def step(x: torch.Tensor) -> None:
                y = (torch.arange(x.shape[0]) % 2).to(device) if cls.supervised else None
                model.training_step(x, y)

        probe_bs = min(bs, PROBE_BATCH)
        timed(lambda: step(batch(probe_bs)))  # warm-up: kernels chosen, buffers allocated
        unit_s = timed(lambda: step(batch(probe_bs))) * bs / probe_bs
        if probe_bs < bs and unit_s <= FULL_BATCH_BUDGET_S:  # affordable: time the batch the run uses
            unit_s = timed(lambda: step(batch(bs)))
            probe_bs = bs
            if unit_s <= FULL_BATCH_BUDGET_S / 3:  # and once more: the faster of two (another process's burst)
                unit_s = min(unit_s, timed(lambda: step(batch(bs))))
        if cls.fit_mode == "one_pass":
            # what it builds from the whole set (a memory bank) is not there to
            # search: scoring is taken as a measured share of the feature pass
            score_s = ONE_PASS_SCORE_FACTOR * unit_s / bs
        else:
            # scored as the evaluation scores (fp32, channels-last chunks on a CPU)
            model.eval()
            model.set_precision(None, False)
            if device.type == "cpu":
                model = model.to(memory_format=torch.channels_last)
                channels_last = True
            pixels = pcfg.image_size * pcfg.image_size
            chunk = max(1, cls.cpu_chunk_pixels // pixels) if cls.cpu_chunk_pixels and device.type == "cpu" else SCORE_BATCH
            chunk = min(chunk, SCORE_BATCH)
            with torch.inference_mode():
                model(batch(chunk))  # warm-up in eval mode
                score_s = timed(lambda: model(batch(chunk))) / chunk
        return ProbeCosts(unit_s=unit_s, score_s_per_image=score_s, batch_size=bs, probe_batch=probe_bs,
                          threads=torch.get_num_threads())
    finally:
        torch.set_num_threads(before)


def estimate_training(mcfg: ModelConfig, tcfg: TrainConfig, n_train: int, n_test: int = 0, *,
                      evaluate_test: bool = True, threads: int | None = None,
                      costs: ProbeCosts | None = None) -> TrainingEstimate:
    """Seconds a :func:`~inspection_core.usecases.training.train_and_save` run
    of these configs takes on this machine: ``n_train`` good training images
    (the engine holds out ``val_fraction`` of them), ``n_test`` test images
    evaluated after training. ``costs``: a probe already made for the same
    model, batch and device (only the budget or the image counts changed)."""
    from ..models import model_class
    from ..training.loops import ROUNDS

    costs = costs or probe_costs(mcfg, tcfg, n_train, threads)
    cls = model_class(mcfg.model)
    n_fit, n_val = fit_split(n_train, tcfg)
    n_test = n_test if evaluate_test else 0
    bs = costs.batch_size
    score = costs.score_s_per_image
    if cls.fit_mode == "one_pass":
        units = max(1, math.ceil(n_fit / bs))
        feature_s = units * costs.unit_s
        fit_s = feature_s + ONE_PASS_BUILD_FIXED_IMAGES * costs.unit_s / bs + ONE_PASS_BUILD_FACTOR * feature_s
        rounds, per_round = 1, n_val
    else:
        steps = max(1, n_fit // bs if n_fit % bs < 2 else n_fit // bs + 1)
        if tcfg.max_steps_per_epoch:
            steps = min(steps, tcfg.max_steps_per_epoch)
        units = int(tcfg.updates) if tcfg.updates else steps * tcfg.epochs
        round_len = steps if not tcfg.updates else max(steps, math.ceil(units / ROUNDS))
        rounds = math.ceil(units / round_len)
        per_round = n_val + min(tcfg.samples_per_epoch, n_val or n_fit)
        fit_s = units * costs.unit_s
    scored = rounds * per_round + max(n_val, 1) + n_test  # validation rounds, statistics, test split
    if _fast_path_checked(tcfg):
        scored += 2 * max(n_val, 1) + n_test  # the fast path's check: held-out twice, test once more
    scoring_s = scored * score
    seconds = START_S + LOAD_S_PER_IMAGE * (n_train + n_test) + fit_s + scoring_s
    return TrainingEstimate(seconds=seconds, fit_mode=cls.fit_mode, units=units, unit_s=costs.unit_s,
                            scoring_s=scoring_s, costs=costs)


def _fast_path_checked(tcfg: TrainConfig) -> bool:
    from .fidelity import path_to_check

    try:
        return path_to_check(tcfg.device) is not None
    except Exception:  # noqa: BLE001 - an estimate never fails on the fast path's detection
        return False


def estimate_training_seconds(mcfg: ModelConfig, tcfg: TrainConfig, n_train: int, n_test: int = 0,
                              threads: int | None = None) -> float:
    """:func:`estimate_training`'s seconds alone."""
    return estimate_training(mcfg, tcfg, n_train, n_test, threads=threads).seconds


__all__ = ["LONG_RUN_S", "ProbeCosts", "TrainingEstimate", "duration_text", "estimate_training",
           "estimate_training_seconds", "fit_split", "probe_costs"]
