"""Use case: train several detector families on one data folder and compare
them on the same held-out images.

Written once for ``inspector compare`` and the Train view's Compare page.
Each family is trained in turn with its preset (the same path as ``inspector
train``: :func:`.training.train_and_save`, with :class:`.TrainSettings`), its
bundle saved atomically to ``<out>/<family>/<family>.inspector``, then loaded
back from that file and evaluated (:func:`.evaluate.evaluate_bundle`) on the
held-out images every family shares:

- unsupervised families only: the data set's test split (none of them saw
  it; each trained on the good training images);
- with the classifier (which trains on a stratified 60 % of the test folders,
  :func:`inspection_core.data.splits.supervised_split`): its held-out split,
  less any image an unsupervised family trained on (a good/defect folder's
  seeded split), so that no family is measured on an image it saw.

A family that needs labelled defective images (``Detector.supervised``) is
left out, with the reason in the table, when the folder has none. The
figures: image AUROC and AP, pixel AUROC (where masks exist), the
false-reject and escape rates at the escape target (default ≤ 1 %, the
threshold chosen on the held-out scores) and at the bundle's own threshold,
the training's wall time, the median milliseconds per image of
``Inspector.predict`` on this machine (one image at a time, as a station
scores) and the bundle's size. The recommendation: :mod:`inspection_core.comparison`.

One progress callback covers the whole run (``step`` events whose
``epoch``/``epochs`` count the families; a ``message`` with the payload
``{"result": FamilyResult}`` as each family is done); the cancel token stops
it between any two steps. Bundles already saved stay; the family being
trained writes nothing (its save is atomic). A family whose training or
evaluation fails (weights that cannot be read, a full disk) is left out with
the error in the table; the others are still compared.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.dataset import DatasetIndex, Sample, scan_dataset
from ..progress import CancelToken, Cancelled, ProgressCallback, ProgressEvent, null_progress
from ..comparison import (
    DEFAULT_ESCAPE_TARGET, Comparison, FamilyResult, curves, rates_at, rates_at_escape_target, recommend,
)  # fmt: skip
from .train_settings import TrainSettings

#: the families compared when none are named
DEFAULT_FAMILIES = ("patchcore", "ganomaly", "skip-ganomaly")
#: images timed one at a time for the milliseconds per image (after two warm-up calls)
TIMED_IMAGES = 20
#: share of a family's progress that is its training (the rest: evaluation and timing)
TRAIN_SHARE = 0.85


class CompareError(ValueError):
    """The comparison cannot be made (unknown family, no data, no held-out images)."""


def resolve_families(names: Sequence[str]) -> list[str]:
    """The registered family names for ``names`` (``skip_ganomaly`` is
    ``skip-ganomaly``), each once, in order; CompareError with the closest
    name for an unknown one. No torch."""
    import difflib

    from ..models.registry import families

    known = sorted(n for n, f in families().items() if f.presets)
    out: list[str] = []
    for name in names:
        n = name.strip().lower()
        n = n if n in known else n.replace("_", "-")
        if n not in known:
            close = difflib.get_close_matches(n, known, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise CompareError(f"unknown model family '{name}'{hint}; families: {', '.join(known)}")
        if n not in out:
            out.append(n)
    if not out:
        raise CompareError("no model family to compare; name at least one")
    return out


def family_choices() -> list[tuple[str, bool]]:
    """Every family with presets and whether it needs labelled defective
    images (``Detector.supervised``; imports torch: call it on a worker)."""
    from ..models.registry import families, model_class

    return [(n, bool(model_class(n).supervised)) for n, f in sorted(families().items()) if f.presets]


@dataclass
class ComparePlan:
    """Which families run, which are left out (and why), and the held-out images."""

    index: DatasetIndex
    families: list[str]
    skipped: dict[str, str]
    held_out: list[Sample]
    held_out_description: str
    supervised: set[str]
    #: each supervised family's training images: (good, defective)
    supervised_train: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict)

    @property
    def n_good(self) -> int:
        return sum(1 for s in self.held_out if s.label == 0)

    @property
    def n_defect(self) -> int:
        return sum(1 for s in self.held_out if s.label == 1)

    def warning(self) -> str:
        """What the comparison cannot measure on these held-out images ("" when it can measure everything)."""
        if self.n_good and self.n_defect:
            return ""
        missing = "defective" if not self.n_defect else "good"
        return (f"no {missing} held-out images in '{self.index.root}' ({self.n_good} good, {self.n_defect} "
                "defective): image AUROC needs both, so no family can be recommended; the table still shows "
                "each bundle's rates at its own threshold, its speed and its size")


def has_labelled_defects(index: DatasetIndex) -> bool:
    """Whether the folder has defective images a supervised family could train on."""
    return any(s.label == 1 for s in (*index.train, *index.test))


def plan_comparison(data: DatasetIndex | str | os.PathLike[str], families: Sequence[str], seed: int = 0,
                    settings: Sequence[TrainSettings] | None = None) -> ComparePlan:
    """The families that can run on ``data`` and the held-out images they
    share (see the module docstring); CompareError when there are none.
    ``settings``: each family's (default: its preset); a supervised family's
    split is the one its training will draw (the trainer's own rule, with
    its training settings)."""
    from ..data.samples import DatasetLayoutError
    from ..models.registry import model_class

    names = resolve_families(families)
    if isinstance(data, DatasetIndex):
        index = data
    else:
        root = Path(data)
        if not root.is_dir():
            raise CompareError(f"data folder '{root}' does not exist" if not root.exists()
                               else f"'{root}' is not a folder")
        try:
            index = scan_dataset(root, seed=seed)
        except DatasetLayoutError as exc:
            raise CompareError(str(exc)) from None
    supervised = {n for n in names if model_class(n).supervised}
    skipped: dict[str, str] = {}
    if supervised and not has_labelled_defects(index):
        for n in sorted(supervised):
            skipped[n] = (f"needs labelled defective images to train on; '{index.root}' has none "
                          "(test/<defect_type>/ or defect/)")
        supervised = set()
    run = [n for n in names if n not in skipped]
    if not run:
        raise CompareError("no family left to compare: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    held = list(index.test)
    description = "the test split, which no family trained on"
    trained: dict[str, tuple[int, int]] = {}
    if supervised:
        by_family = {s.model: s for s in (settings or default_settings(sorted(supervised), seed=seed))}
        keep = {Path(s.path) for s in index.test}  # never an image an unsupervised family trained on
        for n in sorted(supervised):
            train_samples, test_samples = _supervised_split(index, by_family[n], n)
            keep &= {Path(s.path) for s in test_samples}
            good = sum(1 for s in train_samples if s.label == 0)
            trained[n] = (good, len(train_samples) - good)
        held = [s for s in index.test if Path(s.path) in keep]
        description = ("the classifier's held-out split, stratified by defect type, less any image another "
                       "family trained on")
    if not held:
        raise CompareError(f"no held-out images in '{index.root}': a comparison needs test images, good and "
                           "defective (test/good and test/<defect_type> in the MVTec layout, or good/ + defect/)")
    return ComparePlan(index, run, skipped, held, description, supervised, trained)


def _supervised_split(index: DatasetIndex, settings: TrainSettings, name: str) -> tuple[list[Sample], list[Sample]]:
    """(training, held-out test) samples of a supervised family: the trainer's
    own split with the family's training settings, so that the comparison's
    held-out images are the ones its training will leave out."""
    from ..training.trainer import _split

    try:
        _mcfg, tcfg = settings.configs(index.channels)
        train, _val, info = _split(index, True, tcfg, name)
    except ValueError as exc:
        raise CompareError(f"{name}: {exc}") from None
    wanted = {Path(p).as_posix() for p in info.get("test_paths", [])}
    test = [s for s in (*index.train, *index.test) if _relative(s, index.root) in wanted]
    return train, test


def default_settings(families: Sequence[str], *, preset: str | None = None, image_size: int | None = None,
                     device: str = "auto", seed: int = 0) -> list[TrainSettings]:
    """Each family's settings: its preset (``standard`` unless given), the
    same image size for all where one is given."""
    from ..recipes import DEFAULT_PRESET

    return [TrainSettings(model=f, preset=preset or DEFAULT_PRESET, image_size=image_size, device=device, seed=seed)
            for f in resolve_families(families)]


def bundle_file(out: str | os.PathLike[str], family: str) -> Path:
    """Where the comparison saves ``family``'s bundle: ``<out>/<family>/<family>.inspector``."""
    return Path(out) / family / f"{family}.inspector"


