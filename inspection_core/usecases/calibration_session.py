"""Use case: an engineer's calibration session, held in one object.

A :class:`CalibrationSession` holds what choosing a threshold needs: the
bundle, the scored calibration set (scores, labels, paths), the scoring path
the threshold belongs to (and, where this machine has a fast path, the set
scored on both paths and the fidelity rule's verdict), the strategy and its
target, the threshold(s) and their operating point, and whether the frame
check is to be turned on or off with the next save. It tells listeners what
changed through plain callbacks (:meth:`CalibrationSession.on_change`).

``inspector calibrate`` drives it in a few calls::

    session = CalibrationSession.open(bundle_path, device=..., bootstrap=...)
    session.score(data, split=..., strategy=..., progress=..., cancel=...)
    session.set_strategy(strategy, target, margin)    # or set_threshold(high, low)
    session.result(); session.save(note=...)

The Calibrate view binds its widgets to the same object: a drag calls
:meth:`set_threshold`, a strategy button :meth:`set_strategy`, and it draws
what the events say changed. Scoring runs on a worker: :meth:`scoring_job`
gives the function (it reads the session, never changes it) and
:meth:`use_scored` takes its result on the session's own thread; likewise
:meth:`save_job` (its plan: :mod:`.calibration_save`) and :meth:`saved`. No
Qt here, and no torch until scoring or saving runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .. import calibration as cal
from ..bundle import read_manifest
from ..fidelity_rule import Fidelity, pick_path
from ..progress import CancelToken, ProgressCallback
from ..types import Threshold
from .calibration_save import SavePlan, plan_save

BOOTSTRAP = 1000  # resamples for the FPR/FNR intervals (binomial draws: cheap enough for every drag)

Change = Literal["bundle", "data", "threshold", "frame_check", "saved"]


@dataclass(frozen=True)
class SessionEvent:
    """What changed: ``"bundle"`` (another bundle, or its manifest re-read),
    ``"data"`` (a new calibration set; the threshold changed too),
    ``"threshold"`` (the line(s), strategy or target), ``"frame_check"`` (the
    pending on/off), ``"saved"`` (written into the bundle). ``message``: a
    sentence for the user, where there is one."""

    what: Change
    message: str = ""


@dataclass(frozen=True)
class Scored:
    """What :meth:`CalibrationSession.scoring_job` returns: the set scored on the
    path its Inspector chose, and on both paths where there is a fast one."""

    cset: Any  # usecases.calibrate.CalibrationSet
    pair: Any  # usecases.calibrate.PathPair | None


def _holds(root: Path | None, rel: Sequence[str]) -> bool:
    """Whether ``root`` holds the stored images (the first and last few are looked for)."""
    if root is None:
        return False
    probe = list(rel[:3]) + list(rel[-2:])
    return all((Path(p) if Path(p).is_absolute() else root / p).is_file() for p in probe)


def _resolved(rel: Sequence[str] | None, root: Path | None) -> list[Path] | None:
    if rel is None:
        return None
    return [Path(p) if Path(p).is_absolute() or root is None else root / p for p in rel]


class CalibrationSession:
    """See the module docstring. Not thread-safe: use it from one thread."""

    def __init__(self, bundle_path: str | os.PathLike[str] | None = None, *, device: str = "auto",
                 bootstrap: int = BOOTSTRAP, manifest: dict[str, Any] | None = None) -> None:
        self.device, self.bootstrap = device, bootstrap
        self._listeners: list[Callable[[SessionEvent], None]] = []
        self.bundle_path: Path | None = None
        self.manifest: dict[str, Any] | None = None
        self.inspector: Any = None  # the last Inspector of this bundle (made on a worker)
        self._reset()
        if bundle_path is not None:
            self.load(bundle_path, manifest=manifest)

    @classmethod
    def open(cls, bundle_path: str | os.PathLike[str], *, device: str = "auto",
             bootstrap: int = BOOTSTRAP) -> CalibrationSession:
        """A session on the bundle at ``bundle_path`` (its manifest read, no scores yet)."""
        return cls(bundle_path, device=device, bootstrap=bootstrap)

    def _reset(self) -> None:
        self.scores: np.ndarray | None = None
        self.labels: np.ndarray | None = None
        self.paths: list[Path] | None = None
        self.root: Path | None = None  # the folder the paths are relative to
        self.stored_paths: list[str] | None = None  # a stored calibration's paths, as recorded (relative)
        self.stored_root: str | None = None  # where that calibration found its images
        self.calibration_set: Any = None  # the set shown (usecases.calibrate.CalibrationSet), when scored here
        self.pair: Any = None  # the same set on fp32 and the fast path (usecases.calibrate.PathPair)
        self.fidelity: Fidelity | None = None  # the rule's verdict for the line as a strategy placed it
        self.skipped: list[tuple[Any, str]] = []
        self.description = ""
        self.strategy: str = "manual"
        self.target: float | None = None
        self.margin = 0.0
        self.threshold: Threshold | None = None
        self.point: cal.OperatingPoint | None = None
        self.frame_check: bool | None = None  # the frame check's state to save (None: as the bundle has it)

    # ------------------------------------------------------------------ events
    def on_change(self, callback: Callable[[SessionEvent], None]) -> Callable[[], None]:
        """Call ``callback(event)`` after each change; returns a function that stops it."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    def _emit(self, what: Change, message: str = "") -> None:
        event = SessionEvent(what, message)
        for cb in list(self._listeners):
            cb(event)

    # ------------------------------------------------------------------ bundle
    def load(self, bundle_path: str | os.PathLike[str] | None, manifest: dict[str, Any] | None = None) -> None:
        """Work on another bundle (None: none): everything of the previous one is dropped."""
        self.bundle_path = None if bundle_path is None else Path(bundle_path)
        self.inspector = None
        self._reset()
        self.manifest = manifest if manifest is not None or bundle_path is None else read_manifest(bundle_path)
        self._emit("bundle")

    def reload_manifest(self) -> None:
        """Read the bundle's manifest again (it was written); the scored set stays valid (same model)."""
        self.inspector = None  # its threshold is stale now
        self.manifest = None if self.bundle_path is None else read_manifest(self.bundle_path)
        self._emit("bundle")

    @property
    def saved_threshold(self) -> dict[str, Any]:
        """The threshold the bundle holds now (the manifest's record)."""
        return dict((self.manifest or {}).get("threshold") or {})

    @property
    def stored(self) -> dict[str, Any]:
        """The bundle's stored calibration record ({} when it holds no scores)."""
        c = (self.manifest or {}).get("calibration") or {}
        return c if c.get("scores") else {}

    @property
    def has_data(self) -> bool:
        return self.scores is not None

    # ------------------------------------------------------------------ data
    def scoring_job(self, data: Any, *, split: str = "auto", strategy: str | None = None, batch_size: int = 32,
                    check_fast: bool = True, fast_precision: str | None = None
                    ) -> Callable[[ProgressCallback | None, CancelToken | None], Scored]:
        """The function that scores ``data``'s calibration images (the images
        :mod:`inspection_core.selection` allows) for this bundle, and on the fast
        path too where this machine has one; run it anywhere, then give its
        result to :meth:`use_scored`."""
        if self.bundle_path is None:
            raise cal.CalibrationError("choose a model bundle first")
        source = self.inspector if self.inspector is not None else self.bundle_path
        device = self.device

        def job(progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> Scored:
            from .calibrate import score_calibration_set, score_fast_path

            cset = score_calibration_set(source, data, split=split, strategy=strategy, batch_size=batch_size,
                                         device=device, progress=progress, cancel=cancel)
            pair = score_fast_path(cset, fast_precision, batch_size, progress, cancel) if check_fast else None
            return Scored(cset, pair)

        return job

    def score(self, data: Any, *, split: str = "auto", strategy: str | None = None, batch_size: int = 32,
              check_fast: bool = True, fast_precision: str | None = None, progress: ProgressCallback | None = None,
              cancel: CancelToken | None = None) -> Scored:
        """Score ``data`` here and now (:meth:`scoring_job` then :meth:`use_scored`)."""
        scored = self.scoring_job(data, split=split, strategy=strategy, batch_size=batch_size,
                                  check_fast=check_fast, fast_precision=fast_precision)(progress, cancel)
        self.use_scored(scored)
        return scored

    def use_scored(self, scored: Scored) -> None:
        """Take a scored set: the line starts at the bundle's threshold; a strategy
        chosen before is applied again on the path the fidelity rule picks."""
        cset = scored.cset
        self._take(cset.scores, cset.labels, list(cset.paths), None, emit=False)
        self.calibration_set, self.pair, self.inspector, self.root = cset, scored.pair, cset.inspector, cset.root
        self.skipped, self.description = list(cset.scored.skipped or []), cset.description
        msg = f"Scored {len(cset.scores)} images ({cset.description})."
        if self.skipped:
            msg += f" {len(self.skipped)} could not be read, e.g. {self.skipped[0][0]}: {self.skipped[0][1]}"
        if scored.pair is not None and self.strategy != "manual":
            try:  # the strategy's line, on the path the rule picks
                self.set_strategy(self.strategy, self.target, self.margin, emit=False)
            except cal.CalibrationError:
                pass
        if self.fidelity is not None:
            msg += f" {self.path_text()}"
        self._emit("data", msg)

    def set_scores(self, scores: Any, labels: Any, paths: Sequence[Any] | None = None,
                   threshold: Threshold | None = None) -> None:
        """Take scores from elsewhere (a test, a script). Raises CalibrationError
        (naming the image) for unusable scores; the line starts at ``threshold``,
        else the bundle's, else the first sensible strategy."""
        self._take(scores, labels, paths, threshold)

    def load_stored(self, folders: Sequence[str | os.PathLike[str] | None] | None = None) -> bool:
        """The scores the bundle's last calibration stored (no rescoring), their
        paths resolved against the first of ``folders`` that holds the images
        (default: the folder the calibration recorded; none: ``root`` is None
        and the paths stay as recorded). False when the bundle stores none."""
        c = self.stored
        if not c:
            return False
        rel = [str(p) for p in c["paths"]] if c.get("paths") else None
        th = self.saved_threshold
        self._take(c["scores"], c["labels"], None, Threshold.from_dict(th) if "high" in th else None, emit=False)
        self.stored_paths, self.stored_root = rel, c.get("root")
        self.strategy, self.target = str(c.get("strategy") or "manual"), c.get("target")
        self.margin = float(c.get("margin") or 0.0)
        found = next((Path(f) for f in (folders if folders is not None else [c.get("root")])
                      if f is not None and self.holds_images(f)), None)
        self.root, self.paths = found, _resolved(rel, found)
        when = str(c.get("time") or "?")[:16].replace("T", " ")
        self._emit("data", f"Showing the {len(c['scores'])} scores stored with the calibration of {when}"
                           + (f" — note: {c['note']}" if c.get("note") else ""))
        return True

    def holds_images(self, folder: str | os.PathLike[str] | None) -> bool:
        """Whether ``folder`` holds the stored calibration's images."""
        return bool(self.stored_paths) and folder is not None and _holds(Path(folder), self.stored_paths or [])

    def use_images_in(self, folder: str | os.PathLike[str]) -> bool:
        """Resolve the stored calibration's paths against ``folder`` if it holds
        them (True, a ``"data"`` event); otherwise nothing changes (False)."""
        if self.scores is None or not self.holds_images(folder):
            return False
        self.root = Path(folder)
        self.paths = _resolved(self.stored_paths, self.root)
        self._emit("data")
        return True

    def missing_images_note(self) -> str:
        """Where a stored calibration's images were, when they are not found now ("" otherwise)."""
        if not self.stored_paths or self.root is not None:
            return ""
        where = f"'{self.stored_root}'" if self.stored_root else "a folder this bundle does not record"
        return f"The calibration images were in {where}, which is not here: locate that folder to see them."

    def _take(self, scores: Any, labels: Any, paths: Sequence[Any] | None, threshold: Threshold | None,
              emit: bool = True) -> None:
        self._drop_data()
        s, y = cal.validate_scores(scores, labels, paths)
        self.scores, self.labels = s, y
        self.paths = None if paths is None else [Path(p) for p in paths]
        if threshold is None:
            th = self.saved_threshold
            threshold = Threshold.from_dict(th) if th.get("high") is not None else None
        if threshold is not None:
            self._place(threshold.high, threshold.low, "manual", threshold.high, 0.0)
        else:
            allowed = cal.strategies_available(y)
            self.set_strategy("youden" if "youden" in allowed else allowed[0], emit=False)
        if emit:
            self._emit("data")

    def _drop_data(self) -> None:
        keep = self.bundle_path, self.manifest, self.frame_check
        self._reset()
        self.bundle_path, self.manifest, self.frame_check = keep

    def clear(self) -> None:
        """Forget the scores (the bundle stays)."""
        self._drop_data()
        self._emit("data")

    # ------------------------------------------------------------------ strategies
    def strategies_available(self) -> list[str]:
        return [] if self.labels is None else cal.strategies_available(self.labels)

    def unavailable(self) -> dict[str, str]:
        """Each strategy this set cannot use, with the reason."""
        out: dict[str, str] = {}
        if self.scores is None or self.labels is None:
            return out
        allowed = self.strategies_available()
        for name in cal.STRATEGIES:
            if name not in allowed:
                try:
                    cal.choose_threshold(self.scores, self.labels, name)
                except cal.CalibrationError as exc:
                    out[name] = str(exc)
        return out

    def can_band(self) -> bool:
        """Whether a review band can be set from rate targets (both classes needed)."""
        return {"fpr", "fnr"} <= set(self.strategies_available())

    def set_strategy(self, name: str, target: float | None = None, margin: float = 0.0, *,
                     emit: bool = True) -> float:
        """Move the FAIL line to the strategy's threshold (a REVIEW line stays at or
        below it); where the set is scored on both paths, the fidelity rule picks
        the path the threshold belongs to, and that path's scores are shown.
        Raises CalibrationError when the strategy does not apply."""
        s, y = self._need_data()
        if target is None and name in cal.DEFAULT_TARGETS:
            target = cal.DEFAULT_TARGETS[name]
        if self.pair is not None:
            chosen, fid = pick_path(self.pair, lambda s_, y_: Threshold(
                cal.choose_threshold(s_, y_, name, target, margin=margin)))
            if chosen is not self.calibration_set:
                self.calibration_set, self.inspector = chosen, chosen.inspector
                self.scores, self.labels = chosen.scores, chosen.labels
                s, y = chosen.scores, chosen.labels
            self.fidelity = fid
        phi = cal.choose_threshold(s, y, name, target, margin=margin)
        low = None if self.threshold is None or self.threshold.low is None else min(self.threshold.low, phi)
        self._place(phi, low, name, target, margin)
        if emit:
            note = cal.plateau_note(s, y, name)
            from_text = "" if target is None or name == "manual" else f" {target:g}"
            self._emit("threshold", f"{name}{from_text}: threshold {phi:.6g}"
                       + ("" if self.fidelity is None else f". {self.path_text()}") + (f" {note}" if note else ""))
        return phi

    def set_threshold(self, high: float, low: float | None = None) -> None:
        """Place the line(s) by hand (a drag): the strategy becomes "manual" at ``high``;
        ``low`` (the REVIEW line) never goes above ``high``."""
        self._need_data()
        self._place(high, low, "manual", float(high), 0.0)
        self._emit("threshold")

    def set_two_thresholds(self, on: bool, fnr_target: float = cal.DEFAULT_TARGETS["fnr"]) -> None:
        """Two-threshold mode on (the REVIEW line starts at the escape-rate
        target's threshold, or on the FAIL line) or off."""
        s, y = self._need_data()
        high = self.threshold.high if self.threshold is not None else float(np.max(s))
        low = None
        if on:
            low = high
            if "fnr" in self.strategies_available():
                low = min(high, cal.choose_threshold(s, y, "fnr", fnr_target))
        self._place(high, low, "manual", high, 0.0)
        self._emit("threshold")

    def set_band_from_targets(self, fnr_target: float, fpr_target: float) -> None:
        """Both lines from an escape-rate and a false-reject-rate target."""
        s, y = self._need_data()
        low, high = cal.review_band_from_targets(s, y, fnr_target, fpr_target)
        self._place(high, low, "manual", None, 0.0)
        self._emit("threshold")

    def _place(self, high: float, low: float | None, strategy: str, target: float | None, margin: float) -> None:
        high = float(high)
        self.threshold = Threshold(high, None if low is None else min(float(low), high))
        self.strategy, self.target, self.margin = strategy, target, margin
        assert self.scores is not None and self.labels is not None
        self.point = cal.operating_point(self.scores, self.labels, self.threshold, bootstrap=self.bootstrap)

    def _need_data(self) -> tuple[np.ndarray, np.ndarray]:
        if self.scores is None or self.labels is None:
            raise cal.CalibrationError("no calibration scores yet: score a calibration folder")
        return self.scores, self.labels

    # ------------------------------------------------------------------ what it gives
    def roc(self) -> cal.RocCurve:
        s, y = self._need_data()
        return cal.roc(s, y)

    def roc_points(self) -> tuple[tuple[float, float], tuple[float, float] | None] | None:
        """Each line as a point (FPR, recall) on the ROC curve (REVIEW counts as
        caught/rejected there); None when a class is missing."""
        op = self.point
        if op is None or op.fpr is None or op.fnr is None or self.threshold is None:
            return None
        s, y = self._need_data()
        th = self.threshold
        hp = op if th.low is None else cal.operating_point(s, y, Threshold(th.high))
        lp = None if th.low is None else cal.operating_point(s, y, Threshold(th.low))
        assert hp.fpr is not None and hp.recall is not None
        return (hp.fpr, hp.recall), (None if lp is None else (float(lp.fpr or 0.0), float(lp.recall or 0.0)))

    def misjudged(self) -> tuple[list[int], list[int]]:
        """Indices of false passes (lowest score first) and false rejects (highest first)."""
        if self.scores is None or self.threshold is None:
            return [], []
        return cal.misjudged(self.scores, self.labels, self.threshold)

    def path_text(self) -> str:
        """A sentence saying which scoring path the threshold belongs to, and why."""
        fid = self.fidelity
        if fid is None:
            return ""
        used = fid.precision if fid.ok else "fp32"
        return (f"Scored on fp32 and {fid.precision}: {fid.changed} of {fid.n} verdicts differ, so the "
                f"threshold belongs to the {used} scoring path.")

    def result(self) -> cal.CalibrationResult:
        """The core's CalibrationResult for the line(s) as they stand."""
        s, y = self._need_data()
        th = self.threshold
        assert th is not None
        if th.low is not None:
            return cal.calibrate(s, y, "manual", review_band=(th.low, th.high), bootstrap=self.bootstrap)
        result = cal.calibrate(s, y, self.strategy, self.target, margin=self.margin, bootstrap=self.bootstrap)
        if result.threshold.high != th.high:  # data or targets changed since: keep what is shown
            result = cal.calibrate(s, y, "manual", th.high, bootstrap=self.bootstrap)
        return result

    # ------------------------------------------------------------------ saving
    def set_frame_check(self, enabled: bool | None) -> None:
        """Turn the frame check on or off with the next save (None: leave it as the bundle has it)."""
        self.frame_check = enabled
        self._emit("frame_check")

    def save_plan(self, note: str = "") -> SavePlan:
        """What a save writes. A strategy's line belongs to the path the rule
        picked; a hand-placed line is checked the same way, with the same
        value(s) on each path."""
        if self.bundle_path is None:
            raise cal.CalibrationError("choose a model bundle first")
        return plan_save(self.bundle_path, self.result(), note, self.calibration_set, self.pair, self.fidelity,
                         paths=self.paths, root=self.root, frame_check=self.frame_check, bootstrap=self.bootstrap)

    def save_job(self, note: str = "") -> tuple[SavePlan, Callable[..., dict[str, Any]]]:
        """The plan and a function ``(progress, cancel) -> manifest`` that writes it (on a worker)."""
        plan = self.save_plan(note)
        return plan, lambda *_: plan.write()

    def saved(self, manifest: dict[str, Any], plan: SavePlan | None = None) -> None:
        """The bundle was written (by a plan of this session): its manifest is ``manifest`` now."""
        self.manifest = manifest
        self.inspector = None
        self.frame_check = None
        msg = ""
        if plan is not None:
            th = plan.result.threshold
            msg = (f"Saved to {plan.bundle.name}: FAIL above {th.high:.6g}"
                   + ("" if th.low is None else f", REVIEW above {th.low:.6g}"))
        self._emit("saved", msg)

    def save(self, note: str = "") -> dict[str, Any]:
        """Write the threshold(s), the scores and paths they were chosen on and the
        scoring path they belong to (and the frame check's pending state) into the
        bundle atomically; returns the new manifest."""
        plan = self.save_plan(note)
        manifest = plan.write()
        self.saved(manifest, plan)
        return manifest

    def save_frame_check(self, enabled: bool) -> dict[str, Any]:
        """Write only the frame check's on/off into the bundle; returns the new manifest."""
        from .calibrate import save_frame_check

        if self.bundle_path is None:
            raise cal.CalibrationError("choose a model bundle first")
        manifest = save_frame_check(self.bundle_path, enabled)
        self.manifest, self.frame_check = manifest, None
        self._emit("saved", f"Saved to {self.bundle_path.name}: frame check {'on' if enabled else 'off'}.")
        return manifest


__all__ = ["BOOTSTRAP", "CalibrationSession", "SavePlan", "Scored", "SessionEvent"]
