"""Performance benchmark (issue 6): every figure in one run, each with its
ratio to the plain fp32 torch path measured in the same run.

    python benchmarks/perf.py                              # quick 128 px GANomaly bundle on generated parts
    python benchmarks/perf.py --bundle B.inspector         # a trained bundle
    python benchmarks/perf.py --skip training,app --json out.json

Figures: the scoring path for one image (preprocess + model + score + heat
map + verdict), folder scoring (images/s), the live pipeline (video ->
scoring -> overlays -> history row: frames/s and capture-to-verdict), training
time per epoch, the desktop app (window time, resident memory during a live
run), and on a CUDA machine batch-1 latency and throughput. When anomalib is
installed its GANomaly torch module is timed side by side. Timings are
medians; the machine's load average is printed with them because on a shared
machine it changes every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from _perf_inputs import make_inputs, quick_bundle, video_label
from _perf_report import Report, load_text, machine_line, targets

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SECTIONS = ("single", "anomalib", "folder", "live", "training", "app", "gpu")


# --------------------------------------------------------------------------- helpers
def median_ms(fn: Callable[[], Any], n: int, warmup: int = 3) -> tuple[float, float, float]:
    """(median, 90th percentile, minimum) wall time of ``fn`` in ms; the
    minimum is the least disturbed by other work on a shared machine."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t) * 1000.0)
    ts.sort()
    return statistics.median(ts), ts[min(len(ts) - 1, int(0.9 * len(ts)))], ts[0]


def available_paths(with_auto: bool = False) -> list[str]:
    from inspection_core.acceleration import cpu_can_pack, cpu_has_native_bf16

    paths = ["eager"]
    if cpu_can_pack():
        paths.append("fp32")
        if cpu_has_native_bf16():
            paths.append("bf16")
    return paths + (["auto"] if with_auto else [])


# --------------------------------------------------------------------------- sections
def bench_single(rep: Report, bundle: Path, frame_path: Path, n: int) -> None:
    """One image: preprocess + model + score + heat map + verdict (Inspector.predict)."""
    import torch

    from inspection_core.data.images import read_image
    from inspection_core.data.preprocess import to_tensor
    from inspection_core.inference import Inspector

    frame = read_image(frame_path)
    ref = None
    for p in available_paths(with_auto=True):
        t = time.perf_counter()
        insp = Inspector(bundle, device="cpu", precision=p)
        load_s = time.perf_counter() - t
        med, p90, best = median_ms(lambda: insp.predict(frame), n)
        ref = ref or med
        label = f"default path ({insp.engine})" if p == "auto" else insp.engine
        rep.add("single", f"predict 1 image, {label}", med, "ms", ref, target=targets(bundle)[0],
                p90=round(p90, 2), min=round(best, 2), load_s=round(load_s, 2))
    # the model alone at batch 1, for orientation
    ref = None
    for p in available_paths():
        insp = Inspector(bundle, device="cpu", precision=p)
        x = to_tensor(insp.prepare(frame)[None])
        with torch.inference_mode():
            med, _, best = median_ms(lambda: insp.path(x), n)
        ref = ref or med
        rep.add("single", f"model forward only, {insp.engine}", med, "ms", ref, min=round(best, 2))


def bench_anomalib(rep: Report, size: int, channels: int, n: int) -> None:
    """anomalib's GANomaly torch module, eval mode, batch 1 (only when installed)."""
    try:
        from anomalib.models.image.ganomaly.torch_model import GanomalyModel  # type: ignore[import-not-found]
    except Exception as exc:  # noqa: BLE001 - optional
        print(f"anomalib   not installed ({type(exc).__name__}): its GANomaly module is not measured")
        return
    import torch

    m = GanomalyModel(input_size=(size, size), num_input_channels=channels, n_features=64,
                      latent_vec_size=100, extra_layers=0, add_final_conv_layer=True).eval()
    x = torch.rand(1, channels, size, size) * 2 - 1
    with torch.inference_mode():
        ref, _, _ = median_ms(lambda: m(x), n)
        rep.add("anomalib", "GanomalyModel fp32 eager", ref, "ms", ref)
        mcl = m.to(memory_format=torch.channels_last)
        xcl = x.contiguous(memory_format=torch.channels_last)
        med, _, _ = median_ms(lambda: mcl(xcl), n)
        rep.add("anomalib", "GanomalyModel fp32 channels-last", med, "ms", ref)

        def bf16() -> Any:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return mcl(xcl)

        med, _, _ = median_ms(bf16, n)
        rep.add("anomalib", "GanomalyModel bf16 autocast", med, "ms", ref)


