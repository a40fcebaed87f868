"""``inspector defect-types``: give a bundle a defect-type classifier from
labelled defect folders (an adapter over
:func:`inspection_core.usecases.defect_types.train_defect_types`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .common import ProgressBar, check_batch_size, check_float, open_labelled_data, printable


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "defect-types",
        help="teach a bundle to name the defect type of a FAIL from labelled defect folders",
        description="Train a small defect-type classifier on the labelled defects of a folder (test/<type>/, "
        "at least two types) that the bundle may be calibrated on, and store it in the bundle: a FAIL then "
        "reads 'FAIL: scratch (0.82)', or 'unknown' for a part unlike every type. A seeded share of each type "
        "is held out and measured (the confusion matrix is printed and stored).",
    )
    p.add_argument("--bundle", type=Path, required=True, help="model bundle (.inspector file)")
    p.add_argument("--data", type=Path, required=True, help="labelled folder with defect folders named by type")
    p.add_argument("--out", type=Path, default=None, help="write a copy with the classifier here (default: the bundle itself)")
    p.add_argument("--holdout", type=float, default=0.5, help="share of each type held out to measure it (default 0.5)")
    p.add_argument("--min-probability", type=float, default=0.5,
                   help="below this probability the answer is 'unknown' (default 0.5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the held-out choice")
    p.add_argument("--batch-size", type=int, default=32, help="images scored together")
    p.add_argument("--device", default="auto", help="auto (a GPU if there is one, else the CPU), cpu, cuda, cuda:N or mps")
    p.set_defaults(func=run)


def print_confusion(held: dict[str, Any]) -> None:
    """The confusion matrix (rows: true type) and the accuracies."""
    cols = held["columns"]
    width = max(len("true \\ named"), *(len(c) for c in cols), *(len(r) for r in held["matrix"]))
    print("true \\ named".ljust(width) + "".join(c.rjust(width + 1) for c in cols))
    for row, counts in held["matrix"].items():
        print(row.ljust(width) + "".join(str(counts[c]).rjust(width + 1) for c in cols))
    acc, macro = held.get("accuracy"), held.get("macro_accuracy")
    print(f"accuracy {'n/a' if acc is None else f'{acc:.3f}'}, macro accuracy (mean over types) "
          f"{'n/a' if macro is None else f'{macro:.3f}'} on {held['n']} held-out defects")


def run(args: argparse.Namespace) -> int:
    check_batch_size(args.batch_size)
    check_float(args.holdout, "--holdout", 0.0, 0.95)
    check_float(args.min_probability, "--min-probability", 0.0, 1.0)
    _manifest, index = open_labelled_data(args.bundle, args.data, "defect-types")  # before torch
    from ..usecases.defect_types import train_defect_types

    bar = ProgressBar("defect types", enabled=None)
    try:
        outcome = train_defect_types(args.bundle, index, out=args.out, holdout=args.holdout, seed=args.seed,
                                     min_probability=args.min_probability, device=args.device,
                                     batch_size=args.batch_size, progress=bar)
    finally:
        bar.close()
    counts = ", ".join(f"{t} {n}" for t, n in outcome.trained_on.items())
    print(f"defect types {', '.join(outcome.classes)}: trained on {counts} ({outcome.description})")
    for t, n in outcome.skipped_types.items():
        print(f"note: '{t}' left out: only {n} image(s)")
    if outcome.held_out:
        print_confusion(outcome.held_out)
    print(f"saved {printable(outcome.path)}")
    return 0
