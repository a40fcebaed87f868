"""Export parity on real bundles: each bundle exported in each format as a user
exports it (``inspector export``, run as a subprocess), and the check's
figures printed in one table.

    python benchmarks/export_parity.py B1.inspector B2.inspector ... [--formats onnx openvino] [--images DIR]
    python benchmarks/export_parity.py --torch-home-from-shared /tmp/q/*.inspector

The check images are the export's own choice (the bundle's calibration
images, else its training folder's held-out images) unless ``--images`` is
given. Exports are written to ``--work`` (default: a temporary folder).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _perf_report import inspector_command  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundles", type=Path, nargs="+")
    ap.add_argument("--formats", nargs="+", default=["onnx", "openvino"], choices=["onnx", "openvino"])
    ap.add_argument("--images", type=Path, help="check images for every bundle (default: each export's own choice)")
    ap.add_argument("--work", type=Path, help="folder for the exports (default: temporary)")
    ap.add_argument("--torch-home-from-shared", action="store_true",
                    help="take pretrained weights from ../shared/weights (machines without internet)")
    args = ap.parse_args(argv)
    from _torch_home import work_folder

    work, tmp = work_folder(args.work, "inspector-export-", args.torch_home_from_shared)
    from _perf_report import machine_line

    print(machine_line(), flush=True)
    print(f"{'bundle':<36} {'family':<14} {'format':<9} {'images':>6} {'AUROC torch':>11} {'AUROC export':>12} "
          f"{'differ':>7} {'worst rel':>9} {'s':>5}  result")
    failed = 0
    for bundle in args.bundles:
        for fmt in args.formats:
            out = work / f"{bundle.stem}-{fmt}"
            cmd = [*inspector_command(), "export", "--bundle", str(bundle), "--format", fmt, "--out", str(out)]
            if args.images:
                cmd += ["--images", str(args.images)]
            t = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True)
            secs = time.perf_counter() - t
            if done.returncode != 0 or not (out / "manifest.json").is_file():
                failed += 1
                why = (done.stderr.strip().splitlines() or ["no message"])[-1]
                print(f"{bundle.stem:<36} {'':<14} {fmt:<9} {'':>6} {'':>11} {'':>12} {'':>7} {'':>9} {secs:5.0f}  "
                      f"NOT WRITTEN: {why[:300]}", flush=True)
                continue
            m = json.loads((out / "manifest.json").read_text())
            p, family = m["export"]["parity"], m["bundle"]["model"]["model"]

            def auroc(v: object) -> str:
                return "-" if v is None else f"{float(v):.4f}"  # type: ignore[arg-type]

            images = p.get("images") or {}
            print(f"{bundle.stem:<36} {family:<14} {fmt:<9} {p.get('n', '?'):>6} {auroc(p.get('auroc_fp32')):>11} "
                  f"{auroc(p.get('auroc')):>12} {p.get('changed', '?'):>7} {float(p.get('max_rel', 'nan')):9.1e} "
                  f"{secs:5.0f}  {'holds' if p.get('ok') else 'FAILS'}; {images.get('good', '?')} good + "
                  f"{images.get('defective', '?')} defective, {images.get('source', '')}", flush=True)
    if tmp is not None:
        tmp.cleanup()
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
