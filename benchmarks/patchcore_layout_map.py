"""Would PatchCore's heat map gain from the part's coarse layout? Measured on
a fitted bundle (docs/quality.md, stop 28; nothing in the product uses it).

    python benchmarks/quality.py --torch-home-from-shared --models patchcore --datasets magnetic_tile --out /tmp/q
    python benchmarks/patchcore_layout_map.py /tmp/q/magnetic_tile_patchcore.inspector

The global texture term already holds each descriptor channel's mean in the
cells of a 2 x 2 grid (less its mean over the cells). Here each cell's share
of the Mahalanobis distance, c_cell . (P c)_cell, for a Gaussian of the
training images' (and their exposure views') cell means on a g x g grid,
becomes a coarse map: sqrt of the positive share, in standard deviations of
the training cells' values, upsampled to the image and added (positive part,
times lambda x the bundle's good-image patch-score spread) to the product's
anomaly map. Prints the pixel AUROC of the product's map, of the cell map
alone and of their sums, on the test split (good images and masked defects).
About 5 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    from sklearn.covariance import ledoit_wolf

    from inspection_core.data.dataset import load_images, load_masks, scan_dataset
    from inspection_core.data.preprocess import to_tensor
    from inspection_core.inference import Inspector
    from inspection_core.models.patchcore import _bank_view, _gaussian
    from inspection_core.pixel_metrics import pixel_auroc

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--data", type=Path, help="the data set (default: the one recorded in the bundle)")
    ap.add_argument("--grids", nargs="+", type=int, default=[2, 4, 8])
    ap.add_argument("--lambdas", nargs="+", type=float, default=[0.25, 0.5])
    args = ap.parse_args(argv)

    insp = Inspector(args.bundle, device="cpu", precision="fp32")
    model, pp = insp.model, insp.preprocessing
    index = scan_dataset(args.data or Path(insp.manifest["training"]["data"]["root"]))
    dim = model.appearance_dim

    def cells(emb: torch.Tensor, g: int) -> np.ndarray:
        c = F.adaptive_avg_pool2d(emb[:, :dim].float(), (g, g)).flatten(2)
        return (c - c.mean(2, keepdim=True)).transpose(1, 2).flatten(1).double().numpy()  # cell-major

    def run(samples: list, views: list[str], want_map: bool) -> tuple[dict[int, np.ndarray], np.ndarray | None]:
        out: dict[int, list[np.ndarray]] = {g: [] for g in args.grids}
        maps = []
        for i in range(0, len(samples), 16):
            x = to_tensor(load_images(samples[i : i + 16], pp).images)
            with torch.inference_mode():
                for v in [x] + [_bank_view(x, a) for a in views]:
                    emb = model.embed(v)
                    for g in args.grids:
                        out[g].append(cells(emb, g))
                if want_map:
                    maps.append(model._score(x, None).anomaly_map.numpy())
        return {g: np.concatenate(v) for g, v in out.items()}, (np.concatenate(maps) if want_map else None)

    train, _ = run(list(index.train), list(model.params["bank_augment"]), False)
    test = list(index.test)
    cell_te, amap = run(test, [], True)
    assert amap is not None
    masks = load_masks(test, pp.image_size)
    use = np.array([s.label == 0 or s.mask_path is not None for s in test])
    spread = float(model.global_norm[2])
    print(f"# {args.bundle.name}: {len(index.train)} training images, {int(use.sum())} test images with masks or good")
    print(f"the product's map: pixel AUROC {pixel_auroc(amap[use], masks[use]):.4f}", flush=True)
    size = amap.shape[-1]
    for g in args.grids:
        mean, prec = _gaussian(train[g], ledoit_wolf)

        def shares(rows: np.ndarray) -> np.ndarray:
            c = rows - mean
            return np.sqrt(np.clip((c * (c @ prec)).reshape(len(rows), g * g, dim).sum(2), 0.0, None))

        ref = shares(train[g])
        z = (shares(cell_te[g]) - ref.mean()) / ref.std()
        cmap = F.interpolate(torch.tensor(z).view(-1, 1, g, g).float(), size=(size, size), mode="bilinear",
                             align_corners=False)[:, 0].numpy()
        row = [f"grid {g}: cell map alone {pixel_auroc(cmap[use], masks[use]):.4f}"]
        for lam in args.lambdas:
            comb = amap + lam * spread * np.clip(cmap, 0.0, None)
            row.append(f"with lambda {lam} {pixel_auroc(comb[use], masks[use]):.4f}")
        print("; ".join(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
