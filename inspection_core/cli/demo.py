"""``inspector demo-data OUT``: the built-in synthetic data set."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo-data",
        help="generate the built-in synthetic data set (MVTec layout)",
        description="Generate a deterministic synthetic data set of machined washers with scratches, dents, "
        "stains and missing material, with exact masks, in the MVTec AD folder layout.",
    )
    p.add_argument("out", type=Path, help="output folder (created; must be empty or a previous demo set)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same files)")
    p.add_argument("--size", type=int, default=128, help="image size in pixels (default 128)")
    p.add_argument("--train", type=int, default=120, dest="n_train", help="good training images (default 120)")
    p.add_argument("--test-good", type=int, default=30, help="good test images (default 30)")
    p.add_argument("--test-defect", type=int, default=10, help="test images per defect type (default 10)")
    p.add_argument("--gray", action="store_true", help="single-channel images")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data.dataset import scan_dataset
    from ..data.demo import make_demo_dataset

    out = make_demo_dataset(
        args.out,
        seed=args.seed,
        size=args.size,
        n_train=args.n_train,
        n_test_good=args.test_good,
        n_test_defect_per_type=args.test_defect,
        channels=1 if args.gray else 3,
    )
    s = scan_dataset(out).summary()
    types = ", ".join(f"{k} {v}" for k, v in s["defect_types"].items())
    print(f"wrote {out}: {s['n_train']} train, {s['n_test_good']} good test, {s['n_test_defect']} defective test ({types})")
    return 0
