"""Reconstruction in pretrained-feature space: a measurement for the GAN
issue, not a product family.

The GAN families reconstruct *pixels* and measure the residual in a better
space (perceptual, SSIM). On screw that stays near chance (image AUROC
0.44-0.52, docs/quality.md): a 128 px reconstruction of a thin screw in any
orientation blurs the thread of every screw. This script asks whether
reconstructing the *features* instead does better: each image becomes the
PatchCore descriptors of the product (MobileNetV2 layers 3, 6, 10 and 13,
3x3 neighbourhood average, one stride-8 grid), standardised per channel on
the training images, and a network learns to reproduce each patch's
descriptor through a bottleneck of ``Z`` numbers. The anomaly map is the
per-patch squared error, upsampled and smoothed like PatchCore's (sigma 4 px
at 224 px); the image score is the map's maximum (and, printed beside it,
its top-1 % mean, the GAN families' score).

    python benchmarks/feature_reconstruction.py --torch-home-from-shared --datasets screw magnetic_tile \\
        --variants ae:48 ae:16 ganomaly:48:1 ganomaly:48:0

Variants:

- ``ae:Z``: a per-patch autoencoder (1x1 convolutions D -> 128 -> Z -> 128 -> D,
  mean squared error; a channel bottleneck, no spatial one).
- ``ganomaly:Z:W``: GANomaly's encoder-decoder-encoder on the same patches
  (1x1 convolutions, latent Z per patch), its losses (feature-matching
  adversarial loss of weight W, L1 reconstruction x 50, latent L2 x 1) and a
  per-patch discriminator; ``W = 0`` leaves out the adversary.

Every variant: batch 16 of whole feature maps, Adam, cosine schedule,
``--updates`` updates, horizontal flips, the weights of the best of ten
validation rounds on 10 % of the training images held out. The test split is
used only for the figures. Features are extracted once per data set (fp32).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from sklearn.metrics import roc_auc_score as auroc
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inspection_core.config import ModelConfig  # noqa: E402
from inspection_core.data.dataset import load_images, load_masks, scan_dataset  # noqa: E402
from inspection_core.data.preprocess import Preprocessing, to_tensor  # noqa: E402
from inspection_core.models.base import smooth_map  # noqa: E402
from inspection_core.models.patchcore import PatchCore  # noqa: E402
from inspection_core.pixel_metrics import pixel_auroc  # noqa: E402

SIZE = 224
GRID = SIZE // 8


def descriptors(model: PatchCore, images: np.ndarray) -> torch.Tensor:
    """(N, D, GRID, GRID): the product's PatchCore descriptors of each image."""
    with torch.inference_mode():
        return torch.cat([model.embed(to_tensor(images[i : i + 16])) for i in range(0, len(images), 16)])


def per_patch(sizes: list[int], last_act: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Conv2d(a, b, 1))
        if i < len(sizes) - 2 or last_act:
            layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*layers)


class PatchGanomaly(nn.Module):
    def __init__(self, d: int, z: int) -> None:
        super().__init__()
        self.enc1 = per_patch([d, 128, z])
        self.dec = per_patch([z, 128, d])
        self.enc2 = per_patch([d, 128, z])
        self.disc_features = per_patch([d, 128, 64], last_act=True)
        self.disc_out = nn.Conv2d(64, 1, 1)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.dec(self.enc1(f))


