"""The Train view's words: metric and layout names, durations, bundle file names."""

from __future__ import annotations

import re

from inspection_core.bundle import BUNDLE_SUFFIX

# in the order the trainer prefers them for choosing the best epoch
METRIC_NAMES = {"val_auroc": "AUROC", "val_recon_error": "reconstruction error of good images",
                "val_mean_score": "mean score of good images"}
LAYOUT_NAMES = {"mvtec": "MVTec layout", "good_defect": "good/ + defect/ layout", "btad": "BTAD layout",
                "visa": "VisA layout (its published split)", "visa_seeded": "VisA layout (a seeded split: no split_csv)"}
SUMMARY_METRICS = (("image_auroc", "Image AUROC"), ("image_ap", "Average precision"), ("f1", "F1"),
                   ("balanced_accuracy", "Balanced accuracy"), ("fpr", "False-reject rate"),
                   ("fnr", "Escape rate"), ("pixel_auroc", "Pixel AUROC"), ("pro", "PRO"))


def _duration(s: float | None) -> str:
    if s is None or s != s:
        return "–"
    s = int(round(s))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def safe_name(text: str) -> str:
    """A file name from what the user typed (letters, digits, - _ . only)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text.strip()).strip("-.")
    return name[: -len(BUNDLE_SUFFIX)] if name.endswith(BUNDLE_SUFFIX) else name
