"""The export's parity check: the bundle's images scored by the PyTorch
reference (plain fp32, ``Inspector(precision="eager")``) and by the exported
graph in the station's own runtime (:class:`inspection_core.station.ExportedModel`),
each path given its own threshold by the same rule, then the fast paths' rule
(:mod:`inspection_core.fidelity_rule`): image AUROC within 0.005 where the
images hold both classes, at most 0.5 % of verdicts different.

The threshold rule is the bundle's: its calibration's strategy (and target,
margin) where it was calibrated and the images carry the labels that
strategy needs, a calibrated fixed threshold ("manual") as it is, else the
provisional rule the training used (a quantile of the good scores).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..calibration_thresholds import DEFAULT_TARGETS, choose_threshold, strategies_available
from ..fidelity_rule import Fidelity, ThresholdRule, check_rule, quantile_rule
from ..manifest import Manifest
from ..types import Threshold


def threshold_rule(meta: Manifest, labels: np.ndarray) -> tuple[ThresholdRule, str]:
    """The rule each path's threshold is chosen by, and a line saying which."""
    thr, cal = meta.threshold, meta.calibration
    calibrated = cal is not None and cal.strategy is not None and not thr.provisional
    if calibrated and cal is not None:
        strategy = str(cal.strategy)
        if strategy == "manual":
            fixed = thr.threshold
            return (lambda s, y: fixed), "the bundle's fixed threshold (calibrated by hand) on both paths"
        if strategy in strategies_available(labels):
            target = cal.target if cal.target is not None else DEFAULT_TARGETS.get(strategy)
            margin = float(cal.margin or 0.0)

            def calibrated_rule(s: np.ndarray, y: np.ndarray) -> Threshold:
                return Threshold(choose_threshold(s, y, strategy, target, margin))

            return calibrated_rule, f"the calibration's rule ({strategy}) on each path"
    q = _training_quantile(meta)
    note = " (the calibration's rule needs labels these images lack)" if calibrated else ""
    return quantile_rule(q), f"the {q:g} quantile of the good scores on each path, as training's provisional threshold{note}"


def _training_quantile(meta: Manifest) -> float:
    thr = meta.threshold
    if thr.strategy == "quantile" and thr.target is not None:
        return float(thr.target)
    training = meta.training
    config = (training.config if training is not None else None) or {}
    return float(config.get("threshold_quantile", DEFAULT_TARGETS["quantile"]))


def reference_scores(bundle: Any, images: np.ndarray, batch_size: int = 16) -> tuple[np.ndarray, Threshold]:
    """The plain fp32 PyTorch path's scores of prepared uint8 images (N, S, S,
    C), and the threshold that path uses for this bundle (the fp32 path's own
    where the bundle was calibrated on a bf16 path)."""
    from ..inference import Inspector

    insp = Inspector(bundle, device="cpu", precision="eager")
    scores = [insp.score_images(images[i : i + batch_size])[0] for i in range(0, len(images), batch_size)]
    return np.concatenate(scores), insp.threshold


def transferred_threshold(base: Threshold, fid: Fidelity) -> Threshold:
    """The bundle's threshold ``base`` (the PyTorch fp32 path's) as the
    exported graph sees it: moved by the difference between the two paths'
    own thresholds on the check's images. The check's images need not be
    the ones the threshold was chosen on (a test split, the user's folder):
    the rule's threshold on them differs from the bundle's for that reason
    alone, which the station must not inherit."""
    own, ref = fid.threshold, fid.threshold_fp32
    high = base.high + (float(own["high"]) - float(ref["high"]))
    low = None
    if base.low is not None:
        d_low = (float(own["low"]) - float(ref["low"])) if own.get("low") is not None and ref.get("low") is not None \
            else float(own["high"]) - float(ref["high"])
        low = min(base.low + d_low, high)
    return Threshold(high, low)


def exported_scores(folder: str | os.PathLike[str], images: np.ndarray, batch_size: int = 16,
                    runtime: str = "auto") -> tuple[np.ndarray, str]:
    """The exported graph's scores in the station's runtime, and its engine."""
    from ..station.model import ExportedModel, to_input

    model = ExportedModel(folder, runtime=runtime)
    parts = [model.score(to_input(images[i : i + batch_size]))["score"] for i in range(0, len(images), batch_size)]
    return np.concatenate(parts), model.engine


def check_parity(ref: np.ndarray, exported: np.ndarray, labels: np.ndarray, rule: ThresholdRule, *,
                 precision: str, engine: str, checked_on: str) -> Fidelity:
    """The fast paths' rule on the two score vectors (each path's own threshold by ``rule``)."""
    return check_rule(ref, exported, labels, rule, precision=precision, engine=engine, checked_on=checked_on)


__all__ = ["check_parity", "exported_scores", "reference_scores", "threshold_rule", "transferred_threshold"]
