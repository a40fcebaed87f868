"""The performance benchmark's desktop-app and GPU figures (benchmarks/perf.py):
the real window on a video (window time, memory, capture -> verdict on screen)
and, on a CUDA machine, batch-1 latency and throughput."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _perf_report import Report, median_ms

ROOT = Path(__file__).resolve().parents[1]


def video_label(video: Path) -> str:
    """'30 fps 1024x1024 video': what a live or app figure was measured on."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    try:
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        return f"{cap.get(cv2.CAP_PROP_FPS):g} fps {w}x{h} video"
    finally:
        cap.release()


def app_probe(bundle: str, video: str, out: str, seconds: float) -> int:
    """Run in a child process: the real window, then a live run on a video.
    Writes window time, memory and on-screen latency to ``out`` (JSON)."""
    t0 = float(os.environ["PERF_T0"])
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv[:1])
    from app import gc_guard
    from app.__main__ import configure_qsettings, load_style

    gc_guard.install(app)
    configure_qsettings()
    app.setStyle("Fusion")
    app.setStyleSheet(load_style())
    from app.context import AppContext
    from app.main_window import MainWindow
    from app.settings import StationSettings

    ctx = AppContext(StationSettings.load())
    win = MainWindow(ctx)
    win.show()
    app.processEvents()
    window_s = time.time() - t0
    torch_at_window = "torch" in sys.modules
    res: dict[str, Any] = {"window_s": window_s, "torch_imported_before_window": torch_at_window}
    win.open_bundle(Path(bundle))
    view = win.inspect_view
    shown: list[float] = []

    # "On screen": the heat pane has painted the part's overlay (the last of the
    # three panes drawn for it), timed from the frame's capture.
    pending: list[Any] = [None]
    view.rendered.connect(lambda r: pending.__setitem__(0, r))
    pane = view.heat_pane
    paint = type(pane).paintEvent

    def timed_paint(event: Any) -> None:
        paint(pane, event)
        r = pending[0]
        if r is not None:
            pending[0] = None
            shown.append((time.time() - r.frame_timestamp) * 1000.0)

    pane.paintEvent = timed_paint  # type: ignore[method-assign]
    t_start = time.time()
    view.start_source("video", video, loop=True)  # a camera-like source that keeps going
    ready: list[float] = []
    if view.worker is not None:
        view.worker.ready.connect(lambda _i: ready.append(time.time()))
    peak = [0]

    def sample_rss() -> None:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS"):
                peak[0] = max(peak[0], int(line.split()[1]))

    rss_timer = QTimer()
    rss_timer.timeout.connect(sample_rss)
    rss_timer.start(100)
    mark: dict[str, Any] = {}

    def start_window() -> None:  # measure from 1 s after the model is ready
        if ready and time.time() > ready[0] + 1.0:
            mark.update(t=time.time(), n=view.results_received, shown=len(shown))
            QTimer.singleShot(int(seconds * 1000), app.quit)
        else:
            QTimer.singleShot(100, start_window)

    QTimer.singleShot(100, start_window)
    QTimer.singleShot(int((seconds + 60) * 1000), app.quit)  # model never ready: give up
    app.exec()
    span = time.time() - mark["t"] if mark else float("nan")
    lat = shown[mark.get("shown", 0):] if mark else []
    res.update({
        "bundle_ready_s": ready[0] - t_start if ready else None,
        "results": view.results_received - mark.get("n", 0),
        "fps": (view.results_received - mark["n"]) / span if mark else 0.0,
        "shown_ms_median": statistics.median(lat) if lat else None,
        "shown_ms_p90": sorted(lat)[int(0.9 * len(lat))] if lat else None,
        "rss_peak_mb": peak[0] / 1024.0,
    })
    view.stop()
    win.close()
    Path(out).write_text(json.dumps(res))
    return 0


def bench_app(rep: Report, bundle: Path, video: Path, work: Path, tag: str, env_extra: dict[str, str]) -> None:
    out = work / "app_probe.json"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", INSPECTOR_CONFIG_DIR=str(work / "cfg"),
               INSPECTOR_DATA_DIR=str(work / "data"), PERF_T0=repr(time.time()))
    env.update(env_extra)
    cmd = [sys.executable, str(ROOT / "benchmarks" / "perf.py"), "--app-probe", str(bundle), str(video), str(out)]
    subprocess.run(cmd, env=env, cwd=ROOT, check=True, timeout=180)
    r = json.loads(out.read_text())
    rep.add("app", f"window shown after start ({tag})", r["window_s"], "s", target="<3 s",
            torch_before_window=r["torch_imported_before_window"])
    rep.add("app", f"resident memory peak, live video run ({tag})", r["rss_peak_mb"], "MB", target="<2048 MB")
    if r.get("shown_ms_median") is not None:
        rep.add("app", f"capture->verdict on screen, {video_label(video)} ({tag})", r["shown_ms_median"], "ms",
                target="<35 ms, 30 fps", p90=round(r["shown_ms_p90"], 1), fps=round(r["fps"], 1),
                bundle_ready_s=round(r["bundle_ready_s"], 2))


def bench_gpu(rep: Report, bundle: Path, frame_path: Path, n: int) -> None:
    import torch

    if not torch.cuda.is_available():
        print("gpu        no CUDA device: GPU figures not measured")
        return
    from inspection_core.data.images import read_image
    from inspection_core.inference import Inspector

    frame = read_image(frame_path)
    ref1 = ref32 = None
    for p in ("eager", "fp32", "bf16", "fp16"):
        insp = Inspector(bundle, device="cuda", precision=p)

        def one() -> None:
            insp.predict(frame)
            torch.cuda.synchronize()

        med, _, _ = median_ms(one, n, warmup=10)
        ref1 = ref1 or med
        rep.add("gpu", f"predict 1 image, {insp.engine}", med, "ms", ref1)
        batch = insp.prepare(frame)[None].repeat(64, axis=0)

        def many() -> None:
            insp.score_images(batch)
            torch.cuda.synchronize()

        med, _, _ = median_ms(many, max(5, n // 5), warmup=3)
        ips = 64 / (med / 1000.0)
        ref32 = ref32 or ips
        rep.add("gpu", f"score_images batch 64, {insp.engine}", ips, "img/s", ref32, higher_better=True)


