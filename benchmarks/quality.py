"""Quality benchmark: every family on the real data sets, with the command
line's defaults (what ``inspector train --data DIR --model M --out B`` does
with no other flag), evaluated on the test split, which no training or model
selection ever sees.

    python benchmarks/quality.py                                  # every family, both data sets
    python benchmarks/quality.py --models patchcore --datasets screw
    python benchmarks/quality.py --models skip-ganomaly --param lam=1 --preset quick

Per run it prints image AUROC and AP; pixel AUROC and PRO where masks pair;
the Pearson correlation of the score with the images' mean brightness over
the test set and pooled within each class (a brightness shortcut shows in
the second); false-reject and escape rates at the bundle's provisional
threshold; training time and updates; peak resident memory of the run; the
median time to score one image (batch 1, heat map included); the bundle's
size. Each run is its own process, so its peak memory is its own.

Data sets are read from ../shared/data (never copied into the repository);
pretrained backbones from torch's cache (``$TORCH_HOME``; ../shared/weights
holds MobileNetV2's, which ``--torch-home-from-shared`` puts in a temporary
cache for this run). ``--synthetic-train N`` adds a run that fits on N
generated training images (PatchCore's memory check at 1,000).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ALL_MODELS = ["ganomaly", "skip-ganomaly", "bigan", "vgg16", "patchcore"]


def run_one(job: dict) -> dict:
    """One training and evaluation (runs in its own process)."""
    import numpy as np
    import torch

    from inspection_core.bundle import save_bundle
    from inspection_core.data.dataset import scan_dataset
    from inspection_core.data.images import read_image
    from inspection_core.evaluation import evaluate
    from inspection_core.inference import Inspector
    from inspection_core.recipes import resolve
    from inspection_core.training.trainer import train

    torch.set_num_threads(job["threads"])
    index = scan_dataset(job["root"], seed=job["seed"])
    train_over = {"device": job["device"], "seed": job["seed"], "samples_per_epoch": 0, **job["train"]}
    mcfg, tcfg = resolve(job["model"], job["preset"], channels=index.channels, image_size=job["image_size"],
                         params=job["params"], train=train_over)
    if job["model"] == "vgg16" and "init" not in job["params"] and not job["imagenet_vgg16"]:
        mcfg.params["init"] = "scratch"
    t0 = time.perf_counter()
    res = train(index, mcfg, tcfg)
    train_s = time.perf_counter() - t0
    out = Path(job["out"]) / f"{job['dataset']}_{job['model']}.inspector"
    path = save_bundle(out, res.model, res.manifest)
    insp = Inspector(path, device=job["device"])
    metrics, scored = evaluate(insp, index)
    from _brightness import brightness_correlations, mean_brightness

    bright = mean_brightness(scored.samples, mcfg.image_size, mcfg.channels)
    r_all, r_within = brightness_correlations(scored.scores, bright, scored.labels)
    images = [read_image(s.path) for s in scored.samples[:25]]
    for im in images[:3]:
        insp.predict(im)
    times = []
    for im in images:
        t = time.perf_counter()
        insp.predict(im)
        times.append((time.perf_counter() - t) * 1000)
    tr = res.manifest["training"]
    c = metrics["confusion"]
    return {
        **{k: job[k] for k in ("dataset", "model", "preset")},
        "image_size": mcfg.image_size, "normalize": mcfg.normalize, "params": job["params"], "train": job["train"],
        "image_auroc": metrics["image_auroc"], "image_ap": metrics["image_ap"],
        "pixel_auroc": metrics.get("pixel_auroc"), "pro": metrics.get("pro"),
        "r_brightness": r_all, "r_brightness_within": r_within,
        "false_reject": c["fp"] / max(1, c["fp"] + c["tn"]), "escape": c["fn"] / max(1, c["fn"] + c["tp"]),
        "train_s": train_s, "updates": tr["updates"], "fit": tr.get("fit"), "epochs_run": tr["epochs_run"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "score_ms": float(np.median(times)), "bundle_mb": path.stat().st_size / 1e6,
        "engine": insp.engine, "n_good": metrics["n_good"], "n_defect": metrics["n_defect"],
    }


def _fmt(v, w: int, p: int = 3) -> str:
    return f"{v:>{w}.{p}f}" if isinstance(v, (int, float)) else f"{'n/a':>{w}}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--datasets", nargs="+", default=["magnetic_tile", "screw"])
    ap.add_argument("--models", nargs="+", default=ALL_MODELS)
    ap.add_argument("--preset", default="standard")
    ap.add_argument("--image-size", type=int, default=None)
    ap.add_argument("--param", nargs="*", default=[], help="family parameters KEY=VALUE, for every model given")
    ap.add_argument("--train", nargs="*", default=[], help="TrainConfig fields KEY=VALUE")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--imagenet-vgg16", action="store_true", help="vgg16 from ImageNet weights (else from scratch)")
    ap.add_argument("--synthetic-train", type=int, default=0, metavar="N",
                    help="also fit each model on N generated training images (memory check)")
    ap.add_argument("--torch-home-from-shared", action="store_true",
                    help="put ../shared/weights into a temporary torch cache for this run")
    ap.add_argument("--out", type=Path, default=None, help="folder to keep the bundles (default: a temp folder)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    from inspection_core.cli.train import parse_pairs

    params, train_settings = parse_pairs(args.param, "--param"), parse_pairs(args.train, "--train")

    tmp = Path(tempfile.mkdtemp(prefix="inspector-quality-"))
    if args.torch_home_from_shared:
        from _torch_home import torch_home_from_shared

        torch_home_from_shared(tmp)
    out = args.out or tmp / "bundles"
    out.mkdir(parents=True, exist_ok=True)
    jobs = []
    roots = [(ds, args.data_root / ds) for ds in args.datasets]
    if args.synthetic_train:
        from inspection_core.data.demo import make_demo_dataset

        syn = make_demo_dataset(tmp / f"synthetic{args.synthetic_train}", seed=0, size=256, n_train=args.synthetic_train,
                                n_test_good=20, n_test_defect_per_type=5, channels=1)
        roots.append((f"synthetic{args.synthetic_train}", syn))
    for ds, root in roots:
        if not (root / "train").is_dir():
            print(f"{ds}: skipped, {root} not found", flush=True)
            continue
        for model in args.models:
            jobs.append({"dataset": ds, "root": str(root), "model": model, "preset": args.preset,
                         "image_size": args.image_size, "params": params, "train": train_settings,
                         "seed": args.seed, "device": args.device, "threads": args.threads, "out": str(out),
                         "imagenet_vgg16": args.imagenet_vgg16})
    import torch

    print(f"# quality benchmark  {time.strftime('%Y-%m-%d %H:%M')}  torch {torch.__version__}  "
          f"{platform.machine()}  {os.cpu_count()} cores  threads {args.threads}  preset {args.preset}  "
          f"load {os.getloadavg()[0]:.1f}", flush=True)
    print(f"{'dataset':<14}{'model':<14}{'img AUROC':>9}{'AP':>7}{'pix AUROC':>10}{'PRO':>7}{'r':>7}{'r_in':>7}"
          f"{'FRR':>7}{'escape':>7}{'train s':>9}{'updates':>8}{'peak MB':>9}{'ms/img':>8}{'MB':>6}", flush=True)
    results = []
    ctx = mp.get_context("spawn")
    for job in jobs:
        with ctx.Pool(1) as pool:
            try:
                r = pool.apply(run_one, (job,))
            except Exception as exc:  # noqa: BLE001 - report and go on with the other runs
                print(f"{job['dataset']:<14}{job['model']:<14} failed: {type(exc).__name__}: {exc}", flush=True)
                continue
        results.append(r)
        print(f"{r['dataset']:<14}{r['model']:<14}{_fmt(r['image_auroc'], 9)}{_fmt(r['image_ap'], 7)}"
              f"{_fmt(r['pixel_auroc'], 10)}{_fmt(r['pro'], 7)}{_fmt(r['r_brightness'], 7, 2)}"
              f"{_fmt(r['r_brightness_within'], 7, 2)}{_fmt(r['false_reject'], 7, 2)}{_fmt(r['escape'], 7, 2)}"
              f"{r['train_s']:>9.0f}{r['updates']:>8}{r['peak_rss_mb']:>9.0f}{r['score_ms']:>8.1f}{r['bundle_mb']:>6.1f}",
              flush=True)
    print(f"# load at the end {os.getloadavg()[0]:.1f}", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str))
    if not args.out:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
