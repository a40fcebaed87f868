"""The operator station: the application without PyTorch.

A station scores exported models (``inspector export``: a folder holding the
scoring graph and ``manifest.json``) with ONNX Runtime or OpenVINO, through
:mod:`inspection_core.station`. Station mode is on when torch cannot be
imported (the ``inspector-station`` build ships none) or with
``inspector-app --station``: the window offers Inspect, History and Line, and
no view that trains, calibrates, compares or teaches.

The demo on a station runs the exported demo model shipped with it
(``models/demo-onnx/``, made at build time from ``models/demo.inspector``),
or one the engineer exported into the user's model folder under that name;
a station never trains one.

Nothing here imports torch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from app.settings import StationSettings

#: the exported demo model's folder name (in a models folder)
DEMO_EXPORT_NAME = "demo-onnx"
#: the environment variable that turns station mode on (``--station`` sets it)
STATION_ENV = "INSPECTOR_STATION"


def station_mode(requested: bool = False) -> bool:
    """Whether the application runs as an operator station: asked for
    (``--station``, ``INSPECTOR_STATION=1``), or torch is not importable here."""
    if requested or os.environ.get(STATION_ENV, "").strip() not in ("", "0"):
        return True
    from inspection_core.station import torch_available

    return not torch_available()


def is_export_folder(path: Path | str | None) -> bool:
    """Whether ``path`` is an exported model's folder (made by ``inspector export``)."""
    if path is None:
        return False
    from inspection_core.station import is_export_dir

    return is_export_dir(path)


def export_folders(folder: Path) -> list[Path]:
    """The exported models' folders directly inside ``folder``."""
    if not folder.is_dir():
        return []
    try:
        return [p for p in folder.iterdir() if p.is_dir() and is_export_folder(p)]
    except OSError:
        return []


def _demo_export_ok(path: Path) -> bool:
    """Whether ``path`` is a readable exported demo model built for this version's demo data."""
    if not is_export_folder(path):
        return False
    try:
        from app.demo import is_demo_bundle
        from app.manifest import read_manifest_light

        return is_demo_bundle(read_manifest_light(path))
    except Exception:  # noqa: BLE001 - a damaged export is simply not used
        return False


def demo_export_candidates(settings: StationSettings | None = None) -> list[Path]:
    """Where an exported demo model may be, in order: the folders that ship
    models with the application, then the user's model folder."""
    from app.demo import shipped_models_dirs

    s = settings if settings is not None else StationSettings.load()
    return [d / DEMO_EXPORT_NAME for d in (*shipped_models_dirs(), s.models_path())]


def demo_export_path(settings: StationSettings | None = None) -> Path | None:
    """The exported demo model to use, or None when this station has none."""
    for p in demo_export_candidates(settings):
        if _demo_export_ok(p):
            return p
    return None


def ensure_station_demo(progress: Any = None, cancel: object | None = None,
                        settings: StationSettings | None = None) -> Path:
    """The exported demo model's folder, with the demo images in place (made
    on first use, no torch). Raises FileNotFoundError naming where it looked
    when this station has no exported demo model: a station never trains."""
    from app.demo import ensure_demo_data, demo_line_path
    from inspection_core.progress import ProgressEvent, null_progress

    s = settings if settings is not None else StationSettings.load()
    progress = progress or null_progress
    found = demo_export_path(s)
    if found is None:
        looked = ", ".join(str(p) for p in demo_export_candidates(s))
        raise FileNotFoundError(
            f"no exported demo model on this station (looked in {looked}); on the engineer's workstation run "
            f"'inspector export --bundle models/demo.inspector --format onnx --out {DEMO_EXPORT_NAME}' and copy the "
            "folder into the model folder")
    if not demo_line_path(s).is_dir():
        progress(ProgressEvent("message", message="Creating the demo images…"))
    ensure_demo_data(s)
    return found


def rank_auroc(scores: Any, labels: Any) -> float:
    """Image AUROC (label 1 = defective): the chance that a defective image
    scores above a good one, ties counted half (no scikit-learn on a station)."""
    import numpy as np

    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    pos, neg = s[y == 1], s[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("AUROC needs good and defective images")
    above = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(above / (len(pos) * len(neg)))


def check_demo_verdicts(export: Path, data_root: Path, batch: int = 16) -> dict[str, Any]:
    """Score the demo test split (``data_root/test``) with the exported demo
    model as this station does, and compare with the figures its bundle
    recorded on the same images at training (PyTorch, the bundle's threshold).

    An export passed its parity check (at most 0.5 % of verdicts differ, image
    AUROC within 0.005, each path at its own threshold) on the calibration
    images; on these images the same rule is checked: image AUROC within
    0.005 of the recorded one, and the good parts passed and defective parts
    failed each within max(1, 0.5 %) of the recorded counts. ``ok`` says
    whether both held; the figures say by how much."""
    import numpy as np

    from inspection_core.data.images import list_images, read_image
    from inspection_core.fidelity_rule import MAX_AUROC_DELTA, MAX_VERDICT_CHANGES
    from inspection_core.station import StationInspector

    insp = StationInspector(export)
    recorded = (insp.manifest.get("metrics") or {})
    test = Path(data_root) / "test"
    paths = [(p, 0) for p in list_images(test / "good")]
    paths += [(p, 1) for d in sorted(test.iterdir()) if d.is_dir() and d.name != "good" for p in list_images(d)]
    scores: list[float] = []
    verdicts: list[str] = []
    for i in range(0, len(paths), batch):
        for pred in insp.predict_batch([read_image(p) for p, _ in paths[i:i + batch]]):
            scores.append(pred.score)
            verdicts.append(str(getattr(pred.verdict, "value", pred.verdict)))
    labels = np.array([y for _, y in paths])
    n_good, n_defect = int((labels == 0).sum()), int((labels == 1).sum())
    good_passed = sum(1 for y, v in zip(labels, verdicts) if y == 0 and v == "PASS")
    defect_failed = sum(1 for y, v in zip(labels, verdicts) if y == 1 and v == "FAIL")
    auroc = rank_auroc(np.asarray(scores, dtype=np.float64), labels)
    out: dict[str, Any] = {
        "engine": insp.engine, "n_good": n_good, "n_defect": n_defect, "good_passed": good_passed,
        "defect_failed": defect_failed, "auroc": auroc, "recorded": recorded, "problems": [],
    }
    if recorded.get("n_good") != n_good or recorded.get("n_defect") != n_defect:
        out["problems"].append(f"the demo test split has {n_good} good and {n_defect} defective images, its model "
                               f"recorded figures on {recorded.get('n_good')} and {recorded.get('n_defect')}")
        return out
    slack = max(1, int(MAX_VERDICT_CHANGES * (n_good + n_defect)))
    want_pass = round(float(recorded["good_pass_rate"]) * n_good)
    want_fail = round(float(recorded["defective_fail_rate"]) * n_defect)
    if abs(good_passed - want_pass) > slack:
        out["problems"].append(f"{good_passed}/{n_good} good parts passed, recorded {want_pass}")
    if abs(defect_failed - want_fail) > slack:
        out["problems"].append(f"{defect_failed}/{n_defect} defective parts failed, recorded {want_fail}")
    if abs(auroc - float(recorded["image_auroc"])) > MAX_AUROC_DELTA:
        out["problems"].append(f"image AUROC {auroc:.4f}, recorded {float(recorded['image_auroc']):.4f}")
    return out
