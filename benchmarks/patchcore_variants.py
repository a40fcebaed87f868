"""PatchCore variants through the product's own training and evaluation, one
change each, with the image AUROC per defect type (docs/quality.md, the
stop-19 and stop-20 tables).

    python benchmarks/patchcore_variants.py --datasets magnetic_tile --torch-home-from-shared \\
        base layer_rms knn3 norm maxpool gain:0.85 'param:bank_augment=["bright","dark","brighter","darker"]'

Each variant fits the ``standard`` preset of ``inspection_core.recipes`` with
one change patched into ``inspection_core.models.patchcore`` (or passed as a
parameter), then evaluates the bundle on the test split like
``benchmarks/quality.py`` (fp32 scoring). Variants:

- ``base``: the defaults.
- ``param:K=JSON;K=JSON``: family parameters (e.g. ``param:coreset_ratio=0.05``).
- ``norm`` / ``norm:K=JSON``: per-image illumination normalisation (``mean_std``), optionally with parameters.
- ``layer_rms``: each layer scaled to a unit mean patch norm (measured on the first batch) before concatenation.
- ``l2``: each layer's patch vector L2-normalised.
- ``knn3``: the map from the mean distance to the 3 nearest bank patches.
- ``maxpool``: finer layers brought to the patch grid by their maximum instead of their mean.
- ``gain:T``: each image's gain set so that its mean level (0..2) is T, inside the embedding;
  ``gainpre:T`` the same before the bank's exposure views are made.
- ``lowfreq:W``: two low-frequency brightness channels per patch (16 and 32 px), weight W.
- ``gamma:G``: a fixed gamma curve on every image before the backbone (G < 1 lifts dark parts).
- bank views for ``param:bank_augment=[...]`` beyond the product's: ``sx``, ``sy`` (central crop
  stretched ×1.25 in x / y), ``zoom`` (×1.2), ``cup``, ``cdown`` (contrast ×1.25 / ×0.8 about the mean).

Variants joined by ``+`` apply together (``gamma:0.7+param:position_weight=3``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inspection_core.models import patchcore as pcm  # noqa: E402

STATE: dict[str, Any] = {"transform": None, "knn": 1, "maxpool": False, "gain": None, "gain_pre": False,
                         "lowfreq": 0.0, "scales": {}, "gamma": None}
_orig_embed, _orig_nd, _orig_view = pcm.PatchCore.embed, pcm.nearest_distances, pcm._bank_view
_orig_init, _orig_fit_batch, _orig_score = pcm.PatchCore.__init__, pcm.PatchCore.fit_batch, pcm.PatchCore._score


def _gain(x: torch.Tensor) -> torch.Tensor:
    level = (x + 1.0).mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-3)
    return ((x + 1.0) * (STATE["gain"] / level) - 1.0).clamp(-1.0, 1.0)


def _lowfreq(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    g = x.float().mean(1, keepdim=True)
    m, sd = g.mean(dim=(2, 3), keepdim=True), g.std(dim=(2, 3), keepdim=True).clamp_min(1e-3)
    outs = []
    for sc in (16, 32):
        b = F.avg_pool2d(g, sc, stride=1, padding=sc // 2, count_include_pad=False)[..., : g.shape[-2], : g.shape[-1]]
        outs.append(F.adaptive_avg_pool2d((b - m) / sd, size))
    return torch.cat(outs, 1) * STATE["lowfreq"]


def _embed(self: pcm.PatchCore, x: torch.Tensor) -> torch.Tensor:
    """The product's embed with the variant's change."""
    if STATE["gain"] is not None and not STATE["gain_pre"]:
        x = _gain(x)
    if STATE["gamma"] is not None:
        x = (((x + 1.0) / 2.0).clamp_min(0.0) ** STATE["gamma"]) * 2.0 - 1.0
    feats = self.features(x)
    size = self._grid(x.shape[-2], x.shape[-1])
    pool = F.adaptive_max_pool2d if STATE["maxpool"] else F.adaptive_avg_pool2d
    parts = []
    for name in self.features.layers:
        f = self.layer_on_grid(feats[name], size, pool)
        if STATE["transform"] is not None:
            f = STATE["transform"](name, f)
        parts.append(f)
    if STATE["lowfreq"] > 0:
        parts.append(_lowfreq(x, size))
    if float(self.params["position_weight"]) > 0:
        parts.append(pcm.position_channels(x.shape[0], size, float(self.params["position_weight"]), x.device))
    return torch.cat(parts, dim=1)


def _nearest(q: torch.Tensor, bank: torch.Tensor, bank_sq: torch.Tensor | None = None, k: int = 1,
             coarse: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
    knn = STATE["knn"]
    if knn <= 1:
        return _orig_nd(q, bank, bank_sq, k=k, coarse=coarse)
    d, i = _orig_nd(q, bank, bank_sq, k=max(k, knn))
    return (d.mean(1, keepdim=True), i[:, :1]) if k == 1 else (d[:, :k], i[:, :k])


def _view(x: torch.Tensor, kind: str) -> torch.Tensor:
    if kind in ("cup", "cdown"):
        c = 1.25 if kind == "cup" else 0.8
        m = x.mean(dim=(1, 2, 3), keepdim=True)
        return ((x - m) * c + m).clamp(-1.0, 1.0)
    if kind in ("sx", "sy", "zoom"):
        fx, fy = {"sx": (1.25, 1.0), "sy": (1.0, 1.25), "zoom": (1.2, 1.2)}[kind]
        h0, w0 = x.shape[-2:]
        h, w = int(round(h0 / fy)), int(round(w0 / fx))
        t, left = (h0 - h) // 2, (w0 - w) // 2
        return F.interpolate(x[..., t : t + h, left : left + w], size=(h0, w0), mode="bilinear", align_corners=False)
    return _orig_view(x, kind)


def _init(self: pcm.PatchCore, cfg: Any) -> None:
    _orig_init(self, cfg)
    if STATE["lowfreq"] > 0:
        self.appearance_dim += 2
        self.feature_dim += 2
        self.memory_bank = torch.zeros(0, self.feature_dim)
        self.size_texture_stats(int(self.params["global_grid"]))


def _fit_batch(self: pcm.PatchCore, x: torch.Tensor) -> None:
    _orig_fit_batch(self, _gain(x) if STATE["gain"] is not None and STATE["gain_pre"] else x)


def _score(self: pcm.PatchCore, x: torch.Tensor, coarse: Any) -> Any:
    return _orig_score(self, _gain(x) if STATE["gain"] is not None and STATE["gain_pre"] else x, coarse)


def _layer_rms(name: str, f: torch.Tensor) -> torch.Tensor:
    if name not in STATE["scales"]:
        STATE["scales"][name] = float(f.pow(2).sum(1).sqrt().mean())
    return f / STATE["scales"][name]


def _l2(name: str, f: torch.Tensor) -> torch.Tensor:
    return f / f.pow(2).sum(1, keepdim=True).sqrt().clamp_min(1e-6)


def _pairs(text: str) -> dict[str, Any]:
    out = {}
    for kv in filter(None, text.split(";")):
        k, v = kv.split("=", 1)
        out[k] = json.loads(v)
    return out


def run(root: Path, name: str, params: dict[str, Any], normalize: str | None, train: dict[str, Any]) -> None:
    from sklearn.metrics import roc_auc_score

    from inspection_core.bundle import save_bundle
    from inspection_core.data.dataset import scan_dataset
    from inspection_core.evaluation import evaluate
    from inspection_core.inference import Inspector
    from inspection_core.recipes import resolve
    from inspection_core.training.trainer import train as fit

    index = scan_dataset(root, seed=0)
    mcfg, tcfg = resolve("patchcore", "standard", channels=index.channels, params=params, normalize=normalize,
                         train={"device": "cpu", "seed": 0, "samples_per_epoch": 0, **train})
    t0 = time.perf_counter()
    res = fit(index, mcfg, tcfg)
    fit_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as td:
        path = save_bundle(Path(td) / "b.inspector", res.model, res.manifest)
        metrics, scored = evaluate(Inspector(path, device="cpu", precision="fp32"), index)
    good = scored.labels == 0
    per_type = []
    for t in sorted({s.defect_type for s in scored.samples} - {"good"}):
        sel = np.array([s.defect_type == t for s in scored.samples])
        auc = roc_auc_score(np.r_[np.zeros(good.sum()), np.ones(sel.sum())], np.r_[scored.scores[good], scored.scores[sel]])
        per_type.append(f"{t} {auc:.3f}")
    pix = metrics.get("pixel_auroc")
    print(f"{root.name:<14}{name:<44} image {metrics['image_auroc']:.4f}  pixel {'  n/a ' if pix is None else f'{pix:.4f}'}"
          f"  fit {fit_s:4.0f} s | " + " ".join(per_type), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("variants", nargs="+")
    ap.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--datasets", nargs="+", default=["magnetic_tile"])
    ap.add_argument("--train", default="", help="TrainConfig fields K=JSON;K=JSON (e.g. val_fraction=0.0)")
    ap.add_argument("--torch-home-from-shared", action="store_true",
                    help="put ../shared/weights into a temporary torch cache for this run")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="inspector-pcvariants-"))
    if args.torch_home_from_shared:
        from _torch_home import torch_home_from_shared

        torch_home_from_shared(tmp)
    torch.set_num_threads(os.cpu_count() or 2)
    pcm.PatchCore.embed = _embed
    pcm.nearest_distances = _nearest
    pcm._bank_view = _view
    pcm.PatchCore.__init__ = _init
    pcm.PatchCore.fit_batch = _fit_batch
    pcm.PatchCore._score = _score
    pcm.BANK_AUGMENTS = pcm.BANK_AUGMENTS + ("cup", "cdown", "sx", "sy", "zoom")
    transforms: dict[str, Callable[[str, torch.Tensor], torch.Tensor]] = {"layer_rms": _layer_rms, "l2": _l2}
    train = _pairs(args.train)
    try:
        for ds in args.datasets:
            root = args.data_root / ds
            if not (root / "train").is_dir():
                print(f"{ds}: skipped, {root} not found")
                continue
            for v in args.variants:
                saved = dict(STATE)
                STATE["scales"] = {}
                params: dict[str, Any] = {}
                normalize = None
                for part in v.split("+"):
                    kind, _, arg = part.partition(":")
                    if kind in transforms:
                        STATE["transform"] = transforms[kind]
                    elif kind == "knn3":
                        STATE["knn"] = 3
                    elif kind == "maxpool":
                        STATE["maxpool"] = True
                    elif kind in ("gain", "gainpre"):
                        STATE["gain"], STATE["gain_pre"] = float(arg), kind == "gainpre"
                    elif kind == "lowfreq":
                        STATE["lowfreq"] = float(arg)
                    elif kind == "gamma":
                        STATE["gamma"] = float(arg)
                    elif kind == "norm":
                        normalize = "mean_std"
                        params.update(_pairs(arg))
                    elif kind == "param":
                        params.update(_pairs(arg))
                    elif kind != "base":
                        raise SystemExit(f"unknown variant {part!r} (see --help)")
                try:
                    run(root, v, params, normalize, train)
                finally:
                    STATE.clear()
                    STATE.update(saved)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
