"""Use case: decide, for one bundle, whether the fast scoring path may be its
default, and record the decision in the bundle.

The rule is what an operator sees, not a per-score bound: a threshold belongs
to the scoring path it was calibrated on, so each path gets its own threshold,
chosen by the same rule on the same images, and the fast path may be the
default when, on that bundle's own images,

* image AUROC on the fast path is within :data:`MAX_AUROC_DELTA` (0.005) of
  the fp32 path's (where the images hold both classes), and
* at most :data:`MAX_VERDICT_CHANGES` (0.5 %) of the verdicts differ between
  the fast path at its threshold and the fp32 path at its own.

:func:`inspection_core.usecases.calibrate.calibrate_bundle` runs it when a
bundle is calibrated (the calibration images, the calibration strategy;
:func:`inspection_core.fidelity_rule.pick_path`) and
:func:`check_at_training` when one is trained (the held-out good images the
provisional threshold comes from, and the test split). The result is stored
as ``manifest["inference"]["fidelity"][precision]``; when it holds, the
threshold written is the fast path's and ``manifest["inference"]`` names that
path, and the fp32 path's own threshold is kept in the record for stations
whose CPU has no native bf16 (they score with fp32; see
:func:`inspection_core.acceleration.threshold_for`).

Above :mod:`inspection_core.inference` (it scores with two Inspectors), so the
scoring paths in ``acceleration`` never import the Inspector that uses them.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from ..acceleration import fast_precision
from ..bundle import update_manifest
from ..device import resolve_device
from ..fidelity_rule import (MAX_AUROC_DELTA, MAX_VERDICT_CHANGES, Fidelity, ThresholdRule, check_rule,
                             compare_paths, quantile_rule)
from ..inference import Inspector
from ..manifest import FidelityCheck, InferenceRecord, Manifest, section

def _scores(insp: Inspector, images: np.ndarray, batch_size: int) -> np.ndarray:
    if len(images) == 0:
        return np.zeros(0)
    return np.concatenate([insp.score_images(images[i : i + batch_size])[0] for i in range(0, len(images), batch_size)])


def measure_fidelity(bundle: Any, images: Any, labels: Any = None, precision: str = "bf16",
                     device: str | torch.device = "cpu", batch_size: int = 32,
                     rule: ThresholdRule | None = None) -> Fidelity:
    """Score prepared uint8 images (N, S, S, C) on the fp32 path and on
    ``precision``, give each path its own threshold by ``rule`` (default: the
    0.99 quantile of the good scores) and apply the rule. ``bundle``: a
    Bundle or a path."""
    if len(images) == 0:
        raise ValueError("measure_fidelity needs at least one image")
    ref = Inspector(bundle, device=device, precision="fp32")
    fast = Inspector(ref.bundle, device=device, precision=precision)
    s0, s1 = _scores(ref, images, batch_size), _scores(fast, images, batch_size)
    y = np.zeros(len(s0), int) if labels is None else np.asarray(labels, int)
    return check_rule(s0, s1, y, rule or quantile_rule(0.99), precision=fast.precision, engine=fast.engine,
                      checked_on=f"{len(s0)} images")


def fidelity_record(manifest: dict[str, Any], fidelity: Fidelity, fast_inference: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``manifest`` with ``fidelity`` stored; when it holds, the
    fast path's threshold and inference record are written in (pure)."""
    m = dict(manifest)
    inf = dict(m.get("inference") or {"precision": "fp32"})
    inf["fidelity"] = {**(inf.get("fidelity") or {}), fidelity.precision: fidelity.to_dict()}
    if fidelity.ok:
        inf.update({k: v for k, v in fast_inference.items() if k != "fidelity"})
        th = dict(m.get("threshold") or {})
        th.update(high=fidelity.threshold["high"], low=fidelity.threshold.get("low"))
        m["threshold"] = th
    elif inf.get("precision") == fidelity.precision:
        inf.update(precision="fp32", engine=None)
    m["inference"] = inf
    return m


