"""The transfer classifier as a user trains it: ``inspector train --model vgg16`` with the CLI defaults.

For each data set, runs the command a user runs (a subprocess, the installed
``inspector`` of this checkout), times it, and prints what the bundle's
evaluation on its held-out split found: image AUROC, balanced accuracy and the
confusion counts at the bundle's threshold, the held-out counts, how many
epochs ran and why it stopped. ``--extra`` passes more options to every
training (``--extra "--param pooling=avg"``).

``--set KEY=VALUE ...`` runs an ablation in this process instead, through the
same settings path as the CLI (``TrainSettings``), so that training settings
the CLI has no option for can be changed: ``size=128``, ``t.<TrainConfig
field>=<json>`` (``t.epochs=15``, ``t.balanced_batches=false``) and family
parameters (``pooling=avg``, ``head_lr=1e-4``).

    python benchmarks/classifier.py --torch-home-from-shared
    python benchmarks/classifier.py --torch-home-from-shared --datasets pill --set pooling=avg
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def manifest_of(bundle: Path) -> dict:
    with zipfile.ZipFile(bundle) as z:
        return json.loads(z.read("manifest.json"))


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text  # a plain word: pooling=avg


def train_in_process(data: Path, backbone: str, pairs: list[str], bundle: Path) -> None:
    """``inspector train`` with the same settings path, and any setting changed (``--set``)."""
    from inspection_core.bundle import save_bundle
    from inspection_core.data.dataset import scan_dataset
    from inspection_core.evaluation import evaluate
    from inspection_core.inference import Inspector
    from inspection_core.training.trainer import train
    from inspection_core.usecases.train_settings import TrainSettings

    kv = dict(p.split("=", 1) for p in pairs)
    size = int(kv.pop("size")) if "size" in kv else None
    train_over = {k[2:]: _value(v) for k, v in kv.items() if k.startswith("t.")}
    params = {"backbone": backbone, **{k: _value(v) for k, v in kv.items() if not k.startswith("t.")}}
    index = scan_dataset(data, seed=0)
    mcfg, tcfg = TrainSettings(model="vgg16", image_size=size, params=params, train=train_over).configs(index.channels)
    res = train(index, mcfg, tcfg)
    save_bundle(bundle, res.model, res.manifest)
    metrics, _ = evaluate(Inspector(bundle, device="cpu"), index)
    res.manifest["metrics"] = metrics
    save_bundle(bundle, res.model, res.manifest)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--datasets", nargs="+", default=["pill", "magnetic_tile", "screw"])
    ap.add_argument("--backbone", default="mobilenet_v2", help="what the issue's user has (vgg16's weights cannot be had here)")
    ap.add_argument("--extra", default="", help="more options for every `inspector train`")
    ap.add_argument("--set", nargs="*", default=None, metavar="KEY=VALUE",
                    help="an ablation in this process: size=N, t.<TrainConfig field>=JSON, or a family parameter")
    ap.add_argument("--torch-home-from-shared", action="store_true",
                    help="load the pretrained backbone from ../shared/weights through torchvision's weights API")
    ap.add_argument("--out", type=Path, default=None, help="folder to keep the bundles (default: a temp folder)")
    args = ap.parse_args()

    from _torch_home import torch_home_from_shared

    env = dict(os.environ)
    out = args.out or Path(tempfile.mkdtemp(prefix="classifier-"))
    if args.torch_home_from_shared:
        env["TORCH_HOME"] = str(torch_home_from_shared(out))
    out.mkdir(parents=True, exist_ok=True)
    exe = Path(sys.executable).with_name("inspector")
    print(f"# classifier benchmark  {time.strftime('%Y-%m-%d %H:%M')}  {platform.machine()}  {os.cpu_count()} cores  "
          f"load {os.getloadavg()[0]:.1f}", flush=True)
    print(f"{'dataset':<14}{'AUROC':>7}{'bal.acc':>8}{'TP':>5}{'FN':>5}{'TN':>5}{'FP':>5}{'held-out':>12}"
          f"{'train':>12}{'epochs':>8}{'best':>6}{'train s':>9}  stopped", flush=True)
    for ds in args.datasets:
        data = args.data_root / ds
        if not (data / "train").is_dir():
            print(f"{ds:<14}skipped: {data} not found", flush=True)
            continue
        bundle = out / f"{ds}_vgg16.inspector"
        cmd = [str(exe), "train", "--data", str(data), "--model", "vgg16", "--backbone", args.backbone,
               "--out", str(bundle), "--overwrite", *shlex.split(args.extra)]
        t0 = time.perf_counter()
        if args.set is not None:
            sys.path.insert(0, str(ROOT))
            os.environ.update(env)
            train_in_process(data, args.backbone, args.set, bundle)
        else:
            run = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if run.returncode != 0:
                print(f"{ds:<14}failed ({run.returncode}): {run.stderr.strip().splitlines()[-1:]}", flush=True)
                continue
        wall = time.perf_counter() - t0
        m = manifest_of(bundle)
        met, tr = m["metrics"], m["training"]
        c = met["confusion"]
        sizes = tr["split"].get("sizes", {})
        train_n = f"{sizes.get('train', {}).get('n_good', '?')}+{sizes.get('train', {}).get('n_defect', '?')}"
        print(f"{ds:<14}{met['image_auroc']:>7.3f}{met['balanced_accuracy']:>8.3f}{c['tp']:>5}{c['fn']:>5}{c['tn']:>5}"
              f"{c['fp']:>5}{met['n_good']:>6}+{met['n_defect']:<5}{train_n:>12}{tr['epochs_run']:>8}{tr['best_epoch']:>6}"
              f"{wall:>9.0f}  {tr.get('stopped_reason') or 'all epochs'}", flush=True)
    how = (f"in process, set {' '.join(args.set)}" if args.set is not None else
           f"command: inspector train --data DATA --model vgg16 --backbone {args.backbone} --out B {args.extra}".rstrip())
    print(f"# load at the end {os.getloadavg()[0]:.1f}; {how}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
