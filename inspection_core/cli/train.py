"""``inspector train``: train a detector and save a model bundle."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import CliError, ProgressBar


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..models import available_models

    p = sub.add_parser(
        "train",
        help="train a detector on images of good parts and save a model bundle",
        description="Train a detector and save a model bundle (.inspector) with a provisional threshold "
        "(a high quantile of held-out good scores); when the data has a labelled test split, "
        "the bundle's metrics are computed on it.",
    )
    p.add_argument("--data", type=Path, required=True, help="data folder (MVTec layout or good/ + defect/)")
    p.add_argument("--model", choices=available_models(), default="ganomaly")
    p.add_argument("--out", type=Path, required=True, help="bundle file to write (.inspector is appended if missing)")
    p.add_argument("--image-size", type=int, default=128, choices=(32, 64, 128, 256))
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=None, help="learning rate (model default if omitted)")
    p.add_argument("--latent", type=int, default=100, help="latent size")
    p.add_argument("--width", type=int, default=64, help="base channel width")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="model parameter, e.g. w_con=50 (repeatable)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-fraction", type=float, default=0.1, help="held-out share of good training images")
    p.add_argument("--val-data", type=Path, default=None, help="labelled folder for per-epoch validation AUROC")
    p.add_argument("--early-stopping", type=int, default=None, metavar="EPOCHS", help="patience in epochs")
    p.add_argument("--cpu-bf16", action="store_true", help="bf16 autocast and channels-last when training on the CPU (about 2x faster per epoch on CPUs with AVX512-BF16 or AMX, slower without)")
    p.add_argument("--weights", type=Path, default=None, help="vgg16: local ImageNet weights file (offline stations)")
    p.add_argument("--from-scratch", action="store_true", help="vgg16: start from random weights (explicitly)")
    p.add_argument("--no-evaluate", action="store_true", help="skip evaluation on the test split")
    p.add_argument("--progress", action="store_true", help="force the progress bar (default: only on a terminal)")
    p.set_defaults(func=run)


def _parse_params(items: list[str]) -> dict:
    params = {}
    for item in items:
        if "=" not in item:
            raise CliError(f"--param expects KEY=VALUE, got '{item}'")
        k, v = item.split("=", 1)
        try:
            params[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            params[k.strip()] = v
    return params


def run(args: argparse.Namespace) -> int:
    from ..bundle import describe, save_bundle
    from ..config import ModelConfig, TrainConfig
    from ..data.dataset import scan_dataset
    from ..evaluation import evaluate
    from ..inference import Inspector
    from ..training.trainer import in_memory_bundle, train

    params = _parse_params(args.param)
    if args.model == "vgg16":
        if args.weights and args.from_scratch:
            raise CliError("give either --weights or --from-scratch, not both")
        if args.weights:
            params["init"] = str(args.weights)
        elif args.from_scratch:
            params["init"] = "scratch"
    elif args.weights or args.from_scratch:
        raise CliError("--weights and --from-scratch apply to the vgg16 model only")
    index = scan_dataset(args.data, seed=args.seed)
    mcfg = ModelConfig(
        model=args.model,
        image_size=args.image_size,
        channels=index.channels,
        latent_dim=args.latent,
        base_width=args.width,
        params=params,
    )
    tcfg = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        device=args.device,
        seed=args.seed,
        val_fraction=args.val_fraction,
        early_stopping_patience=args.early_stopping,
        cpu_bf16=args.cpu_bf16,
    )
    if args.lr is not None:
        if args.model == "vgg16":
            mcfg.params["lr"] = args.lr  # the classifier's own optimiser setting
        else:
            tcfg.lr = args.lr
    bar = ProgressBar(f"train {args.model}", enabled=True if args.progress else None)
    try:
        result = train(index, mcfg, tcfg, progress=bar, val_data=args.val_data)
    finally:
        bar.close()
    manifest = result.manifest
    if not args.no_evaluate and index.test:
        metrics, _ = evaluate(Inspector(in_memory_bundle(result), device=args.device), index)
        manifest["metrics"] = metrics
    path = save_bundle(args.out, result.model, manifest)
    tr = manifest["training"]
    print(f"saved {path}")
    print(describe(read_back(path)))
    print(f"trained {tr['epochs_run']} epochs in {tr['duration_s']:.1f} s on {tr['device']} ({tr['precision']}), best epoch {tr['best_epoch']}")
    if tr["data"]["n_skipped"]:
        print(f"skipped {tr['data']['n_skipped']} unreadable image(s): see warnings above")
    if result.stopped_reason:
        print(f"note: {result.stopped_reason}")
    m = manifest.get("metrics") or {}
    if m.get("image_auroc") is not None:
        extra = f", pixel AUROC {m['pixel_auroc']:.3f}" if m.get("pixel_auroc") is not None else ""
        print(f"test split: image AUROC {m['image_auroc']:.3f}, AP {m['image_ap']:.3f}{extra}")
    return 0


def read_back(path: Path) -> dict:
    from ..bundle import read_manifest

    return read_manifest(path)
