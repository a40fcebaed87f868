"""``inspector compare``: train several detector families on one folder and
compare them on the same held-out images (an adapter over
:func:`inspection_core.usecases.compare.compare`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import CliError, HelpFormatter, ProgressBar, add_note, check_float, check_int, printable


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..recipes import DEFAULT_PRESET, PRESETS
    from ..usecases.compare import DEFAULT_FAMILIES
    from ..comparison import DEFAULT_ESCAPE_TARGET

    p = sub.add_parser(
        "compare",
        help="train several detector families on one folder and compare them on the same held-out images",
        description="Train each family in turn with its preset (as inspector train does), save its bundle in "
        "OUT/<family>/, evaluate every one on the same held-out images and print a table (image AUROC, pixel "
        "AUROC where masks exist, false rejects and escapes at the escape target, training time, milliseconds per "
        "image on this machine, bundle size) with a recommendation: the best held-out image AUROC (a tie at three "
        "decimals goes to fewer false rejects at the target, then speed, then size). Writes OUT/comparison.json, "
        "OUT/comparison.csv and OUT/report/index.html (ROC and PR curves overlaid). The classifier (vgg16) is "
        "compared only on a folder with labelled defective images; it trains on 60 % of them, and every family "
        "is then measured on the classifier's held-out 20 %.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--data", type=Path, required=True,
                   help="data folder (MVTec layout: train/good, test/<type>, ground_truth; or good/ + defect/)")
    p.add_argument("--models", nargs="+", default=list(DEFAULT_FAMILIES), metavar="FAMILY",
                   help=f"families to compare (default: {' '.join(DEFAULT_FAMILIES)}; add vgg16 for the classifier)")
    p.add_argument("--out", type=Path, required=True, help="folder for the bundles, comparison.json/.csv and report/")
    p.add_argument("--overwrite", action="store_true", help="replace bundles a previous comparison left in --out")
    p.add_argument("--preset", choices=PRESETS, default=DEFAULT_PRESET, help="every family's preset")
    p.add_argument("--image-size", type=int, default=None,
                   help="one square model input for every family (default: each preset's)")
    p.add_argument("--escape-target", type=float, default=DEFAULT_ESCAPE_TARGET,
                   help="escape rate at which false rejects are compared (default: %(default)s)")
    p.add_argument("--device", default="auto", help="auto (a GPU if there is one, else the CPU), cpu, cuda, cuda:N or mps")
    p.add_argument("--seed", type=int, default=0, help="random seed of every training and of the classifier's split")
    p.add_argument("--progress", action="store_true", help="force the progress bar (default: only on a terminal)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_int(args.seed, "--seed", 0, 2**32 - 1)
    check_int(args.image_size, "--image-size", 16, 1024)
    check_float(args.escape_target, "--escape-target", 0.0, 0.99)
    from ..usecases.compare import CompareError, default_settings, plan_comparison, resolve_families

    try:
        families = resolve_families(args.models)  # an unknown name is told before torch is imported
    except CompareError as exc:
        raise CliError(str(exc)) from None
    if not args.data.exists():
        raise CliError(f"data folder '{printable(args.data)}' does not exist")
    if not args.data.is_dir():
        raise CliError(f"--data '{printable(args.data)}' is not a folder")
    if args.out.exists() and not args.out.is_dir():
        raise CliError(f"--out '{printable(args.out)}' is a file; give a folder")
    settings = default_settings(families, preset=args.preset, image_size=args.image_size, device=args.device,
                                seed=args.seed)
    try:
        plan = plan_comparison(args.data, families, seed=args.seed, settings=settings)
    except CompareError as exc:
        raise CliError(str(exc)) from None
    for fam, why in plan.skipped.items():
        print(f"note: {fam} left out: {why}", file=sys.stderr)
    if plan.warning():
        print(f"warning: {plan.warning()}", file=sys.stderr)
    print(f"comparing {', '.join(plan.families)} on {plan.n_good} good and {plan.n_defect} defective held-out "
          f"images ({plan.held_out_description})", file=sys.stderr, flush=True)
    from ..usecases.compare import compare, write_comparison
    from ..comparison import format_table

    bar = ProgressBar("compare", enabled=True if args.progress else None)
    try:
        try:
            comparison = compare(plan.index, args.out, settings=settings, escape_target=args.escape_target,
                                 overwrite=args.overwrite, seed=args.seed, progress=bar)
        except CompareError as exc:
            raise CliError(str(exc)) from None
        except KeyboardInterrupt as exc:
            done = sorted(p.parent.name for p in Path(args.out).glob("*/*.inspector"))
            add_note(exc, (f"bundles finished before the stop kept in '{printable(args.out)}': {', '.join(done)}; "
                           if done else "no bundle finished; ") + "the family in training wrote nothing, no comparison "
                     "written")
            raise
    finally:
        bar.close()
    paths = write_comparison(args.out, comparison)
    print(f"held-out images: {comparison.held_out['n_good']} good, {comparison.held_out['n_defect']} defective "
          f"({comparison.held_out['description']}); false rejects and escapes at ≤{comparison.escape_target:.0%} "
          "escapes")
    print(format_table(comparison))
    rec = comparison.recommendation
    print(f"recommendation: {rec.family or 'none'}: {rec.reason}")
    print(f"compared in {comparison.wall_s:.0f} s ({comparison.wall_s / 60:.1f} min)")
    for kind in ("json", "csv", "html"):
        print(f"wrote {paths[kind]}")
    return 0