def bench_folder(rep: Report, bundle: Path, demo: Path, batch: int) -> None:
    """Batched folder scoring with decoding overlapped (evaluation.score_samples)."""
    from inspection_core.data.dataset import scan_dataset
    from inspection_core.evaluation import score_samples
    from inspection_core.inference import Inspector

    index = scan_dataset(demo)
    samples = (list(index.test) + list(index.train))[:160]
    ref = None
    for p in available_paths(with_auto=True):
        insp = Inspector(bundle, device="cpu", precision=p)
        score_samples(insp, samples[:batch], batch)  # warm-up of the batch shape
        best = 0.0
        for _ in range(2):
            res = score_samples(insp, samples, batch)
            best = max(best, len(res.samples) / res.seconds)
        ref = ref or best
        label = f"default path ({insp.engine})" if p == "auto" else insp.engine
        rep.add("folder", f"score {len(samples)} files, batch {batch}, {label}", best, "img/s", ref,
                higher_better=True, target=targets(bundle)[1])


def _live_run(bundle: Path, video: Path, precision: str, realtime: bool, work: Path) -> dict[str, float]:
    """ScoringWorker on a video with a history database; the GUI-thread slot
    renders the overlay (heat map blended over the frame) as the view does."""
    from PySide6.QtCore import QCoreApplication, QEventLoop, QTimer

    from app.live import ScoringWorker
    from app.widgets.image_pane import heat_overlay
    from inspection_core.history import HistoryDB
    from inspection_core.inference import Inspector
    from inspection_core.sources.video import VideoFileSource

    app = QCoreApplication.instance()
    insp = Inspector(bundle, device="cpu", precision=precision)  # loaded before the clock starts
    db_path = work / f"history_{precision}_{int(realtime)}.sqlite"
    for old in work.glob(db_path.name + "*"):
        old.unlink()
    db = HistoryDB(db_path)
    ages: list[float] = []
    done: list[float] = []

    def on_result(r: Any) -> None:
        heat_overlay(r.image, r.prediction.heat)
        ages.append((time.time() - r.frame_timestamp) * 1000.0)
        done.append(time.perf_counter())

    w = ScoringWorker(VideoFileSource(video, realtime=realtime), insp, db, lossless=not realtime)
    w.result.connect(on_result)
    loop = QEventLoop()
    w.ended.connect(loop.quit)
    w.failed.connect(lambda m: (print("live failed:", m), loop.quit()))
    QTimer.singleShot(60_000, loop.quit)
    t0 = time.perf_counter()
    w.start()
    loop.exec()
    w.stop()
    app.processEvents()
    rows = db.count()
    db.close()
    span = (done[-1] - done[0]) if len(done) > 1 else float("nan")
    return {"fps": (len(done) - 1) / span if span == span and span > 0 else 0.0,
            "age_ms": statistics.median(ages[5:] or ages) if ages else float("nan"),
            "scored": w.frames_scored, "dropped": w.frames_dropped, "rows": rows, "wall_s": time.perf_counter() - t0}


def bench_live(rep: Report, bundle: Path, video: Path, work: Path) -> None:
    from PySide6.QtCore import QCoreApplication

    QCoreApplication.instance() or QCoreApplication([])
    ref_fps = ref_age = None
    for p in available_paths(with_auto=True):
        r = _live_run(bundle, video, p, realtime=False, work=work)
        ref_fps = ref_fps or r["fps"]
        rep.add("live", f"video as fast as scored (lossless), {p}", r["fps"], "fps", ref_fps, higher_better=True,
                target=">=30 fps", scored=r["scored"], history_rows=r["rows"])
        r = _live_run(bundle, video, p, realtime=True, work=work)
        ref_age = ref_age or r["age_ms"]
        rep.add("live", f"{video_label(video)}, capture->verdict in GUI thread, {p}", r["age_ms"], "ms", ref_age,
                target="<35 ms", fps=round(r["fps"], 1), dropped=r["dropped"])


def bench_training(rep: Report, demo: Path, size: int, steps: int) -> None:
    """Time per epoch (``steps`` steps of batch 32 + validation), plain fp32
    vs. bf16 autocast + channels-last; the second epoch is timed."""
    from inspection_core.config import ModelConfig, TrainConfig
    from inspection_core.training.trainer import train

    configs = [("fp32", {}), ("bf16 autocast", {"cpu_bf16": True}),
               ("bf16 autocast + channels-last", {"cpu_bf16": True, "extra": {"channels_last": True}})]
    ref = None
    for name, kw in configs:
        tcfg = TrainConfig(epochs=2, batch_size=32, device="cpu", samples_per_epoch=0, max_steps_per_epoch=steps, **kw)
        res = train(demo, ModelConfig("ganomaly", image_size=size), tcfg)
        h = res.history
        epoch_s = h[1]["elapsed_s"] - h[0]["elapsed_s"]
        ref = ref or epoch_s
        rep.add("training", f"GANomaly {size} px epoch ({steps} steps x 32), {name}", epoch_s, "s", ref,
                target=">=1.8x", per_step_s=round(epoch_s / steps, 2))


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


