"""Would an int8 export hold the parity check? OpenVINO NNCF post-training
quantisation of real bundles' exports, checked by the export's own rule
(issue 31's optional int8; docs/performance.md).

For each bundle: its OpenVINO export (``inspector export --format openvino``,
made here when ``--work`` lacks it), quantised with ``nncf.quantize`` on up to
``--calibration`` of its data set's good training images, then both graphs
scored on the test split against the plain fp32 PyTorch path, each at its
own threshold by the bundle's rule (``export.parity``), and timed (one image;
batches of 8). Printed per bundle: image AUROC, verdicts differing, whether
the export rule holds (AUROC within 0.005, at most 0.5 % of verdicts), and
the times. NNCF is not one of the project's dependencies: ``pip install nncf``
first.

    python benchmarks/int8_probe.py --torch-home-from-shared --work W B1.inspector:DATA1 B2.inspector:DATA2 ...
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _times(request, x1: np.ndarray, x8: np.ndarray) -> tuple[float, float]:
    """Median ms of one image; best ms per image of batches of 8."""
    from _perf_report import median_ms

    one = median_ms(lambda: request.infer({0: x1}), 20, warmup=1)[0]
    return one, median_ms(lambda: request.infer({0: x8}), 5, warmup=0)[2] / len(x8)


def probe(bundle_path: Path, data: Path, work: Path, calibration: int) -> None:
    import nncf
    import openvino as ov

    from inspection_core.bundle import load_bundle
    from inspection_core.cli.main import main as cli
    from inspection_core.data.dataset import load_images
    from inspection_core.export.parity import reference_scores, threshold_rule
    from inspection_core.fidelity_rule import check_rule
    from inspection_core.selection import evaluation_samples, open_data
    from inspection_core.station.model import to_input

    export_dir = work / f"{bundle_path.stem}-openvino"
    if not (export_dir / "manifest.json").is_file():
        rc = cli(["export", "--bundle", str(bundle_path), "--format", "openvino", "--out", str(export_dir)])
        if rc != 0:
            raise SystemExit(f"exporting {bundle_path} failed (exit {rc})")
    bundle = load_bundle(bundle_path)
    index = open_data(data, bundle.meta)
    test = load_images(evaluation_samples(bundle.meta, index).samples, bundle.preprocessing)
    images = np.asarray(test.images)
    y = np.array([s.label for s in test.samples])
    good_train = [s for s in index.train if s.label == 0][:calibration]
    calib = np.asarray(load_images(good_train, bundle.preprocessing).images)
    ref, _ = reference_scores(bundle, images)
    rule, rule_text = threshold_rule(bundle.meta, y)

    core = ov.Core()
    fp32 = core.read_model(str(export_dir / "model.xml"))
    t0 = time.perf_counter()
    int8 = nncf.quantize(fp32, nncf.Dataset([to_input(calib[i : i + 1]) for i in range(len(calib))]),
                         subset_size=len(calib))
    q_s = time.perf_counter() - t0
    print(f"\n{bundle_path.name} ({bundle.model_config.model}) on {data.name}: {len(y)} test images, "
          f"quantised on {len(calib)} good training images in {q_s:.1f} s; threshold: {rule_text}", flush=True)
    for name, model in (("OpenVINO fp32", fp32), ("OpenVINO int8", int8)):
        compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 2,
                                                     "PERFORMANCE_HINT": "LATENCY"})
        port = next(p for p in compiled.outputs if "score" in p.get_names())
        req = compiled.create_infer_request()
        s = np.concatenate([np.array(req.infer({0: to_input(images[i : i + 8])})[port]).reshape(-1)
                            for i in range(0, len(images), 8)])
        fid = check_rule(ref, s, y, rule, precision=name, engine=name, checked_on="test split")
        one, per = _times(req, to_input(images[:1]), to_input(images[:8]))
        auroc = "n/a" if fid.auroc is None else f"{fid.auroc:.4f}"
        ref_auroc = "n/a" if fid.auroc_fp32 is None else f"{fid.auroc_fp32:.4f}"
        print(f"  {name}: AUROC {auroc} (PyTorch fp32 {ref_auroc}), verdicts differing {fid.changed} of {fid.n}: "
              f"{'holds' if fid.ok else 'REFUSED'} by the export rule; one image {one:.2f} ms, "
              f"batches of 8 {per:.2f} ms/image", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pairs", nargs="+", help="BUNDLE:DATA (a bundle and the data set it was trained on)")
    ap.add_argument("--work", type=Path, help="exports (default: temporary; reused when given)")
    ap.add_argument("--calibration", type=int, default=64, help="good training images NNCF calibrates on")
    ap.add_argument("--torch-home-from-shared", action="store_true")
    args = ap.parse_args(argv)
    try:
        import nncf  # noqa: F401
    except ImportError:
        print("this probe needs OpenVINO NNCF: pip install nncf", file=sys.stderr)
        return 2
    from _torch_home import work_folder

    work, _tmp = work_folder(args.work, "inspector-int8-", args.torch_home_from_shared)
    from _perf_report import machine_line

    print(machine_line(), flush=True)
    for pair in args.pairs:
        bundle, _, data = pair.rpartition(":")
        probe(Path(bundle), Path(data), work, args.calibration)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
