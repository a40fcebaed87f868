"""Use case: teach a bundle good parts it rejected (an operator's overrides,
or any parts an engineer picks), ADR 0020.

A family that can learn a part without training (its model has
``learn_good``: PatchCore's memory bank) learns the images at once; the
taught bundle is a new version (a new bundle id, its parent's id, the images
added with their sha256, by whom and when: the manifest's ``lineage``),
re-checked on the parent's calibration images before it may be saved
(:mod:`.teach_check`: false-reject and escape rates before and after at the
bundle's threshold; refused when escapes rise by more than one part in 100).
Every other family needs a training to learn: the images are queued beside
the bundle (``<bundle>.teach-queue/`` with ``queue.json``) for its next
training, and no bundle is written.

:func:`prepare_teach` does the work (on a worker: it calls torch) and returns
a :class:`TeachPlan` whose :meth:`~TeachPlan.save` writes the result; the
Teach dialog shows the plan's figures between the two.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..bundle import Bundle, bundle_path, save_bundle, utc_now
from ..data.dataset import DatasetIndex
from ..data.images import ImageReadError, read_image
from ..evaluation import score_samples
from ..fileio import atomic_write_json
from ..inference import Inspector
from ..progress import CancelToken, ProgressCallback
from .evaluate import as_inspector
from .teach_check import RULE, Rates, TeachCheck, check_samples

#: the folder beside a bundle where a family that must train to learn queues images: ``<stem>.teach-queue``
QUEUE_SUFFIX = ".teach-queue"


class TeachError(ValueError):
    """A teach that cannot be done as asked (the message names the file and the problem)."""


class TeachRefused(TeachError):
    """The taught bundle failed its re-check; the message holds the figures."""


@dataclass(frozen=True)
class TaughtImage:
    """One image taught: where it was, its file name and its sha256."""

    path: Path
    sha256: str

    @property
    def name(self) -> str:
        return self.path.name


def queue_folder(bundle: str | os.PathLike[str]) -> Path:
    """Where images queued for ``bundle``'s next training go."""
    p = Path(bundle)
    return p.with_name(p.stem + QUEUE_SUFFIX)


@dataclass
class TeachPlan:
    """What teaching would give: ``kind`` "memory_bank" (a new bundle, checked)
    or "queued" (images for the next training); :meth:`save` writes it."""

    kind: str
    source: Path
    family: str
    images: list[TaughtImage]
    by: str
    check: TeachCheck | None = None
    model: Any = None
    manifest: dict[str, Any] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.kind == "queued" or (self.check is not None and self.check.passed)

    def summary(self) -> str:
        """What the plan holds, in words (the CLI prints it, the dialog shows it)."""
        n = len(self.images)
        if self.kind == "queued":
            return (f"{self.family} learns only by training: {n} image(s) will be queued in "
                    f"'{queue_folder(self.source)}' for its next training (add them to its training images)")
        d = self.detail
        rerun = "; the bank passed its cap: coreset selection re-run" if d.get("coreset_rerun") else ""
        head = (f"{n} good image(s) taught: {d.get('added', 0)} patches added to the memory bank "
                f"({d.get('bank_before')} -> {d.get('bank_after')} of at most {d.get('cap')}{rerun})")
        return head if self.check is None else f"{head}\nre-check on {self.check.description}: {self.check.figures()}"

    def save(self, out: str | os.PathLike[str] | None = None, force: bool = False) -> Path:
        """Write the taught bundle to ``out`` (refused, with the figures, when it
        failed its re-check unless ``force``), or queue the images; returns the path written."""
        if self.kind == "queued":
            return self._queue()
        if out is None:
            raise TeachError("give the taught bundle's file name (--out): it is a new version beside its parent")
        assert self.check is not None
        if not self.check.passed and not force:
            raise TeachRefused(f"taught bundle refused: {self.check.why_refused()} ({self.check.figures()}); "
                               f"rule: {RULE}")
        target = bundle_path(out)
        if target.resolve() == self.source.resolve():
            raise TeachError(f"'{target}' is the bundle being taught: a taught bundle is a new version, give another name")
        if target.exists():
            raise TeachError(f"'{target}' exists: choose another name for the taught bundle")
        m = dict(self.manifest)
        m["name"], m["created"] = target.stem, utc_now()
        m["lineage"] = {**m["lineage"], "check": self.check.to_dict(forced=force and not self.check.passed)}
        return save_bundle(target, self.model, m)

    def _queue(self) -> Path:
        folder = queue_folder(self.source)
        folder.mkdir(parents=True, exist_ok=True)
        index = folder / "queue.json"
        try:
            entries = json.loads(index.read_text(encoding="utf-8")) if index.is_file() else []
        except (OSError, ValueError) as exc:
            raise TeachError(f"'{index}' cannot be read ({exc}): fix or remove it") from None
        have = {e.get("sha256") for e in entries if isinstance(e, dict)}
        when = utc_now()
        for img in self.images:
            if img.sha256 in have:
                continue
            name = f"{img.sha256[:12]}_{img.name}"
            shutil.copyfile(img.path, folder / name)
            entries.append({"file": name, "original": str(img.path), "sha256": img.sha256, "by": self.by, "time": when,
                            "bundle": self.manifest.get("name"), "bundle_id": self.detail.get("bundle_id")})
            have.add(img.sha256)
        atomic_write_json(index, entries)
        return folder