def train(kind: str, f_train: torch.Tensor, f_val: torch.Tensor, updates: int) -> tuple[nn.Module, int, float]:
    parts = kind.split(":")
    d = f_train.shape[1]
    z = int(parts[1]) if len(parts) > 1 else 48
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    if parts[0] == "ae":
        model: nn.Module = per_patch([d, 128, z, 128, d])
        opt = torch.optim.Adam(model.parameters(), 2e-3)
        opt_d = None
        w_adv = 0.0
    elif parts[0] == "ganomaly":
        model = PatchGanomaly(d, z)
        w_adv = float(parts[2]) if len(parts) > 2 else 1.0
        g_params = [*model.enc1.parameters(), *model.dec.parameters(), *model.enc2.parameters()]
        opt = torch.optim.Adam(g_params, 2e-3, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam([*model.disc_features.parameters(), *model.disc_out.parameters()], 2e-3, betas=(0.5, 0.999))
    else:
        raise SystemExit(f"unknown variant {kind!r}: ae:Z or ganomaly:Z:W")
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, updates)
    best = (math.inf, None, 0)
    for u in range(updates):
        model.train()
        xb = f_train[torch.randint(0, len(f_train), (16,), generator=gen)]
        if torch.rand(1, generator=gen).item() < 0.5:
            xb = xb.flip(-1)
        if isinstance(model, PatchGanomaly):
            z1 = model.enc1(xb)
            rec = model.dec(z1)
            z2 = model.enc2(rec)
            loss = 50.0 * F.l1_loss(rec, xb) + F.mse_loss(z2, z1)
            if w_adv > 0:
                real, fake = model.disc_features(xb), model.disc_features(rec)
                loss = loss + w_adv * F.mse_loss(fake.mean((2, 3)), real.mean((2, 3)).detach())
            opt.zero_grad()
            loss.backward()
            opt.step()
            if w_adv > 0 and opt_d is not None:
                lr_ = model.disc_out(model.disc_features(xb))
                lf_ = model.disc_out(model.disc_features(rec.detach()))
                d_loss = (F.binary_cross_entropy_with_logits(lr_, torch.ones_like(lr_))
                          + F.binary_cross_entropy_with_logits(lf_, torch.zeros_like(lf_)))
                opt_d.zero_grad()
                d_loss.backward()
                opt_d.step()
        else:
            loss = F.mse_loss(model(xb), xb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        if (u + 1) % max(1, updates // 10) == 0:
            model.eval()
            with torch.inference_mode():
                v = F.mse_loss(model(f_val), f_val).item()
            if v < best[0]:
                best = (v, {k: t.clone() for k, t in model.state_dict().items()}, u + 1)
    model.load_state_dict(best[1])
    return model.eval(), best[2], best[0]


def maps_of(model: nn.Module, f: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        rec = torch.cat([model(f[i : i + 32]) for i in range(0, len(f), 32)])
    err = ((f - rec) ** 2).mean(1, keepdim=True)
    up = F.interpolate(err, size=(SIZE, SIZE), mode="bilinear", align_corners=False).squeeze(1)
    return smooth_map(up, 4.0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--datasets", nargs="+", default=["screw", "magnetic_tile"])
    ap.add_argument("--variants", nargs="+", default=["ae:48", "ae:16", "ganomaly:48:1", "ganomaly:48:0"])
    ap.add_argument("--updates", type=int, default=1000)
    ap.add_argument("--torch-home-from-shared", action="store_true",
                    help="put ../shared/weights into a temporary torch cache for this run")
    args = ap.parse_args()
    if args.torch_home_from_shared:
        from _torch_home import torch_home_from_shared

        torch_home_from_shared(Path(tempfile.mkdtemp(prefix="inspector-featrec-")))
    torch.set_num_threads(os.cpu_count() or 2)
    print(f"# feature reconstruction  torch {torch.__version__}  threads {torch.get_num_threads()}  "
          f"{SIZE} px, grid {GRID}, {args.updates} updates of batch 16, seed 0")
    print(f"{'dataset':<14}{'variant':<16}{'img max':>8}{'img top1%':>10}{'pixel':>7}{'best round':>11}{'train s':>8}")
    for ds in args.datasets:
        index = scan_dataset(args.data_root / ds)
        pp = Preprocessing(image_size=SIZE, channels=index.channels)
        train_s = [s for s in index.train if s.label == 0]
        test_s = list(index.test)
        labels = np.array([s.label for s in test_s])
        masks = load_masks(test_s, SIZE) if any(s.mask_path is not None for s in test_s) else None
        if masks is not None and not masks.any():
            masks = None
        t0 = time.perf_counter()
        pc = PatchCore(ModelConfig("patchcore", image_size=SIZE, channels=index.channels)).eval()
        pc.features.load_pretrained("imagenet")
        f_all = descriptors(pc, load_images(train_s, pp).images)
        f_test = descriptors(pc, load_images(test_s, pp).images)
        mu = f_all.mean((0, 2, 3), keepdim=True)
        sd = f_all.std((0, 2, 3), keepdim=True) + 1e-3
        f_all, f_test = (f_all - mu) / sd, (f_test - mu) / sd
        perm = torch.randperm(len(f_all), generator=torch.Generator().manual_seed(0))
        n_val = max(8, len(f_all) // 10)
        f_val, f_train = f_all[perm[:n_val]], f_all[perm[n_val:]]
        print(f"# {ds}: {len(f_train)} training / {n_val} validation / {len(test_s)} test images, "
              f"descriptors {tuple(f_all.shape[1:])}, extracted in {time.perf_counter() - t0:.0f} s", flush=True)
        for kind in args.variants:
            t0 = time.perf_counter()
            model, best_round, _ = train(kind, f_train, f_val, args.updates)
            secs = time.perf_counter() - t0
            amap = maps_of(model, f_test)
            flat = amap.flatten(1)
            s_max = flat.max(1).values.numpy()
            s_top = flat.topk(max(1, flat.shape[1] // 100), 1).values.mean(1).numpy()
            pix = pixel_auroc(amap.numpy(), masks) if masks is not None else None
            pix_s = f"{pix:.3f}" if pix is not None else "-"
            print(f"{ds:<14}{kind:<16}{auroc(labels, s_max):>8.3f}{auroc(labels, s_top):>10.3f}{pix_s:>7}"
                  f"{best_round:>11}{secs:>8.0f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
