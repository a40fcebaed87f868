"""Check a labelled data set for trivial shortcuts: how well do whole-image
statistics (mean brightness, contrast, sharpness) alone separate good from
defective test images? An AUROC far from 0.5 here means a detector can score
well (or inverted) without looking at defects.

    python benchmarks/data_bias.py ../shared/data/screw ../shared/data/magnetic_tile
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from inspection_core.data.dataset import scan_dataset  # noqa: E402
from inspection_core.data.images import read_image  # noqa: E402


def stats(path: Path) -> list[float]:
    im = read_image(path).astype(np.float32)
    return [float(im.mean()), float(im.std()), float(cv2.Laplacian(im, cv2.CV_32F).var())]


def main(roots: list[str]) -> int:
    names = ["mean brightness", "contrast (std)", "sharpness (Laplacian var)"]
    for root in roots:
        idx = scan_dataset(root)
        train = np.array([stats(s.path) for s in idx.train])
        test = np.array([stats(s.path) for s in idx.test])
        y = np.array([s.label for s in idx.test])
        print(f"{root}: {len(idx.train)} train, {int((y == 0).sum())} good test, {int((y == 1).sum())} defective test")
        for i, n in enumerate(names):
            print(f"  {n:<26} train {train[:, i].mean():8.2f}  test good {test[y == 0, i].mean():8.2f}  "
                  f"test defective {test[y == 1, i].mean():8.2f}  AUROC {roc_auc_score(y, test[:, i]):.3f}")
    return 0


if __name__ == "__main__":
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    sys.exit(main(sys.argv[1:] or [str(shared / c) for c in ("screw", "magnetic_tile", "pill")]))
