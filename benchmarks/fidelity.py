"""The fast path's fidelity check on trained bundles (issue 15): does the
bf16 scoring path keep what an operator sees?

    python benchmarks/fidelity.py /tmp/qb/*.inspector            # bundles from quality.py --out /tmp/qb
    python benchmarks/fidelity.py B.inspector --strategies youden fpr quantile

For each bundle and calibration strategy, a copy of the bundle is calibrated
on its own data set's calibration images (``inspection_core.selection``: the
test split, never a training image) exactly as ``inspector calibrate`` does:
the images are scored on the fp32 path and on the fast path, each path gets
its own threshold by the strategy, and the rule decides (image AUROC within
0.005, at most 0.5 % of the verdicts different). Prints one line per bundle
and strategy: AUROC on both paths, verdicts that differ, both thresholds,
the worst and median per-image score difference (for information: the rule
does not use it), and which path the bundle then scores with by default.
The bundles themselves are not changed (``--keep DIR`` writes the
calibrated copies there).

Needs a CPU whose native bf16 is fast (AVX512-BF16 or AMX, its convolutions measured faster than fp32) or a CUDA GPU; elsewhere
there is no fast path and the script says so.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundles", nargs="+", type=Path)
    ap.add_argument("--strategies", nargs="+", default=["youden", "fpr"],
                    help="calibration strategies to check under (their default targets)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--keep", type=Path, help="write each bundle calibrated with the first strategy here "
                                              "(what benchmarks/perf.py --bundle then measures)")
    args = ap.parse_args(argv)

    import torch

    from inspection_core.acceleration import cpu_bf16_speedup, cpu_has_native_bf16, fast_precision
    from inspection_core.bundle import read_manifest
    from inspection_core.usecases.calibrate import calibrate_bundle

    fast = fast_precision(args.device)
    print(f"# fidelity  torch {torch.__version__}  device {args.device}  native bf16 "
          f"{'yes' if cpu_has_native_bf16() else 'no'}"
          + (f" (convolutions {cpu_bf16_speedup():.2f}x fp32)" if cpu_has_native_bf16() else "")
          + f"  fast path {fast or 'none'}")
    if fast is None:
        print("no fast scoring path on this machine: nothing to check")
        return 0
    print(f"{'bundle':<34} {'strategy':<9} {'n':>4} {'AUROC fp32':>10} {'fast':>7} {'changed':>9} "
          f"{'phi fp32':>10} {'phi fast':>10} {'worst':>7} {'median':>7}  default path")
    rows = []
    with tempfile.TemporaryDirectory(prefix="inspector-fidelity-") as tmp:
        for bundle in args.bundles:
            m = read_manifest(bundle)
            data = Path(m["training"]["data"]["root"])
            for strategy in args.strategies:
                copy = Path(tmp) / bundle.name
                shutil.copy(bundle, copy)
                out = calibrate_bundle(copy, data, strategy, bootstrap=0, device=args.device)
                fid = out.fidelity
                if fid is None:
                    print(f"{bundle.name:<34} {strategy:<9} the fast path could not be built: fp32")
                    continue
                used = out.calibration_set.inspector.engine
                auc0 = "n/a" if fid.auroc_fp32 is None else f"{fid.auroc_fp32:.4f}"
                auc1 = "n/a" if fid.auroc is None else f"{fid.auroc:.4f}"
                print(f"{bundle.name:<34} {strategy:<9} {fid.n:>4} {auc0:>10} {auc1:>7} "
                      f"{fid.changed:>4} {fid.changed_rate:>4.1%} {fid.threshold_fp32['high']:>10.5g} "
                      f"{fid.threshold['high']:>10.5g} {fid.max_rel:>7.2%} {fid.median_rel:>7.3%}  "
                      f"{'PASS' if fid.ok else 'FAIL'}: {used}", flush=True)
                rows.append({"bundle": bundle.name, "model": m["model"]["model"], "data": data.name,
                             "strategy": strategy, **fid.to_dict(), "default_engine": used})
                if args.keep is not None and strategy == args.strategies[0]:
                    args.keep.mkdir(parents=True, exist_ok=True)
                    shutil.copy(copy, args.keep / bundle.name)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
