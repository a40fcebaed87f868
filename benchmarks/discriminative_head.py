"""A discriminative head on a trained GAN bundle (DRAEM's second half): a
measurement for the GAN issue, not a product option.

The GAN families' standard preset already trains the generator to repair
synthetic defects (DRAEM's reconstructive part, ``inspection_core.models.synthetic``)
and scores a fixed residual (the perceptual distance of x and x̂). DRAEM
(Zavrtanik, Kristan and Skočaj, ICCV 2021) adds a *learned* comparison: a
small segmentation network sees the input and its reconstruction side by side
and is trained to output the synthetic defect's mask, so that it can learn to
ignore the differences a good part's reconstruction always has (a blurred
thread) and to mark the ones a defect leaves. This script measures that on a
bundle from ``benchmarks/quality.py --out DIR``:

    python benchmarks/discriminative_head.py --torch-home-from-shared \\
        /tmp/qg/screw_ganomaly.inspector --data ../shared/data/screw --updates 600 --width 8

The bundle's generator is frozen. The head (a three-level U-Net of base
``--width`` channels on [x, x̂]) trains for ``--updates`` updates of
``--batch`` training images (the bundle's own training split, 10 % held out as
in training; horizontal flips), 70 % of them with a synthetic blob or scratch
pasted in, against that defect's mask (focal loss x 5 + soft Dice, Adam,
cosine schedule). The map is the head's defect probability, smoothed
(sigma 2 px); the image score its maximum, and its top-1 % mean beside it.
Prints image AUROC, pixel AUROC where the data set has masks, and the
brightness correlations (``benchmarks/_brightness.py``) for the bundle's own
score and the head's, on the test split (never used for training).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _brightness import brightness_correlations, mean_brightness  # noqa: E402

from inspection_core.data.dataset import load_images, load_masks, scan_dataset  # noqa: E402
from inspection_core.data.preprocess import to_tensor  # noqa: E402
from inspection_core.inference import Inspector  # noqa: E402
from inspection_core.models.base import smooth_map  # noqa: E402
from inspection_core.models.synthetic import _blob_masks, _scratch_masks  # noqa: E402
from inspection_core.pixel_metrics import pixel_auroc  # noqa: E402
from inspection_core.training.trainer import _split_good  # noqa: E402


def synthetic(x: torch.Tensor, prob: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` with a blob or scratch in about ``prob`` of the images, and the masks (B, 1, H, W)."""
    b, _, h, w = x.shape
    scratch = (torch.rand(b) < 0.4).view(b, 1, 1, 1).float()
    mask = scratch * _scratch_masks(b, h, w, x.device) + (1 - scratch) * _blob_masks(b, h, w, x.device)
    use = (torch.rand(b) < prob).view(b, 1, 1, 1).float()
    kind = torch.randint(0, 3, (b,)).view(b, 1, 1, 1)
    sign = torch.where(torch.rand(b, 1, 1, 1) < 0.5, -1.0, 1.0)
    shifted = x + sign * (0.2 + 0.6 * torch.rand(b, 1, 1, 1))
    other = x.roll(1, dims=0).flip(-1).roll(h // 3, dims=-2)
    noisy = x + 0.5 * torch.randn_like(x)
    fill = torch.where(kind == 0, shifted, torch.where(kind == 1, other, noisy)).clamp(-1, 1)
    alpha = (0.5 + 0.5 * torch.rand(b, 1, 1, 1)) * mask * use
    return x * (1 - alpha) + fill * alpha, (alpha > 0.1).float()


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Head(nn.Module):
    """Three-level U-Net: [x, x̂] -> defect logits at the input's size."""

    def __init__(self, cin: int, width: int) -> None:
        super().__init__()
        self.e1, self.e2, self.e3 = _block(cin, width), _block(width, 2 * width), _block(2 * width, 4 * width)
        self.d2, self.d1 = _block(6 * width, 2 * width), _block(3 * width, width)
        self.out = nn.Conv2d(width, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.e1(x)
        e2 = self.e2(F.max_pool2d(e1, 2))
        e3 = self.e3(F.max_pool2d(e2, 2))
        d2 = self.d2(torch.cat([F.interpolate(e3, scale_factor=2), e2], 1))
        return self.out(self.d1(torch.cat([F.interpolate(d2, scale_factor=2), e1], 1)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", type=Path, help="a GAN-family bundle (benchmarks/quality.py --out DIR)")
    ap.add_argument("--data", type=Path, required=True, help="the data set it was trained on")
    ap.add_argument("--updates", type=int, default=600)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--defect-prob", type=float, default=0.7)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--torch-home-from-shared", action="store_true",
                    help="load MobileNetV2 (the perceptual map) from ../shared/weights")
    args = ap.parse_args()
    if args.torch_home_from_shared:
        from _torch_home import torch_home_from_shared

        torch_home_from_shared(Path(tempfile.mkdtemp(prefix="inspector-dhead-")))
    torch.manual_seed(args.seed)
    insp = Inspector(args.bundle, device="cpu", precision="eager")
    gan = insp.model.eval()
    for p in gan.parameters():
        p.requires_grad_(False)
    pp = insp.preprocessing
    index = scan_dataset(args.data)
    train, _ = _split_good([s for s in index.train if s.label == 0], 0.1, 0)
    x_train = to_tensor(load_images(train, pp).images).float()
    head = Head(2 * x_train.shape[1], args.width)
    opt = torch.optim.Adam(head.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.updates)
    print(f"# discriminative head  {args.bundle.name}  {len(train)} training images at {pp.image_size} px  "
          f"width {args.width}  {args.updates} updates of {args.batch}")
    t0 = time.perf_counter()
    for it in range(args.updates):
        x = x_train[torch.randint(0, len(x_train), (args.batch,))]
        if torch.rand(1).item() < 0.5:
            x = x.flip(-1)
        xs, mask = synthetic(x, args.defect_prob)
        with torch.no_grad():
            x_hat = gan(xs).reconstruction.float()
        logit = head(torch.cat([xs, x_hat], 1))
        p = torch.sigmoid(logit)
        pt = torch.where(mask > 0.5, p, 1 - p)
        focal = (-(1 - pt) ** 2 * torch.log(pt.clamp_min(1e-6))).mean()
        dice = 1 - (2 * (p * mask).sum() + 1) / (p.sum() + mask.sum() + 1)
        loss = 5 * focal + dice
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if it % 200 == 0 or it == args.updates - 1:
            print(f"update {it + 1}: loss {loss.item():.4f}  {time.perf_counter() - t0:.0f} s", flush=True)
    train_s = time.perf_counter() - t0
    head.eval()
    test = list(index.test)
    labels = np.array([s.label for s in test])
    own, top_max, top_1, maps, own_maps = [], [], [], [], []
    with torch.no_grad():
        for i in range(0, len(test), 16):
            x = to_tensor(load_images(test[i : i + 16], pp).images).float()
            out = gan(x)
            pm = smooth_map(torch.sigmoid(head(torch.cat([x, out.reconstruction.float()], 1)))[:, 0], 2.0)
            flat = pm.flatten(1)
            own += out.scores.float().tolist()
            top_max += flat.max(1).values.tolist()
            top_1 += flat.topk(max(1, flat.shape[1] // 100), dim=1).values.mean(1).tolist()
            maps.append(pm.numpy())
            own_maps.append(out.anomaly_map.float().numpy())
    bright = mean_brightness(test, pp.image_size, pp.channels)
    masks = load_masks(test, pp.image_size) if any(s.mask_path is not None for s in test) else None
    print(f"head trained in {train_s:.0f} s")
    print(f"{'score':<28}{'img AUROC':>10}{'pix AUROC':>10}{'r':>7}{'r_in':>7}")
    for name, s, m in (("bundle's own", own, own_maps), ("head, map maximum", top_max, maps),
                       ("head, map top-1 % mean", top_1, maps)):
        s = np.asarray(s, float)
        r, r_in = brightness_correlations(s, bright, labels)
        pix = pixel_auroc(np.concatenate(m), masks) if masks is not None else None
        print(f"{name:<28}{roc_auc_score(labels, s):>10.3f}{'n/a' if pix is None else f'{pix:.3f}':>10}"
              f"{r:>+7.2f}{r_in:>+7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
