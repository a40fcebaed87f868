"""anomalib's own torch models timed beside ours (benchmarks/perf.py), in a
child process so that anomalib and its dependencies (lightning, timm…) never
enter the project's environment: ``--anomalib-path DIR`` (a ``pip install
--target DIR anomalib`` folder) or an environment where anomalib is installed.

Speed only: anomalib's pretrained weights cannot be downloaded on every
machine, so its backbones run with random weights (the same arithmetic) and
PatchCore's memory bank is filled with random rows of the size ours has.

    python benchmarks/_anomalib_ref.py patchcore --size 224 --bank 5000 --n 20
    python benchmarks/_anomalib_ref.py ganomaly --size 128 --channels 3 --n 40

Prints one JSON line: {"model": ..., "ms_1": median ms for one image,
"img_s_32": images/s at batch 32, "threads": ...}.
"""

from __future__ import annotations

import argparse
import json
import warnings
from typing import Any

from _perf_report import median_ms  # this script's folder is on sys.path when it runs


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", choices=("patchcore", "ganomaly"))
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--bank", type=int, default=5000, help="PatchCore: memory bank rows (ours: its bundle's)")
    ap.add_argument("--n", type=int, default=20)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    import torch

    if args.model == "patchcore":
        from anomalib.models.image.patchcore.torch_model import PatchcoreModel

        # mobilenetv2_100 (timm) stride-8 and stride-16 stages, anomalib's layer2+layer3 recipe on this backbone
        m: Any = PatchcoreModel(layers=["blocks.2", "blocks.4"], backbone="mobilenetv2_100", pre_trained=False)
        feats = m.feature_extractor(torch.zeros(1, 3, args.size, args.size))
        dim = sum(int(f.shape[1]) for f in feats.values())
        m.memory_bank = torch.randn(args.bank, dim)
        label = f"anomalib PatchcoreModel mobilenetv2_100 blocks.2+4 (random weights), bank {args.bank} x {dim}"
    else:
        from anomalib.models.image.ganomaly.torch_model import GanomalyModel

        m = GanomalyModel(input_size=(args.size, args.size), num_input_channels=args.channels, n_features=64,
                          latent_vec_size=100, extra_layers=0, add_final_conv_layer=True)
        label = f"anomalib GanomalyModel {args.size} px, {args.channels} ch"
    m.eval()
    x1 = torch.rand(1, args.channels, args.size, args.size) * 2 - 1
    x32 = torch.rand(32, args.channels, args.size, args.size) * 2 - 1
    with torch.inference_mode():
        ms1 = median_ms(lambda: m(x1), args.n)[0]
        ms32 = median_ms(lambda: m(x32), max(3, args.n // 5), warmup=1)[0]
    print(json.dumps({"model": label, "ms_1": round(ms1, 2), "img_s_32": round(32000.0 / ms32, 1),
                      "threads": torch.get_num_threads()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
