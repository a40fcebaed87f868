"""Frame check on the real data sets: which real parts it would refuse, and
which frames that carry no part it catches.

    python benchmarks/frame_check.py                       # screw, magnetic_tile, pill at 128 and 224 px
    python benchmarks/frame_check.py --datasets pill --sizes 224

For each data set and input size, the limits are derived from the training
images (``train/good``), exactly as training does (the statistics of each
image in model geometry, before any normalisation; no model is needed: the
limits do not depend on the family). Then every test image, good and
defective, goes through the check (a real part refused is a false INVALID:
the figure must be 0), and so do frames that carry no part: black, white,
uniform grey, a good part overexposed (gain x4 and x2, clipped), a black frame with
sensor noise (sigma 2), a good part at a quarter of its brightness (lights
almost off), and a good part at 60 % of its brightness (a dimmer lamp: a part
that should still be judged).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--datasets", nargs="+", default=["screw", "magnetic_tile", "pill"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[128, 224])
    args = ap.parse_args()

    from inspection_core.data.dataset import load_images, scan_dataset
    from inspection_core.data.images import read_image
    from inspection_core.data.preprocess import Preprocessing, to_geometry
    from inspection_core.frame_check import frame_stats, limits_from

    print(f"{'data set':<14} {'px':>4} {'limits':<62} {'good refused':>13} {'defects refused':>16}  no-part frames")
    for name in args.datasets:
        root = args.data_root / name
        if not (root / "train" / "good").is_dir():
            print(f"{name}: not found under {args.data_root}")
            continue
        index = scan_dataset(root, seed=0)
        train = [s for s in index.train if s.label == 0]
        first_good = read_image(next(s.path for s in index.test if s.label == 0))
        rng = np.random.default_rng(0)
        shape = first_good.shape
        frames = {
            "black": np.zeros(shape, np.uint8),
            "white": np.full(shape, 255, np.uint8),
            "grey": np.full(shape, 128, np.uint8),
            "overexposed x4": np.clip(first_good.astype(np.int32) * 4, 0, 255).astype(np.uint8),
            "gain x2": np.clip(first_good.astype(np.int32) * 2, 0, 255).astype(np.uint8),
            "noisy black": np.clip(rng.normal(3, 2, shape), 0, 255).astype(np.uint8),
            "lights 25%": (first_good.astype(np.float32) * 0.25).astype(np.uint8),
            "lights 60%": (first_good.astype(np.float32) * 0.6).astype(np.uint8),
        }
        for size in args.sizes:
            pp = Preprocessing(size, index.channels)
            loaded = load_images(train, pp)
            limits = limits_from(loaded.frames)
            refused = {0: [0, 0], 1: [0, 0]}
            for s in index.test:
                reason = limits.reason(frame_stats(to_geometry(read_image(s.path), pp)))
                refused[s.label][0] += reason is not None
                refused[s.label][1] += 1
            caught = [f"{k}: {limits.reason(frame_stats(to_geometry(v, pp))) or 'judged'}" for k, v in frames.items()]
            desc = (f"contrast>={limits.min_contrast:.1f} clipped<={limits.max_clipped:.2f} level "
                    f"{'-' if limits.level_low is None else f'{limits.level_low:.0f}'}.."
                    f"{'-' if limits.level_high is None else f'{limits.level_high:.0f}'}")
            print(f"{name:<14} {size:>4} {desc:<62} {refused[0][0]:>5} of {refused[0][1]:<5} "
                  f"{refused[1][0]:>6} of {refused[1][1]:<6}  " + "; ".join(caught))
    return 0


if __name__ == "__main__":
    sys.exit(main())
