"""``inspector predict``: verdicts for image files or folders."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ..fileio import atomic_write_csv
from .common import CliError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="score image files or folders and print verdicts",
        description="Score images with a bundle: prints one line per image (path, score, verdict); optionally "
        "writes a CSV, heat-map overlays and history records.",
    )
    p.add_argument("paths", nargs="+", type=Path, help="image files or folders")
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--csv", type=Path, default=None, help="write path,score,verdict rows here")
    p.add_argument("--maps", type=Path, default=None, help="folder for heat-map overlays (<name>_heat.png, at each image's own resolution)")
    p.add_argument("--record", type=Path, default=None, metavar="DB", help="append verdicts to this history database")
    p.add_argument("--station", default="cli", help="station name for history records")
    p.add_argument("--recursive", action="store_true", help="descend into sub-folders")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=run)


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Heat map (values in [0, 1], any size) blended over an image as read
    (gray, BGR or BGRA, 8 or 16 bit), BGR uint8 at the image's own resolution."""
    import cv2

    from ..data.preprocess import to_uint8

    img = to_uint8(np.asarray(image))
    if img.ndim == 3 and img.shape[2] == 4:
        base = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    elif img.ndim == 3 and img.shape[2] == 3:
        base = img
    else:
        base = cv2.cvtColor(img.reshape(img.shape[:2]), cv2.COLOR_GRAY2BGR)
    colored = cv2.applyColorMap(np.clip(heat * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    if colored.shape[:2] != base.shape[:2]:
        colored = cv2.resize(colored, base.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    return cv2.addWeighted(base, 1 - alpha, colored, alpha, 0)


def run(args: argparse.Namespace) -> int:
    from ..data.images import ImageReadError, list_images, read_image, write_image
    from ..drift import InputMonitor
    from ..inference import Inspector

    insp = Inspector(args.bundle, device=args.device)
    monitor = InputMonitor(insp.manifest)  # says once when the images are unlike the training data
    files: list[Path] = []
    for p in args.paths:
        if p.is_dir():
            files.extend(list_images(p, recursive=args.recursive))
        elif p.exists():
            files.append(p)
        else:
            raise CliError(f"'{p}' does not exist")
    if not files:
        hint = "" if args.recursive else " (use --recursive for sub-folders)"
        raise CliError("no images found in " + ", ".join(f"'{p}'" for p in args.paths) + hint)
    history = None
    if args.record:
        from ..history import HistoryDB

        history = HistoryDB(args.record)
    rows, skipped, counts = [], [], {"PASS": 0, "REVIEW": 0, "FAIL": 0}
    for i in range(0, len(files), args.batch_size):
        chunk, images = [], []
        for f in files[i : i + args.batch_size]:
            try:
                images.append(read_image(f))
                chunk.append(f)
            except ImageReadError as exc:
                skipped.append((f, exc.reason))
                print(f"warning: skipped {exc}", file=sys.stderr)
        for f, image, pred in zip(chunk, images, insp.predict_batch(images)):
            if (warning := monitor.observe(image, pred.score, pred.image)) is not None:
                print(f"warning: {warning}", file=sys.stderr)
            counts[pred.verdict.value] += 1
            rows.append([str(f), f"{pred.score:.8g}", pred.verdict.value])
            print(f"{f}\t{pred.score:.6g}\t{pred.verdict.value}")
            if args.maps:
                args.maps.mkdir(parents=True, exist_ok=True)
                write_image(args.maps / f"{f.stem}_heat.png", overlay(image, pred.heat))  # at the image's resolution
            if history is not None:
                history.record(
                    score=pred.score,
                    verdict=pred.verdict.value,
                    threshold_high=pred.threshold.high,
                    threshold_low=pred.threshold.low,
                    source="cli",
                    image_ref=str(f),
                    bundle=insp.name,
                    bundle_id=insp.bundle_id,
                    station=args.station,
                    latency_ms=pred.latency_ms,
                )
    if history is not None:
        history.close()
    if (warning := monitor.finish()) is not None:
        print(f"warning: {warning}", file=sys.stderr)
    if args.csv:
        atomic_write_csv(args.csv, ["path", "score", "verdict"], rows)
    total = sum(counts.values())
    print(
        f"{total} scored: {counts['PASS']} PASS, {counts['REVIEW']} REVIEW, {counts['FAIL']} FAIL"
        + (f"; {len(skipped)} unreadable skipped" if skipped else ""),
        file=sys.stderr,
    )
    return 0 if total else 2
