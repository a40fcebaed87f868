"""Soak benchmark (issue 13, not in CI): many frames through the live line,
memory sampled as it runs.

    python benchmarks/soak.py                      # 100,000 frames, the shipped demo bundle
    python benchmarks/soak.py --frames 5000        # a quick check that it works
    python benchmarks/soak.py --json soak.json     # every sample as JSON

The line is the one a station runs headless (``usecases.live.LiveLine``):
capture thread, newest-frame slot (lossless here), scoring thread, every
verdict committed to a real history database through the Recorder, FAIL and
REVIEW images kept by the background writer. The frames cycle through the
demo's test parts (generated at the bundle's size, several times larger than
the model input, as a camera's would be). Every ``--every`` frames the
resident memory (VmRSS), open files, threads and the history's size are
sampled; the report gives RSS at the start (after ``--warmup`` frames) and at
the end, the growth, and the slope fitted over the samples after warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def status_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def open_files() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def make_frames(work: Path, scale: int) -> list[Any]:
    """The demo's test parts at ``scale`` times the demo size (colour, uint8)."""
    import cv2

    from inspection_core.data.demo import make_demo_dataset
    from inspection_core.data.images import list_images, read_image

    demo = make_demo_dataset(work / "demo", seed=5, size=128, n_train=1, n_test_good=12, n_test_defect_per_type=3)
    frames = [read_image(p) for p in list_images(demo / "test", recursive=True)]
    return [cv2.resize(f, (f.shape[1] * scale, f.shape[0] * scale), interpolation=cv2.INTER_LINEAR) for f in frames]


class CyclingSource:
    """A lossless ImageSource that delivers ``total`` frames cycling through ``frames``, then ends."""

    def __new__(cls, frames: list[Any], total: int):  # built lazily: the sources import cv2
        from inspection_core.sources.base import Frame, ImageSource

        class _Cycling(ImageSource):
            def __init__(self) -> None:
                super().__init__("soak")
                self.delivered = 0

            def _open(self) -> None:
                self.delivered = 0
                self.state = "running"

            def _close(self) -> None:
                pass

            def _poll(self, timeout: float) -> Any:
                if self.delivered >= total:
                    self.state = "ended"
                    return None
                i = self.delivered
                self.delivered += 1
                return Frame(frames[i % len(frames)], self._next_index(), time.time(), f"soak#frame={i}")

        return _Cycling()


