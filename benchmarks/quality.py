"""Quality benchmark: train detectors on the real data sets and print image
AUROC (and pixel AUROC / PRO where masks pair), training time and epochs.

    python benchmarks/quality.py                       # all models, both data sets, 128 px
    python benchmarks/quality.py --models ganomaly --datasets screw --epochs 5

Data sets are read from ../shared/data (never copied into the repository).
No validation on the test split: the test images are used once, for the
figures printed here.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inspection_core.config import ModelConfig, TrainConfig  # noqa: E402
from inspection_core.data.dataset import scan_dataset  # noqa: E402
from inspection_core.evaluation import evaluate  # noqa: E402
from inspection_core.inference import Inspector  # noqa: E402
from inspection_core.training.trainer import in_memory_bundle, train  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--datasets", nargs="+", default=["screw", "magnetic_tile"])
    ap.add_argument("--models", nargs="+", default=["ganomaly", "skip-ganomaly"])
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--latent", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--param", action="append", default=[], metavar="MODEL:KEY=VALUE")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--save-bundles", type=Path, default=None, help="folder to keep the trained bundles")
    args = ap.parse_args()

    print(f"# quality benchmark  torch {torch.__version__}  {platform.processor() or platform.machine()}  "
          f"threads {torch.get_num_threads()}  {args.image_size}px  {args.epochs} epochs")
    header = f"{'dataset':<14} {'model':<14} {'img AUROC':>9} {'img AP':>7} {'pix AUROC':>9} {'PRO':>6} {'train s':>8} {'epochs':>6} {'best':>4}"
    print(header)
    results = []
    for ds in args.datasets:
        root = args.data_root / ds
        if not root.is_dir():
            print(f"{ds:<14} skipped: {root} not found")
            continue
        index = scan_dataset(root, seed=args.seed)
        for model in args.models:
            params = {}
            for item in args.param:
                m, kv = item.split(":", 1)
                if m == model:
                    k, v = kv.split("=", 1)
                    params[k] = json.loads(v)
            if model == "vgg16":
                params.setdefault("init", "scratch")
            mcfg = ModelConfig(model=model, image_size=args.image_size, channels=index.channels,
                               latent_dim=args.latent, base_width=args.width, params=params)
            tcfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, device=args.device, seed=args.seed,
                               samples_per_epoch=0, lr=1e-4 if model == "vgg16" else 2e-4)
            t0 = time.perf_counter()
            def log_epoch(ev, ds=ds, model=model) -> None:
                if ev.kind == "epoch":
                    m = " ".join(f"{k}={v:.4g}" for k, v in ev.metrics.items())
                    print(f"#   {ds} {model} epoch {ev.epoch}/{ev.epochs} {ev.elapsed_s:.0f}s {m}", file=sys.stderr, flush=True)

            res = train(index, mcfg, tcfg, progress=log_epoch)
            secs = time.perf_counter() - t0
            insp = Inspector(in_memory_bundle(res), device=args.device)
            metrics, _ = evaluate(insp, index)
            tr = res.manifest["training"]

            def f(v: float | None, w: int) -> str:
                return f"{v:>{w}.3f}" if v is not None else f"{'n/a':>{w}}"

            print(f"{ds:<14} {model:<14} {f(metrics['image_auroc'], 9)} {f(metrics['image_ap'], 7)} "
                  f"{f(metrics.get('pixel_auroc'), 9)} {f(metrics.get('pro'), 6)} {secs:>8.0f} {tr['epochs_run']:>6} {tr['best_epoch']:>4}",
                  flush=True)
            results.append({"dataset": ds, "model": model, "image_size": args.image_size, "train_s": secs,
                            "epochs": tr["epochs_run"], "best_epoch": tr["best_epoch"], "device": tr["device"],
                            "init": tr.get("init_source"), **{k: metrics.get(k) for k in
                            ("image_auroc", "image_ap", "pixel_auroc", "pro", "n_good", "n_defect")}})
            if args.save_bundles:
                from inspection_core.bundle import save_bundle

                res.manifest["metrics"] = metrics
                save_bundle(args.save_bundles / f"{ds}_{model}.inspector", res.model, res.manifest)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