def _read_good(paths: Sequence[str | os.PathLike[str]]) -> tuple[list[TaughtImage], list[np.ndarray], list[str]]:
    """The images to teach, each read once (a duplicate by content is taught once)."""
    if not paths:
        raise TeachError("no good images to teach: give at least one image file")
    images, arrays, skipped, seen = [], [], [], set()
    for raw in paths:
        p = Path(raw)
        if not p.is_file():
            raise TeachError(f"'{p}' " + ("is a folder: give image files" if p.is_dir() else "does not exist"))
        try:
            arrays.append(read_image(p))
        except ImageReadError as exc:
            raise TeachError(str(exc)) from None
        digest = hashlib.sha256(p.read_bytes()).hexdigest()
        if digest in seen:
            arrays.pop()
            skipped.append(f"'{p}' is the same image as one given before: taught once")
            continue
        seen.add(digest)
        images.append(TaughtImage(p, digest))
    return images, arrays, skipped


def _scores(inspector: Inspector, samples: list[Any], batch_size: int, progress: ProgressCallback | None,
            cancel: CancelToken | None) -> tuple[np.ndarray, np.ndarray]:
    scored = score_samples(inspector, samples, batch_size, progress, cancel)
    return scored.scores, scored.labels


def prepare_teach(bundle: Inspector | Bundle | str | os.PathLike[str], good: Sequence[str | os.PathLike[str]], *,
                  by: str = "", data: DatasetIndex | str | os.PathLike[str] | None = None, device: str = "auto",
                  batch_size: int = 16, seed: int = 0, progress: ProgressCallback | None = None,
                  cancel: CancelToken | None = None) -> TeachPlan:
    """Teach ``good`` to the bundle in memory and re-check it (see the module
    docstring); nothing is written until :meth:`TeachPlan.save`."""
    images, arrays, skipped = _read_good(good)
    parent = as_inspector(bundle, device)
    if parent.bundle.path is None:
        raise TeachError("the bundle must be a saved file")
    source = Path(parent.bundle.path)
    meta = parent.meta
    family = meta.model.model
    base = dict(manifest=meta.to_dict(), detail={"bundle_id": parent.bundle_id}, skipped=skipped)
    model = parent.bundle.build_model("cpu" if parent.device.type == "cpu" else parent.device)
    learn = getattr(model, "learn_good", None)
    if not callable(learn):
        return TeachPlan("queued", source, family, images, by, **base)  # type: ignore[arg-type]
    try:
        samples, description = check_samples(meta, data)
    except ValueError as exc:
        raise TeachError(str(exc)) from None
    taught = {img.path.resolve() for img in images}
    kept = [s for s in samples if Path(s.path).resolve() not in taught]
    before_scores, labels = _scores(parent, kept, batch_size, progress, cancel)
    from ..data.preprocess import to_tensor

    prepared = np.stack([parent.prepare(a) for a in arrays])
    batches = [to_tensor(prepared[i:i + batch_size]).to(next(model.buffers()).device)
               for i in range(0, len(prepared), batch_size)]
    detail = {"bundle_id": parent.bundle_id, **learn(batches, seed=seed)}
    manifest = meta.to_dict()
    manifest.pop("weights", None)
    lineage = meta.lineage.to_dict() if meta.lineage is not None else None
    ancestors = [*(lineage.pop("ancestors", None) or []), lineage] if lineage else []
    manifest["lineage"] = {"parent": parent.bundle_id, "parent_name": parent.name, "action": "memory_bank",
                           "added": [{"file": i.name, "sha256": i.sha256} for i in images], "by": by,
                           "time": utc_now(), "detail": {k: v for k, v in detail.items() if k != "bundle_id"},
                           **({"ancestors": ancestors} if ancestors else {})}
    child = Inspector(Bundle(path=None, manifest=manifest, state_dict=model.state_dict()), device=str(parent.device))
    child.threshold = parent.threshold
    after_scores, after_labels = _scores(child, kept, batch_size, progress, cancel)
    check = TeachCheck(Rates.of(before_scores, labels, parent.threshold),
                       Rates.of(after_scores, after_labels, parent.threshold), description, len(samples) - len(kept))
    return TeachPlan("memory_bank", source, family, images, by, check, model, manifest, detail, skipped)


def teach_bundle(bundle: Inspector | Bundle | str | os.PathLike[str], good: Sequence[str | os.PathLike[str]],
                 out: str | os.PathLike[str] | None, *, by: str = "", force: bool = False,
                 data: DatasetIndex | str | os.PathLike[str] | None = None, device: str = "auto",
                 progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> tuple[TeachPlan, Path]:
    """:func:`prepare_teach` then :meth:`TeachPlan.save`: (the plan, the path written)."""
    plan = prepare_teach(bundle, good, by=by, data=data, device=device, progress=progress, cancel=cancel)
    return plan, plan.save(out, force=force)


__all__ = ["QUEUE_SUFFIX", "TaughtImage", "TeachError", "TeachPlan", "TeachRefused", "prepare_teach", "queue_folder",
           "teach_bundle"]