def _trained_on(manifest: dict[str, Any], plan: ComparePlan) -> str:
    tr = manifest.get("training") or {}
    data = tr.get("data") or {}
    n_train, n_val = int(data.get("n_train", 0)), int(data.get("n_val", 0))
    if (tr.get("split") or {}).get("kind") == "supervised":
        good, bad = plan.supervised_train.get(str((manifest.get("model") or {}).get("model")), (0, 0))
        return (f"{good} good + {bad} defective images (its split of the good images and a stratified share of "
                f"each defect folder), {n_val} more for validation")
    return f"{n_train} good images, {n_val} more good ones held out for its threshold"


def time_per_image(inspector: Any, samples: Sequence[Sample], n: int = TIMED_IMAGES,
                   cancel: CancelToken | None = None) -> float:
    """Median milliseconds of ``inspector.predict`` on one image as read from
    disk (preprocessing included), over up to ``n`` held-out images after two
    warm-up calls."""
    from ..data.images import ImageReadError, read_image

    images = []
    for s in samples[: n + 2]:
        try:
            images.append(read_image(s.path))
        except (ImageReadError, OSError):
            continue
    if not images:
        raise CompareError("none of the held-out images could be read to time the scoring")
    for im in images[:2]:
        inspector.predict(im)
    times = []
    for im in images[2:] or images:
        if cancel is not None:
            cancel.raise_if_cancelled()
        t0 = time.perf_counter()
        inspector.predict(im)
        times.append((time.perf_counter() - t0) * 1000.0)
    return float(statistics.median(times))


