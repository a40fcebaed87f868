"""PatchCore's global texture term, measured outside the product on a fitted
bundle's own descriptors (docs/quality.md, stop 28).

    python benchmarks/quality.py --torch-home-from-shared --models patchcore --out /tmp/q
    python benchmarks/patchcore_global.py /tmp/q/magnetic_tile_patchcore.inspector /tmp/q/screw_patchcore.inspector

For each bundle (its data set is the one recorded in the bundle, or
``--data DIR``), the bundle's own backbone gives every training image's
texture statistics (the image and each exposure view the bank holds, as the
product fits them) and every test image's, with its local score (the map's
maximum) and the product's texture part. Then, image AUROC on the test split:

- the image-level statistic as a Gaussian (the product's, Ledoit-Wolf) and as
  the mean distance to the k nearest training images (standardised or
  whitened statistics): alone, and fused with the local score the product's
  way (local + w x the patch-score spread x the held-out z, where positive);
- the Gaussian's held-out scale measured by 5-, 10- and 20-fold
  cross-validation, and, on the training images only, whether the
  cross-validated spread matches the spread of new good images (20 % held
  out of the fit);
- parameter-free fusions of the two standardised scores (sum, maximum,
  Euclidean norm of the positive parts).

The Gaussians here hold every training image (the product holds the images
outside its validation split), so the product's own figure is printed first
for comparison. Nothing is written; a few minutes per bundle on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

Fn = Callable[[np.ndarray], np.ndarray]


def gaussian_fn(rows: np.ndarray) -> Fn:
    from sklearn.covariance import ledoit_wolf

    from inspection_core.models.patchcore import _gaussian

    mean, prec = _gaussian(rows, ledoit_wolf)
    return lambda q: np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", q - mean, prec, q - mean), 0.0))


def knn_fn(k: int, whiten: bool) -> Callable[[np.ndarray], Fn]:
    def make(rows: np.ndarray) -> Fn:
        mu, sd = rows.mean(0), rows.std(0) + 1e-9
        proj = None
        if whiten:
            _, s, vt = np.linalg.svd((rows - mu) / sd, full_matrices=False)
            keep = s > s[0] * 1e-3
            proj = vt[keep].T / (s[keep] / np.sqrt(len(rows)))

        def tf(q: np.ndarray) -> np.ndarray:
            z = (q - mu) / sd
            return z if proj is None else z @ proj

        ref = tf(rows)

        def dist(q: np.ndarray) -> np.ndarray:
            tq = tf(q)
            d = (tq * tq).sum(1)[:, None] + (ref * ref).sum(1)[None] - 2.0 * tq @ ref.T
            return np.sqrt(np.maximum(np.sort(d, 1)[:, :k], 0.0).mean(1))
        return dist
    return make


def held_out(train: np.ndarray, make: Callable[[np.ndarray], Fn], folds: int) -> np.ndarray:
    """Each image's distance to the statistic fitted without its fold (all
    its views left out with it)."""
    n, _, d = train.shape
    fold = np.arange(n) % folds
    return np.concatenate([make(train[fold != f].reshape(-1, d))(train[fold == f, 0]) for f in range(folds)])


def extract(bundle: Path, data: Path | None) -> dict[str, np.ndarray | float]:
    from inspection_core.data.dataset import load_images, scan_dataset
    from inspection_core.data.preprocess import to_tensor
    from inspection_core.inference import Inspector
    from inspection_core.models.patchcore import _bank_view

    insp = Inspector(bundle, device="cpu", precision="fp32")
    model, pp = insp.model, insp.preprocessing
    root = data or Path(insp.manifest["training"]["data"]["root"])
    index = scan_dataset(root)

    def stats(samples: list, views: list[str], local: bool) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        out, loc, tex = [], [], []
        for i in range(0, len(samples), 16):
            x = to_tensor(load_images(samples[i : i + 16], pp).images)
            with torch.inference_mode():
                imgs = [x] + [_bank_view(x, a) for a in views]
                out.append(torch.stack([model.texture_stats(model.embed(v)) for v in imgs], 1))
                if local:
                    s = model._score(x, None)
                    loc.append(s.scores - s.texture)
                    tex.append(s.texture)
        return (torch.cat(out).double().numpy(), torch.cat(loc).numpy() if local else None,
                torch.cat(tex).numpy() if local else None)

    train, _, _ = stats(list(index.train), list(model.params["bank_augment"]), False)
    test, local, texture = stats(list(index.test), [], True)
    loo = insp.manifest["training"]["fit"]["global_term"]["loo_score"]
    return {"train": train, "test": test[:, 0], "local": local, "texture": texture,
            "y": np.array([s.label for s in index.test]), "score_sd": float(model.global_norm[2]),
            "loo_mean": float(loo[0]), "loo_sd": float(loo[1]), "name": root.name}


def report(r: dict) -> None:
    from sklearn.metrics import roc_auc_score

    train, test, local, y, sd = r["train"], r["test"], r["local"], r["y"], r["score_sd"]
    n, views, dim = train.shape
    auc = lambda s: roc_auc_score(y, s)  # noqa: E731
    print(f"# {r['name']}: {n} training images x {views} views, {dim} statistics; test {len(y)} ({int(y.sum())} defective)")
    print(f"product's score {auc(local + r['texture']):.4f}, local part alone {auc(local):.4f}")
    print(f"{'global statistic':34s} {'alone':>7s} " + " ".join(f"{'w ' + str(w):>7s}" for w in (0.5, 1.0, 1.5, 2.0)))
    variants: list[tuple[str, Callable[[np.ndarray], Fn]]] = [("Gaussian, Ledoit-Wolf (the product)", gaussian_fn)]
    variants += [(f"{k}-NN, standardised", knn_fn(k, False)) for k in (1, 3, 5, 10)]
    variants += [(f"{k}-NN, whitened", knn_fn(k, True)) for k in (1, 5)]
    first: tuple[np.ndarray, np.ndarray] | None = None  # the product's Gaussian: distances and z
    for name, make in variants:
        held = held_out(train, make, 5)
        d = make(train.reshape(-1, dim))(test)
        z = (d - held.mean()) / held.std()
        first = first or (d, z)
        fused = [auc(local + w * sd * np.clip(z, 0.0, None)) for w in (0.5, 1.0, 1.5, 2.0)]
        print(f"{name:34s} {auc(d):7.4f} " + " ".join(f"{f:7.4f}" for f in fused), flush=True)
    assert first is not None
    full, z_gauss = first
    print(f"good test images' distance to the Gaussian: mean {full[y == 0].mean():.2f}, sd {full[y == 0].std():.2f}")
    perm = np.random.default_rng(0).permutation(n)
    new, inner = perm[: n // 5], perm[n // 5 :]
    d_new = gaussian_fn(train[inner].reshape(-1, dim))(train[new, 0])
    print(f"training only: 20 % new good images against the Gaussian of the other 80 %: mean {d_new.mean():.2f}, sd {d_new.std():.2f}")
    for folds in (5, 10, 20):
        held, inner_held = held_out(train, gaussian_fn, folds), held_out(train[inner], gaussian_fn, folds)
        z = (full - held.mean()) / held.std()
        print(f"  {folds:2d}-fold scale: mean {held.mean():.2f}, sd {held.std():.2f} (within the 80 %: {inner_held.mean():.2f}, "
              f"{inner_held.std():.2f}); fused w 0.5 {auc(local + 0.5 * sd * np.clip(z, 0, None)):.4f}, "
              f"w 1.0 {auc(local + sd * np.clip(z, 0, None)):.4f}", flush=True)
    zl, zg = (local - r["loo_mean"]) / r["loo_sd"], z_gauss
    rules = {"z_local + z_global": zl + zg, "max(z_local, z_global)": np.maximum(zl, zg),
             "norm of the positive parts": np.hypot(np.clip(zl, 0, None), np.clip(zg, 0, None))}
    print("parameter-free fusions (local z from the leave-one-out scores): "
          + "; ".join(f"{k} {auc(v):.4f}" for k, v in rules.items()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundles", nargs="+", type=Path, help="PatchCore bundles with the global term (quality.py --out)")
    ap.add_argument("--data", type=Path, help="the data set (default: the one recorded in each bundle)")
    args = ap.parse_args(argv)
    for b in args.bundles:
        report(extract(b, args.data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