def record_fidelity(bundle_path: str | os.PathLike[str], fidelity: Fidelity,
                    fast_inference: dict[str, Any] | None = None) -> dict[str, Any]:
    """Store ``fidelity`` in the bundle (atomic rewrite); see :func:`fidelity_record`."""
    fast_inference = fast_inference or {"precision": fidelity.precision, "engine": fidelity.engine}
    return update_manifest(bundle_path, lambda m: fidelity_record(m, fidelity, fast_inference))


# --------------------------------------------------------------------------- where the check runs
def path_to_check(device: str | torch.device, precision: str | None = None) -> str | None:
    """The fast path a check compares with fp32: ``precision`` where one is
    forced, else the one this machine has; None: nothing to check."""
    return precision or fast_precision(resolve_device(device))


def check_at_training(bundle: Any, held_out: np.ndarray, test_images: np.ndarray | None,
                      test_labels: np.ndarray | None, ref_test_scores: np.ndarray | None, quantile: float,
                      device: str | torch.device = "cpu", precision: str | None = None,
                      batch_size: int = 32) -> tuple[Fidelity, dict[str, Any]] | None:
    """The check on a just-trained bundle: the provisional threshold's rule
    (the ``quantile`` of the held-out good images' scores) on each path, the
    verdicts compared on the held-out and the test images, AUROC on the test
    split. ``ref_test_scores``: the fp32 scores of ``test_images`` when the
    evaluation already computed them. Returns (result, fast path's inference
    record), or None where this machine has no fast path to check."""
    device = resolve_device(device)
    precision = path_to_check(device, precision)
    if precision is None or len(held_out) == 0:
        return None
    ref = Inspector(bundle, device=device, precision="fp32")
    fast = Inspector(ref.bundle, device=device, precision=precision)
    if fast.precision == "fp32":  # the fast path fell back (could not be built): nothing to check
        return None
    r_val, f_val = _scores(ref, held_out, batch_size), _scores(fast, held_out, batch_size)
    rule = quantile_rule(quantile)
    zeros = np.zeros(len(held_out), int)
    thr_ref, thr_fast = rule(r_val, zeros), rule(f_val, zeros)
    if test_images is not None and len(test_images):
        r_test = ref_test_scores if ref_test_scores is not None else _scores(ref, test_images, batch_size)
        f_test = _scores(fast, test_images, batch_size)
        y_test = np.asarray(test_labels, int)
    else:
        r_test = f_test = np.zeros(0)
        y_test = np.zeros(0, int)
    s0, s1 = np.concatenate([r_val, r_test]), np.concatenate([f_val, f_test])
    y = np.concatenate([zeros, y_test])
    mask = np.concatenate([np.zeros(len(r_val), bool), np.ones(len(r_test), bool)])
    fid = compare_paths(s0, s1, y, thr_ref, thr_fast, precision=fast.precision, engine=fast.engine,
                        checked_on=f"{len(r_val)} held-out good images and {len(r_test)} test images; "
                                   f"threshold: the {quantile:g} quantile of the held-out scores on each path",
                        auroc_mask=mask)
    return fid, fast.inference_record()


def describe_fidelity(manifest: Manifest | dict[str, Any]) -> list[str]:
    """One line per stored check, for the CLI and the app."""
    lines = []
    inf = section(manifest, "inference", InferenceRecord)
    for prec, rec in ((inf.fidelity if inf else None) or {}).items():
        if not isinstance(rec, FidelityCheck) or rec.changed is None:
            continue
        auc = "" if rec.auroc is None or rec.auroc_fp32 is None else \
            f"image AUROC {rec.auroc_fp32:.4f} -> {rec.auroc:.4f}, "
        lines.append(f"{prec} scoring path: {auc}{rec.changed} of {rec.n} verdicts differ from fp32: "
                     + ("used by default" if rec.ok else "not used (fp32 stays the default)"))
    return lines


__all__ = ["MAX_AUROC_DELTA", "MAX_VERDICT_CHANGES", "Fidelity", "check_at_training",
           "compare_paths", "describe_fidelity", "fidelity_record", "measure_fidelity", "quantile_rule",
           "record_fidelity"]