class _Relay:
    """One progress callback over every family: family ``i`` of ``n`` is the
    ``epoch``; inside it, the training's fraction then the evaluation's."""

    def __init__(self, progress: ProgressCallback, n: int) -> None:
        self.progress, self.n = progress, n
        self.i, self.family, self.t0 = 0, "", time.perf_counter()

    def start(self, i: int, family: str) -> None:
        self.i, self.family = i, family
        self.emit(0.0, f"{family}: training ({i + 1} of {self.n})")

    def emit(self, fraction: float, message: str) -> None:
        step = int(round(1000 * min(1.0, max(0.0, fraction))))
        self.progress(ProgressEvent("step", epoch=self.i + 1, epochs=self.n, step=step, steps=1000,
                                    elapsed_s=time.perf_counter() - self.t0, message=message,
                                    payload={"family": self.family}))

    def training(self, ev: ProgressEvent) -> None:
        if ev.kind == "step":
            self.emit(TRAIN_SHARE * ev.fraction, f"{self.family}: training")
        elif ev.kind == "message" and ev.message:
            self.progress(ProgressEvent("message", message=f"{self.family}: {ev.message}",
                                        payload={"family": self.family}))

    def evaluating(self, ev: ProgressEvent) -> None:
        if ev.kind == "step" and ev.steps:
            share = TRAIN_SHARE + (1 - TRAIN_SHARE) * 0.9 * ev.step / ev.steps
            self.emit(share, f"{self.family}: scoring the held-out images {ev.step}/{ev.steps}")


