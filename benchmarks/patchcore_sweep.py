"""PatchCore ablation on the real data sets: which layers, input size, memory
bank and image score. Features are extracted once per data set and size and
reused across the variants, so a sweep takes minutes, not hours.

    python benchmarks/patchcore_sweep.py --datasets magnetic_tile screw --sizes 224 256

Prints one line per variant: image AUROC, pixel AUROC (where masks pair),
bank size and the time to choose the bank. It uses the product's own pieces
(``FeatureExtractor``, ``greedy_coreset``, ``nearest_distances``,
``smooth_map``), so a winning variant is what ``--param`` would give; the
chosen defaults and the table are in ``docs/quality.md``.

Needs ImageNet weights for the backbone in torch's cache (``$TORCH_HOME``);
``../shared/weights`` holds MobileNetV2's (see its README).
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inspection_core.backbones import FeatureExtractor  # noqa: E402
from inspection_core.data.dataset import load_images, load_masks, scan_dataset  # noqa: E402
from inspection_core.data.preprocess import Preprocessing, to_tensor  # noqa: E402
from inspection_core.models.base import smooth_map  # noqa: E402
from inspection_core.models.patchcore import greedy_coreset, nearest_distances  # noqa: E402
from inspection_core.pixel_metrics import pixel_auroc  # noqa: E402


def extract(fe: FeatureExtractor, images: np.ndarray, k: int) -> dict[str, torch.Tensor]:
    out: dict[str, list[torch.Tensor]] = {}
    with torch.inference_mode():
        for i in range(0, len(images), 16):
            feats = fe(to_tensor(images[i : i + 16]))
            for name, f in feats.items():
                if k > 1:
                    f = F.avg_pool2d(f, k, stride=1, padding=k // 2, count_include_pad=False)
                out.setdefault(name, []).append(f.float())
    return {n: torch.cat(v) for n, v in out.items()}


def combine(feats: dict[str, torch.Tensor], layers: tuple[str, ...]) -> torch.Tensor:
    size = feats[layers[0]].shape[-2:]
    parts = [feats[l] if feats[l].shape[-2:] == size else
             F.interpolate(feats[l], size=size, mode="bilinear", align_corners=False) for l in layers]
    return torch.cat(parts, 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--datasets", nargs="+", default=["magnetic_tile", "screw"])
    ap.add_argument("--backbone", default="mobilenet_v2")
    ap.add_argument("--sizes", nargs="+", type=int, default=[224])
    ap.add_argument("--layer-sets", nargs="+", default=["features.6,features.13"])
    ap.add_argument("--banks", nargs="+", default=["coreset:0.1"], help="coreset:RATIO, random:RATIO or all")
    ap.add_argument("--projection", type=int, default=128)
    ap.add_argument("--neighbourhood", type=int, default=3)
    ap.add_argument("--sigma", type=float, default=4.0)
    args = ap.parse_args()
    torch.manual_seed(0)
    layer_sets = [tuple(s.split(",")) for s in args.layer_sets]
    all_layers = sorted({l for s in layer_sets for l in s})
    fe = FeatureExtractor(args.backbone, all_layers, "imagenet")
    print(f"# {args.backbone}  threads {torch.get_num_threads()}  neighbourhood {args.neighbourhood}  sigma {args.sigma}")
    print(f"{'dataset':<14}{'size':>5} {'layers':<34}{'bank':<14}{'n':>7}{'bank s':>8}  {'max':>6} {'top1%':>6} {'pixel':>6}")
    for ds in args.datasets:
        index = scan_dataset(args.data_root / ds)
        train_s = [s for s in index.train if s.label == 0]
        for size in args.sizes:
            pp = Preprocessing(size, index.channels)
            tr = load_images(train_s, pp).images
            te = load_images(index.test, pp)
            labels = np.array([s.label for s in te.samples])
            masks = load_masks(te.samples, size)
            has_masks = any(s.mask_path is not None for s in te.samples)
            ftr, fte = extract(fe, tr, args.neighbourhood), extract(fe, te.images, args.neighbourhood)
            for layers, bank_spec in itertools.product(layer_sets, args.banks):
                emb_tr, emb_te = combine(ftr, layers), combine(fte, layers)
                d = emb_tr.shape[1]
                patches = emb_tr.permute(0, 2, 3, 1).reshape(-1, d)
                t0 = time.perf_counter()
                g = torch.Generator().manual_seed(0)
                kind, _, ratio = bank_spec.partition(":")
                if kind == "all":
                    bank = patches
                else:
                    k = int(math.ceil(len(patches) * float(ratio)))
                    if kind == "random":
                        bank = patches[torch.randperm(len(patches), generator=g)[:k]]
                    else:
                        red = patches
                        if args.projection < d:
                            red = patches @ (torch.randn(d, args.projection, generator=g) / math.sqrt(args.projection))
                        bank = patches[greedy_coreset(red, k, g)]
                bank_s = time.perf_counter() - t0
                bank_sq = (bank * bank).sum(1)
                b, _, h, w = emb_te.shape
                q = emb_te.permute(0, 2, 3, 1).reshape(b, h * w, d)
                dist = torch.stack([nearest_distances(q[i], bank, bank_sq)[0][:, 0] for i in range(b)])
                s_max = dist.max(1).values.numpy()
                top = max(1, int(round(0.01 * h * w)))
                s_top = dist.topk(top, dim=1).values.mean(1).numpy()
                from sklearn.metrics import roc_auc_score

                pix = None
                if has_masks:
                    amap = F.interpolate(dist.view(b, 1, h, w), size=(size, size), mode="bilinear", align_corners=False).squeeze(1)
                    amap = smooth_map(amap, args.sigma * size / 224)
                    pix = pixel_auroc(amap.numpy(), masks)
                pix_s = f"{pix:6.3f}" if pix is not None else f"{'n/a':>6}"
                print(f"{ds:<14}{size:>5} {'+'.join(layers):<34}{bank_spec:<14}{len(bank):>7}{bank_s:>8.1f}  "
                      f"{roc_auc_score(labels, s_max):6.3f} {roc_auc_score(labels, s_top):6.3f} {pix_s}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