def fit_slope(xs: list[float], ys: list[float]) -> float:
    n = len(xs)
    if n < 2:
        return float("nan")
    mx, my = sum(xs) / n, sum(ys) / n
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else float("nan")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=100_000)
    p.add_argument("--every", type=int, default=1000, help="sample memory every N frames (default 1000)")
    p.add_argument("--warmup", type=int, default=2000, help="frames before the 'start' figure (default 2000)")
    p.add_argument("--bundle", type=Path, default=ROOT / "models" / "demo.inspector")
    p.add_argument("--scale", type=int, default=2, help="frame size as a multiple of 128 px (default 2: 256 px; "
                                                         "kept FAIL/REVIEW images take about 4 GB per 100,000 frames, "
                                                         "in the work folder)")
    p.add_argument("--no-keep-images", action="store_true", help="do not keep FAIL/REVIEW images")
    p.add_argument("--work", type=Path, default=None, help="folder for the history and kept images (default: a "
                                                          "temporary one, removed at the end)")
    p.add_argument("--json", type=Path, default=None, help="write the samples and the summary here")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = p.parse_args(argv)
    if args.frames < 1 or args.every < 1:
        p.error("--frames and --every must be at least 1")

    import torch

    torch.set_num_threads(args.threads)
    from inspection_core.history import HistoryDB, Recorder
    from inspection_core.inference import Inspector
    from inspection_core.usecases.live import LiveLine
    from inspection_core.usecases.live_events import Failed, FrameError, LiveEvent, Result

    work = args.work or Path(tempfile.mkdtemp(prefix="inspector-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    frames = make_frames(work, args.scale)
    insp = Inspector(args.bundle, device="cpu")
    db = HistoryDB(work / "history.sqlite3", image_dir=None if args.no_keep_images else work / "kept")
    samples: list[dict[str, Any]] = []
    errors: list[str] = []
    lock = threading.Lock()
    t0 = time.monotonic()

    def listener(event: LiveEvent) -> None:
        if isinstance(event, (FrameError, Failed)):
            errors.append(event.message)
        if not isinstance(event, Result):
            return
        payload = event.result
        n = payload.frames_scored
        if n % args.every == 0 or n == args.frames:
            wal = Path(str(db.path) + "-wal")
            with lock:
                samples.append({"frames": n, "t_s": round(time.monotonic() - t0, 2), "rss_mb": status_kb("VmRSS") / 1024,
                                "hwm_mb": status_kb("VmHWM") / 1024, "open_files": open_files(),
                                "threads": threading.active_count(), "db_mb": db.path.stat().st_size / 1e6,
                                "wal_mb": wal.stat().st_size / 1e6 if wal.exists() else 0.0,
                                "fps": round(payload.fps, 1)})
            s = samples[-1]
            print(f"{n:>8} frames  {s['t_s']:>8.1f} s  RSS {s['rss_mb']:7.1f} MB  files {s['open_files']:>4}  "
                  f"threads {s['threads']:>3}  history {s['db_mb']:6.1f} MB (WAL {s['wal_mb']:.2f})  "
                  f"{s['fps']:6.1f} fps", flush=True)

    rec = Recorder(db)
    line = LiveLine(CyclingSource(frames, args.frames), insp, rec, lossless=True, station="soak", on_event=listener)
    finished = line.run(timeout_s=None)
    rec.close()
    rows = db.count()
    kept = sum(1 for r in db.query(verdict=("FAIL", "REVIEW"), limit=10**9) if r.stored_image)
    db.close()
    kept_mb = sum(f.stat().st_size for f in (work / "kept").rglob("*.png")) / 1e6 if (work / "kept").is_dir() else 0.0
    wall = time.monotonic() - t0
    after = [s for s in samples if s["frames"] >= args.warmup] or samples
    start, end = after[0], samples[-1]
    slope = fit_slope([s["frames"] for s in after], [s["rss_mb"] for s in after]) * 10_000
    summary = {
        "frames": args.frames, "scored": line.frames_scored, "history_rows": rows, "images_kept": kept,
        "kept_images_mb": round(kept_mb, 1),
        "finished": finished, "errors": errors[:10], "n_errors": len(errors), "wall_s": round(wall, 1),
        "fps": round(line.frames_scored / wall, 1) if wall else None,
        "rss_start_mb": round(start["rss_mb"], 1), "rss_start_at": start["frames"],
        "rss_end_mb": round(end["rss_mb"], 1), "rss_growth_mb": round(end["rss_mb"] - start["rss_mb"], 1),
        "rss_slope_mb_per_10k_frames": round(slope, 2), "rss_peak_mb": round(max(s["hwm_mb"] for s in samples), 1),
        "open_files_start_end": [start["open_files"], end["open_files"]],
        "threads_start_end": [start["threads"], end["threads"]],
        "bundle": str(args.bundle), "frame_shape": list(frames[0].shape), "keep_images": not args.no_keep_images,
        "torch_threads": args.threads, "load_avg": [round(x, 2) for x in os.getloadavg()],
    }
    print("\nsoak:", json.dumps(summary, indent=2))
    ok = finished and rows == line.frames_scored == args.frames and not errors
    print(f"\nRSS {summary['rss_start_mb']} MB at frame {start['frames']} -> {summary['rss_end_mb']} MB at frame "
          f"{end['frames']} (growth {summary['rss_growth_mb']:+} MB, {summary['rss_slope_mb_per_10k_frames']:+} MB per "
          f"10,000 frames); every frame recorded: {rows == line.frames_scored}")
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "samples": samples}, indent=2), encoding="utf-8")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
