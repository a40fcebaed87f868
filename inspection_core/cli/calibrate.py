"""``inspector calibrate``: score a data set, choose the threshold(s), write
them into the bundle (an adapter over the core's calibration session,
:class:`inspection_core.usecases.calibration_session.CalibrationSession`,
which the Calibrate view drives too).

Which images calibrate is :func:`inspection_core.selection.calibration_samples`'
rule, the same as the Calibrate view's: never images the bundle was trained
on (a good/defect folder it trained on gives its held-out test split, a
classifier its held-out split); ``--split`` overrides it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..calibration import STRATEGIES, CalibrationResult, plateau_note
from ..selection import CALIBRATION_SPLITS
from .common import (
    CliError,
    ProgressBar,
    check_batch_size,
    check_float,
    check_int,
    open_labelled_data,
    printable,
)

#: each strategy in words
STRATEGY_NAMES = {
    "youden": "Youden's J (the best balance of false rejects and escapes)",
    "f1": "best F1",
    "fpr": "false-reject rate target",
    "fnr": "escape rate target",
    "quantile": "quantile of good scores",
    "manual": "set by hand",
}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``calibrate`` sub-command."""
    p = subparsers.add_parser(
        "calibrate", help="choose the decision threshold(s) on a labelled data set and store them in a bundle",
        description="Score the data set with the bundle's model, choose the threshold with a strategy "
                    "(FAIL when score > threshold), write it into the bundle atomically and print the "
                    "operating point. Strategies: youden, f1, fpr (target: false-reject rate, default 0.01), "
                    "fnr (target: escape rate, default 0.005), quantile (target: quantile of good scores, "
                    "default 0.99; with --margin), manual (target: the threshold).")
    p.add_argument("--bundle", required=True, type=Path, help="model bundle (.inspector file)")
    p.add_argument("--data", type=Path, default=None,
                   help="labelled data set folder (MVTec layout or good/ + defect/); required unless only "
                        "--frame-check is given")
    p.add_argument("--strategy", choices=STRATEGIES, default=None,
                   help="how to choose the threshold (required unless --review-band is given)")
    p.add_argument("--target", type=float, default=None, help="the strategy's target (see above; default: the strategy's)")
    p.add_argument("--margin", type=float, default=0.0,
                   help="quantile only: add MARGIN x (quantile - median) of good scores")
    p.add_argument("--review-band", nargs=2, type=float, metavar=("LOW", "HIGH"), default=None,
                   help="two-threshold mode: PASS at or below LOW, FAIL above HIGH, REVIEW between (score values; "
                        "default: one threshold)")
    p.add_argument("--note", default="", help="note stored in the calibration history (default: none)")
    p.add_argument("--batch-size", type=int, default=32, help="images scored together")
    p.add_argument("--device", default="auto", help="auto (a GPU if there is one, else the CPU), cpu, cuda, cuda:N or mps")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the FPR/FNR intervals")
    p.add_argument("--split", choices=CALIBRATION_SPLITS, default="auto",
                   help="which images calibrate (default: see the command's description)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the operating point but do not write the bundle (default: write it)")
    p.add_argument("--frame-check", choices=("on", "off"), default=None,
                   help="turn the bundle's frame check (INVALID for a frame with no part: black, white, "
                        "uniform, saturated) on or off; alone, without --data, it changes only that "
                        "(default: as the bundle has it)")
    p.set_defaults(func=run)
    return p


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2%}"


def _ci(ci: tuple[float, float] | None) -> str:
    return "" if ci is None else f" [95% CI {ci[0]:.2%}, {ci[1]:.2%}]"