def compare(data: DatasetIndex | str | os.PathLike[str], out: str | os.PathLike[str],
            families: Sequence[str] = DEFAULT_FAMILIES, *, settings: Sequence[TrainSettings] | None = None,
            escape_target: float = DEFAULT_ESCAPE_TARGET, overwrite: bool = False, seed: int = 0,
            progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> Comparison:
    """Train, save, evaluate and time each family (see the module docstring).
    ``settings``: one :class:`TrainSettings` per family (default: each
    family's preset, :func:`default_settings`); their ``model`` names the
    families and ``families`` is then ignored. A bundle already at
    ``<out>/<family>/`` is replaced only with ``overwrite`` (checked for all
    before anything trains)."""
    progress = progress or null_progress
    cancel = cancel or CancelToken()
    if not 0.0 <= escape_target < 1.0:
        raise CompareError(f"escape target must be a rate in [0, 1), got {escape_target}")
    chosen = settings if settings is not None else default_settings(families, seed=seed)
    seeds = {s.seed for s in chosen}
    if len(seeds) > 1:  # the classifier's split, hence the held-out images, follows the seed
        raise CompareError(f"the families' settings must share one seed, got {sorted(seeds)}")
    seed = seeds.pop() if seeds else seed
    chosen = [dataclasses.replace(s, model=name) for s, name in zip(chosen, resolve_families([s.model for s in chosen]))]
    by_family = {s.model: s for s in chosen}
    plan = plan_comparison(data, [s.model for s in chosen], seed=seed, settings=chosen)
    if not overwrite:
        existing = [bundle_file(out, f) for f in plan.families if bundle_file(out, f).exists()]
        if existing:
            raise CompareError(f"'{existing[0]}' already exists; choose another output folder or allow "
                               "replacing the bundles (--overwrite)")
    configs = {}
    for f in plan.families:  # every family's settings checked before the first one trains
        try:
            configs[f] = by_family[f].configs(plan.index.channels)
        except ValueError as exc:
            raise CompareError(f"{f}: {exc}") from None
    eval_index = dataclasses.replace(plan.index, train=[], test=list(plan.held_out))
    relay = _Relay(progress, len(plan.families))
    results: list[FamilyResult] = []
    left_out = dict(plan.skipped)
    t_all = time.perf_counter()
    for i, fam in enumerate(plan.families):
        cancel.raise_if_cancelled()
        relay.start(i, fam)
        try:
            result = _run_family(fam, configs[fam], plan, eval_index, out, escape_target, relay, cancel)
        except Cancelled:
            raise
        except (RuntimeError, ValueError, OSError, MemoryError) as exc:  # the others still compare
            why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            left_out[fam] = f"failed: {why}"
            relay.emit(1.0, f"{fam}: failed")
            progress(ProgressEvent("message", message=f"{fam}: failed, left out of the comparison: {why}",
                                   payload={"family": fam, "failed": why}))
            continue
        results.append(result)
        relay.emit(1.0, f"{fam}: done")
        auroc = "n/a" if result.image_auroc is None else f"{result.image_auroc:.3f}"
        progress(ProgressEvent("message", message=f"{fam}: held-out image AUROC {auroc}, trained in "
                               f"{result.train_s:.0f} s", payload={"family": fam, "result": result}))
    if not results:
        raise CompareError("every family failed: " + "; ".join(f"{k}: {v}" for k, v in left_out.items()))
    import torch

    from ..device import resolve_device

    return Comparison(
        data=str(plan.index.root),
        held_out={"description": plan.held_out_description, "n_good": plan.n_good, "n_defect": plan.n_defect,
                  "warning": plan.warning(),
                  "paths": [_relative(s, plan.index.root) for s in plan.held_out]},
        escape_target=escape_target, results=results, skipped=left_out,
        recommendation=recommend(results, escape_target),
        machine={"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                 "device": str(resolve_device(configs[plan.families[0]][1].device))},
        wall_s=round(time.perf_counter() - t_all, 2))


def _run_family(fam: str, config: tuple[Any, Any], plan: ComparePlan, eval_index: DatasetIndex,
                out: str | os.PathLike[str], escape_target: float, relay: _Relay, cancel: CancelToken) -> FamilyResult:
    """Train and save one family, load its bundle back, evaluate it on the held-out images and time it."""
    from ..inference import Inspector
    from .evaluate import evaluate_bundle
    from .training import train_and_save

    mcfg, tcfg = config
    target = bundle_file(out, fam)
    target.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    outcome = train_and_save(plan.index, mcfg, tcfg, target, relay.training, cancel, evaluate_test=False)
    train_s = time.perf_counter() - t0
    cancel.raise_if_cancelled()
    _check_held_out(outcome.manifest, plan, fam)
    inspector = Inspector(outcome.path, device=tcfg.device)  # the saved file, as a station loads it
    ev = evaluate_bundle(inspector, eval_index, device=tcfg.device, progress=relay.evaluating, cancel=cancel)
    relay.emit(TRAIN_SHARE + (1 - TRAIN_SHARE) * 0.9, f"{fam}: timing the scoring on this machine")
    ms = time_per_image(inspector, plan.held_out, cancel=cancel)
    scores, labels = ev.scored.scores, ev.scored.labels
    m = ev.metrics
    return FamilyResult(
        family=fam, bundle=str(outcome.path), trained_on=_trained_on(outcome.manifest, plan),
        train_s=round(train_s, 2), ms_per_image=round(ms, 3), bundle_bytes=outcome.path.stat().st_size,
        n_good=int(m["n_good"]), n_defect=int(m["n_defect"]), image_auroc=m["image_auroc"],
        image_ap=m["image_ap"], pixel_auroc=m.get("pixel_auroc"), pro=m.get("pro"),
        at_target=rates_at_escape_target(scores, labels, escape_target),
        at_bundle_threshold=rates_at(scores, labels, inspector.threshold.high),
        scores=[float(x) for x in scores], labels=[int(x) for x in labels], **curves(scores, labels))


def _check_held_out(manifest: dict[str, Any], plan: ComparePlan, family: str) -> None:
    """A supervised family's recorded held-out split holds every image the
    comparison measures it on (else it would be measured on images it saw)."""
    split = (manifest.get("training") or {}).get("split") or {}
    if split.get("kind") != "supervised":
        return
    recorded = {Path(p).as_posix() for p in split.get("test_paths") or []}
    seen = [p for p in (_relative(s, plan.index.root) for s in plan.held_out) if p not in recorded]
    if seen:
        raise CompareError(f"{family} trained on {len(seen)} of the held-out images (e.g. '{seen[0]}'): its split "
                           "differs from the one planned; the comparison would measure it on images it saw")


def _relative(s: Sample, root: Path) -> str:
    try:
        return Path(s.path).relative_to(root).as_posix()
    except ValueError:
        return Path(s.path).as_posix()


def write_comparison(out: str | os.PathLike[str], comparison: Comparison) -> dict[str, Path]:
    """``comparison.json``, ``comparison.csv`` and the HTML report
    (``report/index.html`` with the overlaid ROC and PR curves) in ``out``,
    each written atomically; returns their paths."""
    from ..fileio import atomic_folder, atomic_write_csv, atomic_write_json
    from ..report.compare import write_comparison_report
    from ..comparison import csv_rows
    from .evaluate import is_report_folder

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": atomic_write_json(folder / "comparison.json", comparison.to_dict())}
    header, rows = csv_rows(comparison)
    paths["csv"] = atomic_write_csv(folder / "comparison.csv", header, rows)
    with atomic_folder(folder / "report", may_replace=is_report_folder) as staging:
        html = write_comparison_report(staging, comparison)
    paths["html"] = folder / "report" / html.name
    return paths


def read_comparison(path: str | os.PathLike[str]) -> Comparison:
    """A ``comparison.json`` read back."""
    import json

    return Comparison.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def held_out_arrays(result: FamilyResult) -> tuple[np.ndarray, np.ndarray]:
    """A result's held-out scores and labels as arrays."""
    return np.asarray(result.scores, dtype=np.float64), np.asarray(result.labels, dtype=np.int64)


__all__ = ["CompareError", "ComparePlan", "DEFAULT_FAMILIES", "bundle_file", "compare", "default_settings",
           "family_choices",
           "has_labelled_defects", "held_out_arrays", "plan_comparison", "read_comparison", "resolve_families",
           "time_per_image", "write_comparison"]
