"""Ablation of the reconstruction families' recipe on the real data sets.

Trains one model with the given settings, then scores the test split with
several map/score variants of the *same* weights (the residual and the
image score are scoring-time parameters), printing for each: image AUROC,
pixel AUROC and PRO (where masks pair), and the Pearson correlation between
score and mean image brightness over the test set and within each class.

    python benchmarks/gan_ablation.py --dataset magnetic_tile --model skip-ganomaly \\
        --train updates=1500 --param base_width=32 --variants pixel:paper pixel:map perceptual:map

Settings not given come from the model's preset (``inspection_core.recipes``),
exactly as ``inspector train`` would. Variants using ``perceptual`` need the
model trained with a perceptual backbone (``--param perceptual_backbone=mobilenet_v2``)
and ImageNet weights in torch's cache (``$TORCH_HOME``; ``../shared/weights``).
The test split is used only for the figures printed here.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inspection_core.bundle import Bundle  # noqa: E402
from inspection_core.data.dataset import scan_dataset  # noqa: E402
from inspection_core.evaluation import evaluate  # noqa: E402
from inspection_core.inference import Inspector  # noqa: E402
from inspection_core.recipes import resolve  # noqa: E402
from inspection_core.cli.train import parse_pairs  # noqa: E402
from inspection_core.training.trainer import train  # noqa: E402

from _brightness import brightness_correlations, mean_brightness  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--preset", default="standard")
    ap.add_argument("--image-size", type=int, default=None)
    ap.add_argument("--normalize", default=None, choices=("none", "mean_std"))
    ap.add_argument("--param", nargs="*", default=[], help="family parameters KEY=VALUE")
    ap.add_argument("--train", nargs="*", default=[], help="TrainConfig fields KEY=VALUE")
    ap.add_argument("--variants", nargs="*", default=["pixel:paper", "pixel:map"], help="RESIDUAL:SCORE[:TOP_K]")
    ap.add_argument("--tag", default="")
    ap.add_argument("--save", type=Path, default=None, help="save the trained bundle here")
    args = ap.parse_args()

    index = scan_dataset(args.data_root / args.dataset)
    tr = {"device": "cpu", "samples_per_epoch": 0, **parse_pairs(args.train, "--train")}
    mcfg, tcfg = resolve(args.model, args.preset, channels=index.channels, image_size=args.image_size,
                         params=parse_pairs(args.param, "--param"), train=tr)
    if args.normalize:
        mcfg.normalize = args.normalize
    t0 = time.perf_counter()
    res = train(index, mcfg, tcfg)
    secs = time.perf_counter() - t0
    t = res.manifest["training"]
    print(f"# {args.dataset} {args.model} {args.tag} size {mcfg.image_size} normalize {mcfg.normalize} "
          f"params {json.dumps(parse_pairs(args.param, '--param'))} train {json.dumps(parse_pairs(args.train, '--train'))}: {secs:.0f} s, "
          f"{t['updates']} updates, best round {t['best_epoch']}/{t['epochs_run']} ({t['best_metric']})", flush=True)
    if args.save:
        from inspection_core.bundle import save_bundle

        save_bundle(args.save, res.model, res.manifest)
    state = res.model.state_dict()
    bright = None
    for v in args.variants:
        residual, score, *rest = v.split(":")
        man = copy.deepcopy(res.manifest)
        man["model"]["params"].update({"residual": residual, "score": score})
        if rest:
            man["model"]["params"]["top_k"] = float(rest[0])
        insp = Inspector(Bundle(path=None, manifest=man, state_dict=state), device="cpu", precision="eager")
        m, scored = evaluate(insp, index)
        if bright is None:  # the same samples in the same order for every variant
            bright = mean_brightness(scored.samples, mcfg.image_size, mcfg.channels)
        r_all, r_within = brightness_correlations(scored.scores, bright, scored.labels)
        pix = m.get("pixel_auroc")
        pro = m.get("pro")
        print(f"{args.dataset:<14} {args.model:<14} {v:<22} img {m['image_auroc']:.3f}  pix "
              f"{'n/a' if pix is None else f'{pix:.3f}'}  pro {'n/a' if pro is None else f'{pro:.3f}'}  "
              f"r {r_all:+.2f}  r_within {r_within:+.2f}  {args.tag}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
