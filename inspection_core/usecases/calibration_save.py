"""What saving a calibration session writes: the plan, decided on the
session's thread (:func:`plan_save`), and its writing into the bundle
(:meth:`SavePlan.write`, on a worker). No torch until a plan is written."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import calibration as cal
from ..fidelity_rule import Fidelity, pick_path


@dataclass(frozen=True)
class SavePlan:
    """Everything one save writes, decided on the session's thread."""

    bundle: Path
    result: cal.CalibrationResult
    note: str
    cset: Any  # the set the threshold belongs to (None: scores read back from the bundle)
    fidelity: Fidelity | None
    paths: list[Path] | None
    root: Path | None
    frame_check: bool | None

    def write(self) -> dict[str, Any]:
        """Write the plan into the bundle atomically (weights untouched); the new manifest."""
        from .calibrate import inference_with, save_calibration

        if self.cset is not None:
            return save_calibration(self.bundle, self.result, note=self.note, calibration_set=self.cset,
                                    inference=inference_with(self.cset, self.fidelity),
                                    frame_check_enabled=self.frame_check)
        return save_calibration(self.bundle, self.result, note=self.note, paths=self.paths, root=self.root,
                                frame_check_enabled=self.frame_check)


def plan_save(bundle: Path, result: cal.CalibrationResult, note: str, cset: Any, pair: Any,
              fidelity: Fidelity | None, *, paths: list[Path] | None, root: Path | None, frame_check: bool | None,
              bootstrap: int) -> SavePlan:
    """What a save of ``result`` (the session's line(s), chosen on ``cset``)
    writes. A strategy's line belongs to the path the rule picked
    (``fidelity``); a hand-placed line is checked the same way, with the same
    value(s) on each path of ``pair`` (a usecases.calibrate.PathPair, or None)."""
    fid = fidelity if result.strategy != "manual" else None
    if result.strategy == "manual" and pair is not None:
        th = result.threshold
        chosen, fid = pick_path(pair, lambda _s, _y: th)
        if chosen is not cset:
            band = None if th.low is None else (th.low, th.high)
            result = cal.calibrate(chosen.scores, chosen.labels, "manual", None if band else th.high,
                                   review_band=band, bootstrap=bootstrap)
            cset = chosen
    return SavePlan(bundle, result, note, cset, fid, paths, root, frame_check)