def format_result(result: CalibrationResult) -> str:
    """Human-readable operating point, as printed by the command."""
    op, th = result.point, result.threshold
    lines = [f"Strategy: {STRATEGY_NAMES.get(result.strategy, result.strategy)}"
             + ("" if result.target is None else f", target {result.target:.5g}")
             + (f", margin {result.margin:.5g}" if result.margin else "")]
    if th.low is None:
        lines.append(f"Threshold: {th.high:.5g}  (FAIL when score > threshold)")
    else:
        lines.append(f"Thresholds: low {th.low:.5g}, high {th.high:.5g}  "
                     "(PASS <= low < REVIEW <= high < FAIL)")
    auroc = "n/a" if result.roc.auroc is None else f"{result.roc.auroc:.4f}"
    ap = "n/a" if result.pr.ap is None else f"{result.pr.ap:.4f}"
    lines.append(f"AUROC {auroc}   AP {ap}" + (f"   ({result.roc.reason})" if result.roc.reason else ""))
    lines.append(f"False-reject rate (FPR): {_pct(op.fpr)}{_ci(op.fpr_ci)}  ({op.fp} of {op.n_good} good)")
    lines.append(f"Escape rate (FNR):       {_pct(op.fnr)}{_ci(op.fnr_ci)}  ({op.fn} of {op.n_defect} defective)")
    for count, n, what in ((op.fp, op.n_good, "false rejects"), (op.fn, op.n_defect, "escapes")):
        if n and count == 0:
            lines.append(f"  note: no {what} seen on {n} images; up to ~{min(1.0, 3 / n):.1%} is still plausible")
    f1 = "n/a" if op.f1 is None else f"{op.f1:.4f}"
    lines.append(f"Precision {_pct(op.precision)}   Recall {_pct(op.recall)}   F1 {f1}   "
                 f"Balanced accuracy {_pct(op.balanced_accuracy)}")
    lines.append("Confusion (rows: actual, columns: verdict):")
    lines.append(f"  {'':<10}{'PASS':>7}{'REVIEW':>8}{'FAIL':>7}")
    lines.append(f"  {'good':<10}{op.tn:>7}{op.review_good:>8}{op.fp:>7}")
    lines.append(f"  {'defective':<10}{op.fn:>7}{op.review_defect:>8}{op.tp:>7}")
    lines.append(f"  {'all':<10}{op.n_pass:>7}{op.n_review:>8}{op.n_fail:>7}")
    note = plateau_note(result.scores, result.labels, result.strategy) if result.scores.size else ""
    if note:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run the command; 0 on success, 2 with a one-line message on error."""
    # each number in range, named, before the bundle is opened ('--target 1e400' said "strategy 'manual' needs
    # the threshold value as target", '--bootstrap 1e20' "Maximum allowed dimension exceeded")
    check_float(args.target, "--target")
    check_float(args.margin, "--margin")
    for value, flag in zip(args.review_band or (), ("--review-band LOW", "--review-band HIGH")):
        check_float(value, flag)
    check_int(args.bootstrap, "--bootstrap", 0, 1_000_000)
    frame_check_only = args.data is None and args.frame_check is not None
    if args.data is None and not frame_check_only:
        raise CliError("give --data FOLDER (or only --frame-check on|off)")
    if args.strategy is None and args.review_band is None and not frame_check_only:
        raise CliError("give --strategy (or --review-band LOW HIGH)")
    if args.review_band is not None and args.strategy not in (None, "manual"):
        raise CliError(f"--review-band sets both thresholds itself; leave out --strategy {args.strategy} "
                       "(or use --strategy manual)")
    if args.strategy == "manual" and args.target is None and args.review_band is None:
        raise CliError("--strategy manual needs --target VALUE (the threshold)")
    check_batch_size(args.batch_size)
    from ..usecases.calibration_session import CalibrationSession

    if frame_check_only:
        session = CalibrationSession.open(args.bundle, device=args.device, bootstrap=args.bootstrap)
        return _frame_check_only(session, args)
    # before torch: a wrong bundle or path (a strategy that needs defective images and gets none is the
    # core's error, with what to do instead)
    _manifest, index = open_labelled_data(args.bundle, args.data, "calibrate")
    session = CalibrationSession.open(args.bundle, device=args.device, bootstrap=args.bootstrap)
    old = session.saved_threshold
    bar = ProgressBar("calibrate")
    try:
        session.score(index, split=args.split, strategy=None if args.review_band else args.strategy,
                      batch_size=args.batch_size, progress=bar)
    finally:
        bar.close()
    if args.review_band:
        session.set_threshold(args.review_band[1], args.review_band[0])
    else:
        session.set_strategy(args.strategy, args.target, args.margin)
    if args.frame_check is not None:
        session.set_frame_check(args.frame_check == "on")
    plan = session.save_plan(args.note)
    cset, result = plan.cset, plan.result
    for path, reason in session.skipped:
        print(f"skipped {printable(path)}: {reason}", file=sys.stderr)
    n, n_good = len(cset.paths), int((cset.labels == 0).sum())
    print(f"Bundle: {printable(args.bundle)}\nCalibration set: {n} images ({n_good} good, {n - n_good} defective) "
          f"from {printable(args.data)}, {cset.description}")
    print(format_result(result))
    if plan.fidelity is not None:
        print(plan.fidelity.summary())
        print(f"The threshold belongs to the {cset.inspector.precision} scoring path ({cset.inspector.engine}).")
    if args.dry_run:
        print("Dry run: bundle not changed.")
        return 0
    manifest = session.save(args.note)
    print(f"Written to {printable(args.bundle)}: threshold {threshold_text(old.get('high'), old.get('low'))} -> "
          f"{threshold_text(result.threshold.high, result.threshold.low)}; "
          f"{_entries(len(manifest.get('calibration_history', [])))} in the calibration history.")
    if args.frame_check is not None:
        _print_frame_check(manifest)
    return 0


def threshold_text(high: float | None, low: float | None = None) -> str:
    """A threshold as a user reads it: "3.2483", "3.2483 (REVIEW above 2.9)", "none"."""
    if high is None:
        return "none"
    return f"{high:.5g}" + ("" if low is None else f" (REVIEW above {low:.5g})")


def _print_frame_check(manifest: dict[str, Any]) -> None:
    from ..frame_check import limits_of

    limits = limits_of(manifest)
    text = limits.describe()
    print(f"Frame check on: {text}" if limits.enabled else text[:1].upper() + text[1:])


def _frame_check_only(session: Any, args: argparse.Namespace) -> int:
    """``--frame-check on|off`` without data: only that is written."""
    on = args.frame_check == "on"
    if args.dry_run:
        print(f"Dry run: the frame check would be turned {'on' if on else 'off'}; bundle not changed.")
        return 0
    manifest = session.save_frame_check(on)
    print(f"Written to {printable(args.bundle)}: frame check {'on' if on else 'off'}.")
    _print_frame_check(manifest)
    return 0


__all__ = ["add_parser", "format_result", "run"]


def _entries(n: int) -> str:
    return f"{n} entry" if n == 1 else f"{n} entries"
