"""``inspector evaluate``: metrics of a bundle on a labelled data set (an
adapter over :func:`inspection_core.usecases.evaluate.evaluate_bundle`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import ProgressBar, check_batch_size, no_defects_warning, open_labelled_data, printable


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score a labelled data set and report metrics",
        description="Score the test split of a labelled data set (a supervised bundle: the split it never "
        "trained on) with a bundle and print image AUROC, AP, F1, balanced accuracy and the confusion at the bundle's threshold "
        "(pixel AUROC and PRO when masks exist). "
        "With --report, also write metrics.json, a per-image CSV, figures and index.html.",
    )
    p.add_argument("--bundle", type=Path, required=True, help="model bundle (.inspector file) to evaluate")
    p.add_argument("--data", type=Path, required=True,
                   help="labelled data set folder (good/ + defect/, or the MVTec layout); its test split is scored")
    p.add_argument("--report", type=Path, default=None,
                   help="folder for metrics.json, scores.csv, figures and index.html (default: no report)")
    p.add_argument("--batch-size", type=int, default=32, help="images scored together")
    p.add_argument("--device", default="auto", help="auto (a GPU if there is one, else the CPU), cpu, cuda, cuda:N or mps")
    p.add_argument("--progress", action="store_true",
                   help="show the progress bar even when the output is no terminal (default: only on a terminal)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_batch_size(args.batch_size)  # before torch is imported: a bad number is refused at once
    _manifest, index = open_labelled_data(args.bundle, args.data, "evaluate")  # and a wrong bundle or folder
    if (warning := no_defects_warning(index, "only false rejects can be counted, AUROC cannot be measured")):
        print(warning, file=sys.stderr)
    from ..usecases.evaluate import evaluate_bundle

    bar = ProgressBar("evaluate", enabled=True if args.progress else None)
    try:
        outcome = evaluate_bundle(args.bundle, index, report_dir=args.report, batch_size=args.batch_size,
                                  device=args.device, progress=bar)
    finally:
        bar.close()
    metrics, scored = outcome.metrics, outcome.scored
    c = metrics["confusion"]

    def f(v: object) -> str:
        return "n/a" if v is None else f"{v:.4f}"

    print(f"bundle {outcome.inspector.name}: {metrics['n_good']} good, {metrics['n_defect']} defective images "
          f"({outcome.description})")
    print(f"image AUROC {f(metrics['image_auroc'])}  AP {f(metrics['image_ap'])}  F1 {f(metrics['f1'])}  "
          f"balanced accuracy {f(metrics['balanced_accuracy'])}")
    print(f"threshold {metrics['threshold']:.5g}: {c['tp']} defective caught, {c['fn']} escaped, {c['tn']} good passed, "
          f"{c['fp']} falsely rejected (false-reject rate {f(metrics['fpr'])}, escape rate {f(metrics['fnr'])})")
    if metrics.get("pixel_auroc") is not None:
        pro = metrics.get("pro")
        print(f"pixel AUROC {f(metrics['pixel_auroc'])}" + (f"  PRO {f(pro)}" if pro is not None else ""))
    per_type = metrics.get("per_type") or {}
    if len(per_type) > 1:
        print("detection rate per defect type: " + ", ".join(f"{t} {r['detection_rate']:.3f} ({r['fail']}/{r['n']})"
                                                          for t, r in per_type.items()))
    if metrics.get("defect_types"):
        from .defect_types import print_confusion

        print_confusion(metrics["defect_types"])
    if scored.skipped:
        print(f"skipped {len(scored.skipped)} unreadable image(s):")
        for p, reason in scored.skipped[:10]:
            print(f"  {printable(p)}: {reason}")
        if len(scored.skipped) > 10:
            print(f"  and {len(scored.skipped) - 10} more")
    if outcome.report is not None:
        print(f"report: {outcome.report}")
    return 0