def bench_app(rep: Report, bundle: Path, video: Path, work: Path, precision: str | None = None) -> None:
    out = work / "app_probe.json"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", INSPECTOR_CONFIG_DIR=str(work / "cfg"),
               INSPECTOR_DATA_DIR=str(work / "data"), PERF_T0=repr(time.time()))
    if precision:
        env["INSPECTOR_PRECISION"] = precision
    cmd = [sys.executable, str(Path(__file__).resolve()), "--app-probe", str(bundle), str(video), str(out)]
    subprocess.run(cmd, env=env, cwd=ROOT, check=True, timeout=180)
    r = json.loads(out.read_text())
    tag = precision or "default path"
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


# --------------------------------------------------------------------------- main
def run_sections(rep: Report, bundle: Path, inputs: dict[str, Path], work: Path, args: argparse.Namespace,
                 skip: set[str]) -> None:
    if "single" not in skip:
        bench_single(rep, bundle, inputs["frame"], args.n)
    if "anomalib" not in skip:
        bench_anomalib(rep, args.size, 3, args.n)
    if "folder" not in skip:
        bench_folder(rep, bundle, inputs["demo"], args.batch)
    if "live" not in skip:
        bench_live(rep, bundle, inputs["video"], work)
    if "training" not in skip:
        bench_training(rep, inputs["demo"], args.size, args.train_steps)
    if "app" not in skip:
        bench_app(rep, bundle, inputs["video"], work)
        if "bf16" in available_paths():  # what a bundle whose bf16 fidelity was verified runs with
            bench_app(rep, bundle, inputs["video"], work, precision="bf16")
    if "gpu" not in skip:
        bench_gpu(rep, bundle, inputs["frame"], args.n)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, nargs="+",
                    help="trained bundles, e.g. one per family (default: train a quick GANomaly on generated parts); "
                         "every section runs on each")
    ap.add_argument("--work", type=Path, help="folder for generated inputs (default: a temporary folder)")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--n", type=int, default=40, help="repetitions per latency figure")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--train-steps", type=int, default=3)
    ap.add_argument("--frame-size", default="256x256", help="video frame size WxH for the live and app figures")
    ap.add_argument("--video-fps", type=float, default=30.0, help="the video's frame rate (played at that rate)")
    ap.add_argument("--skip", default="", help=f"comma-separated sections to skip: {','.join(SECTIONS)}")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    ap.add_argument("--app-probe", nargs=3, metavar=("BUNDLE", "VIDEO", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.app_probe:
        return app_probe(*args.app_probe, seconds=12.0)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = skip - set(SECTIONS)
    if unknown:
        ap.error(f"unknown section(s) {sorted(unknown)}; known: {', '.join(SECTIONS)}")

    print(machine_line(), flush=True)
    tmp = tempfile.TemporaryDirectory(prefix="inspector-perf-") if args.work is None else None
    work = args.work or Path(tmp.name)  # type: ignore[union-attr]
    work.mkdir(parents=True, exist_ok=True)
    fw, fh = (int(v) for v in args.frame_size.lower().split("x"))
    inputs = make_inputs(work, args.size, (fw, fh), args.video_fps)
    bundles = args.bundle or [quick_bundle(work, inputs["demo"], args.size)]
    from inspection_core.bundle import read_manifest

    rep = Report()
    for bundle in bundles:
        man = read_manifest(bundle)
        inf = man.get("inference") or {}
        checked = ((inf.get("fidelity") or {}).get("bf16") or {}).get("ok")
        print(f"# bundle {bundle.name}: {man['model']['model']} {man['model']['image_size']} px, "
              f"{man['model']['channels']} ch; threshold on {inf.get('precision', 'fp32')} "
              f"(bf16 check: {'held' if checked else 'not run' if checked is None else 'failed'}); work folder {work}")
        rep.header()
        rep.bundle = bundle.name
        run_sections(rep, bundle, inputs, work, args, skip)
    print(f"# done  {load_text()}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine_line(), "rows": rep.rows}, indent=1))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
