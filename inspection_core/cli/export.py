"""``inspector export``: a bundle's whole scoring graph as ONNX or OpenVINO, for
the operator station (:mod:`inspection_core.station`), checked before it is written."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .common import CliError, check_batch_size

FORMATS = ("onnx", "openvino")


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "export",
        help="export a bundle's scoring graph to ONNX or OpenVINO for a station without PyTorch (parity checked)",
        description="Write the bundle's whole scoring graph (preprocessed image in; score, anomaly map and, where the "
                    "model has them, reconstruction and texture term out) to a folder with its manifest. The export is "
                    "scored on the bundle's own images both ways (PyTorch and the exported graph in the station's "
                    "runtime), each with its own threshold by the bundle's rule; it is written only when image AUROC "
                    "agrees within 0.005 and at most 0.5 % of verdicts differ. Images: --images DIR when given, else "
                    "the bundle's calibration images, else the held-out images of its training folder.")
    p.add_argument("--bundle", required=True, type=Path, help="model bundle (.inspector file)")
    p.add_argument("--format", required=True, choices=FORMATS, dest="fmt",
                   help="onnx (ONNX Runtime) or openvino (OpenVINO IR, converted from the ONNX graph)")
    p.add_argument("--out", required=True, type=Path,
                   help="folder to write (created; an earlier export there is replaced only when the new one holds)")
    p.add_argument("--images", type=Path, default=None,
                   help="folder of images to check parity on: a labelled data set folder (MVTec layout or good/ + "
                        "defect/) or plain images taken as good parts (default: the bundle's calibration images, "
                        "else its training folder's held-out images)")
    p.add_argument("--batch-size", type=int, default=16, help="images scored together in the check")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    check_batch_size(args.batch_size)
    from ..export.writer import ExportFailure
    from ..usecases.export import describe_result, export

    try:
        result, _images = export(args.bundle, args.fmt, args.out, args.images, batch_size=args.batch_size)
    except ExportFailure as exc:
        raise CliError(str(exc)) from None
    for line in describe_result(result):
        print(line)
    return 0
