"""PatchCore's memory-bank search on a 2-core CPU: where the time goes, and
what the faster searches would cost in verdicts (issue 31's PatchCore speed
targets; docs/performance.md).

For each data set: a PatchCore bundle with the command line's defaults
(``inspector train --data DIR --model patchcore``), exported to OpenVINO as a
user exports it. Printed:

- **time**: the exported graph in OpenVINO (fp32, as the station runs it, and
  bf16), one image and per image in batches of 16, beside the same graph
  without the bank search (the backbone and the patch descriptors only); the
  search's multiply-adds per image and what they take at the rate the graph
  reaches;
- **verdicts**: each faster search against the exact fp32 search on the set's
  test images, each at its own threshold (the 0.99 quantile of its good test
  scores, the provisional rule): image AUROC and the share of verdicts that
  differ (the export parity rule allows 0.5 %). The searches are OpenVINO's
  bf16 (the whole graph), a lower-bound metric (the descriptors on the bank's
  first k principal axes plus the length of the rest: one product of k + 1
  columns per bank row), and candidates on the principal axes (95 % of the
  variance) re-measured exactly (the PyTorch bf16 path's search, here in fp32);
- **top-k**: the cheaper searches' cost inside a graph: the k + 1 column
  product and its minimum (the lower-bound metric) or a top-k over the bank
  (the candidates), against the exact product and its minimum (random data
  of the same sizes).

A smaller bank is the other way to a faster search; its quality is
``benchmarks/quality.py --models patchcore --param coreset_ratio=R``.

    python benchmarks/patchcore_search.py --torch-home-from-shared [--datasets screw pill magnetic_tile] [--work DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _best_ms(fn, n: int) -> float:
    """The best of 5 calls (after one), per image of the ``n`` a call scores."""
    from _perf_report import median_ms

    return median_ms(fn, 5, warmup=1)[2] / n


def _ov_compile(path: Path, precision: str):
    import openvino as ov

    return ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": precision,
                                                      "INFERENCE_NUM_THREADS": 2, "PERFORMANCE_HINT": "LATENCY"})


def _embed_graph(model, path: Path, channels: int, size: int) -> None:
    """The export's graph up to the patch descriptors (no bank search), as ONNX."""
    import torch

    from inspection_core.export.graphs import PatchCoreGraph

    class Embed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return PatchCoreGraph._embed(self, x)  # type: ignore[arg-type]

    x = torch.zeros(1, channels, size, size)
    torch.onnx.export(Embed().eval(), (x,), str(path), input_names=["image"], dynamic_axes={"image": {0: "n"}},
                      dynamo=False)


def timing(bundle, export_dir: Path, work: Path) -> None:
    from inspection_core.station.model import to_input

    model = bundle.build_model()
    pp = bundle.preprocessing
    emb_path = work / f"{export_dir.name}-embed.onnx"
    _embed_graph(model, emb_path, pp.channels, pp.image_size)
    g = np.random.default_rng(0)
    x16 = to_input(g.integers(0, 256, size=(16, pp.image_size, pp.image_size, pp.channels), dtype=np.uint8))
    bank = tuple(model.memory_bank.shape)
    with_search = {}
    for graph, label in ((export_dir / "model.xml", "whole graph"), (emb_path, "without the search")):
        for prec in ("f32", "bf16"):
            c = _ov_compile(graph, prec)
            r = c.create_infer_request()
            one = _best_ms(lambda: r.infer({0: x16[:1]}), 1)
            many = _best_ms(lambda: r.infer({0: x16}), 16)
            with_search.setdefault(prec, []).append((one, many))
            print(f"  OpenVINO {prec:<4} {label:<19} one image {one:6.2f} ms   batch of 16 {many:6.2f} ms/image", flush=True)
    patches = (pp.image_size // int(model.params["grid_stride"])) ** 2
    macs = patches * bank[0] * bank[1]
    (w1, w16), (e1, e16) = with_search["f32"]
    print(f"  bank {bank[0]} x {bank[1]}, {patches} patches: {macs / 1e9:.2f} G multiply-adds per image; "
          f"fp32 search {w1 - e1:.2f} ms alone (one image), {w16 - e16:.2f} ms/image (batches): "
          f"{macs / ((w16 - e16) / 1000) / 1e9:.0f} G multiply-adds/s", flush=True)


class _LowerBound:
    """Nearest distances in the lower-bound metric: the first ``k`` principal
    axes of the bank plus the length of the rest (never above the exact distance)."""

    def __init__(self, bank, k: int) -> None:
        import torch

        bank = bank.float()
        self.mean = bank.mean(0)
        _, _, vh = torch.linalg.svd(bank - self.mean, full_matrices=False)
        self.rot = vh[:k].t().contiguous()
        self.rows = self.lift(bank)

    def lift(self, v):
        import torch

        v = v - self.mean
        p = v @ self.rot
        rest = ((v * v).sum(1) - (p * p).sum(1)).clamp_min(0.0).sqrt()
        return torch.cat([p, rest[:, None]], 1)

    def search(self, q, k: int = 1):
        from inspection_core.models.components.nearest import nearest_distances

        return nearest_distances(self.lift(q.float()), self.rows, k=k)


def verdicts(bundle, export_dir: Path, data: Path) -> None:
    import torch
    from sklearn.metrics import roc_auc_score

    from inspection_core.data.dataset import load_images
    from inspection_core.models.components.nearest import CandidateSearch, ExactSearch
    from inspection_core.selection import evaluation_samples, open_data
    from inspection_core.station.model import to_input

    samples = evaluation_samples(bundle.meta, open_data(data, bundle.meta)).samples
    loaded = load_images(samples, bundle.preprocessing)
    images = np.asarray(loaded.images)
    y = np.array([s.label for s in loaded.samples])
    model = bundle.build_model()
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0

    def torch_scores(search) -> np.ndarray:
        model._searcher = lambda _device: search
        with torch.inference_mode():
            return torch.cat([model(x[i : i + 16]).scores for i in range(0, len(x), 16)]).numpy()

    def ov_scores(prec: str) -> np.ndarray:
        c = _ov_compile(export_dir / "model.xml", prec)
        r = c.create_infer_request()
        port = next(p for p in c.outputs if "score" in p.get_names())
        return np.concatenate([np.array(r.infer({0: to_input(images[i : i + 16])})[port]).reshape(-1)
                               for i in range(0, len(images), 16)])

    exact = torch_scores(ExactSearch(model.memory_bank, model._bank_norms()))
    good = y == 0

    def row(label: str, s: np.ndarray) -> None:
        t_ref, t_s = np.quantile(exact[good], 0.99), np.quantile(s[good], 0.99)
        differ = int(((exact > t_ref) != (s > t_s)).sum())
        auroc = f"{roc_auc_score(y, s):.4f}" if 0 < y.sum() < len(y) else "n/a"
        print(f"  {label:<44} AUROC {auroc}   verdicts differing {differ:3d} of {len(y)} ({differ / len(y) * 100:.2f} %)",
              flush=True)

    row("exact fp32 (PyTorch, the reference)", exact)
    row("OpenVINO fp32 (the station's export)", ov_scores("f32"))
    row("OpenVINO bf16", ov_scores("bf16"))
    for k in (64, 96):
        row(f"lower-bound metric, k = {k}", torch_scores(_LowerBound(model.memory_bank, k)))
    cand = CandidateSearch(model.memory_bank, torch.float32)  # the PyTorch bf16 path's search, in fp32
    row(f"candidates on {cand.coarse.rotation.shape[1]} axes, exact re-measure", torch_scores(cand))


def topk_cost(work: Path, bank_rows: int, dims: int, patches: int) -> None:
    import torch

    class Exact(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.b = torch.nn.Parameter(torch.randn(dims, bank_rows), requires_grad=False)
            self.sq = torch.nn.Parameter(torch.randn(bank_rows), requires_grad=False)

        def forward(self, q: torch.Tensor) -> torch.Tensor:
            return torch.addmm(self.sq, q, self.b).amin(1)

    class TopK(torch.nn.Module):
        def __init__(self, k: int, r: int) -> None:
            super().__init__()
            self.k, self.r = k, r
            self.b = torch.nn.Parameter(torch.randn(k + 1, bank_rows), requires_grad=False)
            self.sq = torch.nn.Parameter(torch.randn(bank_rows), requires_grad=False)

        def forward(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            v, i = torch.addmm(self.sq, q[:, : self.k + 1], self.b).topk(self.r, dim=1, largest=False)
            return v, i

    q = torch.randn(patches * 16, dims)
    class Reduced(torch.nn.Module):
        def __init__(self, k: int) -> None:
            super().__init__()
            self.k = k
            self.b = torch.nn.Parameter(torch.randn(k + 1, bank_rows), requires_grad=False)
            self.sq = torch.nn.Parameter(torch.randn(bank_rows), requires_grad=False)

        def forward(self, q: torch.Tensor) -> torch.Tensor:
            return torch.addmm(self.sq, q[:, : self.k + 1], self.b).amin(1)

    for label, mod in [("exact product + minimum", Exact())] + [
            (f"{k + 1}-column product + minimum", Reduced(k)) for k in (64, 96)] + [
            (f"{k + 1}-column product + top-{r}", TopK(k, r)) for k in (48, 64, 96) for r in (9, 17)]:
        path = work / "search.onnx"
        torch.onnx.export(mod.eval(), (q[:patches],), str(path), input_names=["q"], dynamic_axes={"q": {0: "n"}},
                          dynamo=False)
        r = _ov_compile(path, "f32").create_infer_request()
        one = _best_ms(lambda: r.infer({0: q[:patches].numpy()}), 1)
        many = _best_ms(lambda: r.infer({0: q.numpy()}), 16)
        print(f"  {label:<30} one image {one:6.2f} ms   batch of 16 {many:6.2f} ms/image", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--datasets", nargs="+", default=["screw", "pill", "magnetic_tile"])
    ap.add_argument("--work", type=Path, help="bundles and exports (default: temporary; reused when given)")
    ap.add_argument("--torch-home-from-shared", action="store_true")
    args = ap.parse_args(argv)
    from _torch_home import work_folder

    work, _tmp = work_folder(args.work, "inspector-search-", args.torch_home_from_shared)
    import torch

    torch.set_num_threads(2)
    from _patchcore_bundle import patchcore_bundle
    from _perf_report import machine_line

    from inspection_core.bundle import load_bundle
    from inspection_core.cli.main import main as cli

    print(machine_line(), flush=True)
    shape = None
    for name in args.datasets:
        data = args.data_root / name
        path, _ = patchcore_bundle(data, work)
        export_dir = work / f"{name}_patchcore-openvino"
        if not (export_dir / "manifest.json").is_file():
            rc = cli(["export", "--bundle", str(path), "--format", "openvino", "--out", str(export_dir),
                      "--images", str(data / "test")])
            if rc != 0:
                raise SystemExit(f"exporting {path} failed (exit {rc})")
        bundle = load_bundle(path)
        print(f"\n{name}: {path.name}", flush=True)
        timing(bundle, export_dir, work)
        verdicts(bundle, export_dir, data)
        if shape is None:
            m = bundle.build_model()
            shape = (int(m.memory_bank.shape[0]), int(m.memory_bank.shape[1]),
                     (bundle.preprocessing.image_size // int(m.params["grid_stride"])) ** 2)
    if shape is not None:
        print(f"\ntop-k inside the graph (OpenVINO fp32, random data: bank {shape[0]} x {shape[1]}, {shape[2]} patches)")
        topk_cost(work, *shape)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
