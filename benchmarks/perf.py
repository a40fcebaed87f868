"""Speed on the user's path: what an operator's station runs, with the defaults users get.

    python benchmarks/perf.py --torch-home-from-shared            # screw: CLI-default PatchCore and GANomaly
    python benchmarks/perf.py --bundle A.inspector B.inspector --images DIR
    python benchmarks/perf.py --torch-home-from-shared --anomalib-path DIR   # anomalib's models beside ours

Bundles: given with ``--bundle``, or trained here as a user trains them
(``inspector train --data DATA --model FAMILY --out B``, nothing else: the
family's CLI defaults), and exported as a user exports them (``inspector
export --format onnx|openvino``; the export's parity figures are printed).
Each bundle is then timed on each runtime (``--runtimes``):

- ``torch``: the bundle with PyTorch, its default scoring path;
- ``torch-fp32``: the same bundle on the plain fp32 PyTorch path (the reference);
- ``onnxruntime`` / ``openvino``: its exported folder on the station runtime.

Sections (figures are medians; each row carries the load average, because on
a shared machine it changes every figure):

- ``predict``: ``inspector predict --bundle X FOLDER --csv T`` run as a
  subprocess: images/s over the whole run, and once loaded (the difference
  with a run on one image of the folder);
- ``line``: the live line (no GUI) on a 30 fps video of the folder's images,
  recorded to a SQLite history as the app does: the time to score one frame
  (preprocessing, model, score, heat map, verdict), capture -> verdict, frames/s;
- ``busy``: the same while another process spins on one core, and its ratio
  to the quiet figure;
- ``app``: the desktop app on the video (window time, memory, capture ->
  verdict on screen);
- ``anomalib``: anomalib's own torch model of the family (PatchCore with the
  same backbone and bank size, GANomaly at the same size), in a child process
  (benchmarks/_anomalib_ref.py), when ``--anomalib-path`` or an installed
  anomalib provides it;
- ``gpu``: on a CUDA machine, the bundle's paths on the GPU.
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _perf_app import app_probe, bench_app, bench_gpu, video_label  # noqa: E402
from _perf_report import Report, inspector_command, load_text, machine_line  # noqa: E402
from predict_speed import predict_wall  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SECTIONS = ("predict", "line", "busy", "app", "anomalib", "gpu")
RUNTIMES = ("torch", "torch-fp32", "onnxruntime", "openvino")
#: issue 31's targets per family: one image, a folder through ``inspector predict``
TARGETS = {"patchcore": ("<=10 ms", ">=100 img/s"), "ganomaly": ("<=7 ms", ">=150 img/s")}


def _family(target: Path) -> str:
    """The family of a bundle or an exported folder."""
    if target.is_dir():
        return str(json.loads((target / "manifest.json").read_text())["bundle"]["model"]["model"])
    from inspection_core.bundle import read_manifest

    return str(read_manifest(target)["model"]["model"])


# --------------------------------------------------------------------------- bundles and exports
def train_bundle(data: Path, family: str, work: Path) -> Path:
    """``inspector train`` with the family's CLI defaults (kept in ``work`` for the next run)."""
    out = work / f"{data.name}_{family}.inspector"
    if out.is_file():
        print(f"# bundle {out.name}: kept from an earlier run in {work}")
        return out
    t = time.perf_counter()
    done = subprocess.run([*inspector_command(), "train", "--data", str(data), "--model", family, "--out", str(out)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"inspector train --model {family} failed: {done.stderr.strip()[-800:]}")
    print(f"# bundle {out.name}: trained with the CLI defaults in {time.perf_counter() - t:.0f} s ({load_text()})")
    return out


def export_bundle(bundle: Path, fmt: str, work: Path, images: Path | None) -> Path | None:
    """``inspector export``; its parity lines are printed. None when it fails its check."""
    out = work / f"{bundle.stem}-{fmt}"
    if (out / "manifest.json").is_file():
        parity = json.loads((out / "manifest.json").read_text())["export"].get("parity", {})
        print(f"# export {out.name}: kept from an earlier run (parity ok={parity.get('ok')}, "
              f"{parity.get('changed', '?')} of {parity.get('n', '?')} verdicts changed)")
        return out
    cmd = [*inspector_command(), "export", "--bundle", str(bundle), "--format", fmt, "--out", str(out)]
    if images is not None:
        cmd += ["--images", str(images)]
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    for line in (done.stdout + done.stderr).strip().splitlines():
        print(f"# export {bundle.stem} {fmt}: {line}")
    if done.returncode != 0:
        return None
    print(f"# export {bundle.stem} {fmt}: {time.perf_counter() - t:.0f} s")
    return out


def targets_of(bundle: Path, work: Path, runtimes: list[str], images: Path | None) -> dict[str, tuple[Path, dict[str, str]]]:
    """runtime -> (what ``inspector predict --bundle`` is given, extra environment)."""
    out: dict[str, tuple[Path, dict[str, str]]] = {}
    for rt in runtimes:
        if rt == "torch":
            out[rt] = (bundle, {})
        elif rt == "torch-fp32":
            out[rt] = (bundle, {"INSPECTOR_PRECISION": "eager"})
        else:
            folder = export_bundle(bundle, rt if rt == "openvino" else "onnx", work, images)
            if folder is not None:
                out[rt] = (folder, {})
    return out


# --------------------------------------------------------------------------- predict
def bench_predict(rep: Report, rt: str, target: Path, env: dict[str, str], folder: Path, runs: int,
                  ref: dict[str, float]) -> None:
    from inspection_core.data.images import list_images

    files = list_images(folder, recursive=True)
    whole, one = [], []
    for _ in range(runs):  # in turn, so that a slow moment of the machine lands on both
        whole.append(predict_wall(target, [folder], env, []))
        one.append(predict_wall(target, [files[0]], env, []))
    t_all, t_one = statistics.median(whole), statistics.median(one)
    steady = (len(files) - 1) / max(t_all - t_one, 1e-9)
    if rt == "torch-fp32":
        ref["predict"] = steady
    rep.add("predict", f"inspector predict, {len(files)} images, {rt}", steady, "img/s", ref.get("predict"),
            higher_better=True, target=TARGETS.get(_family(target), ("", ""))[1],
            whole_run=f"{len(files) / t_all:.1f} img/s", start_s=round(t_one, 2))


# --------------------------------------------------------------------------- the live line
def _video_fps(video: str | Path) -> float:
    import cv2

    cap = cv2.VideoCapture(str(video))
    try:
        return float(cap.get(cv2.CAP_PROP_FPS)) or 30.0
    finally:
        cap.release()


def line_child(target: str, video: str, seconds: float) -> int:
    """(child process) The live line on ``video`` at its frame rate, recorded to
    a SQLite history; prints one JSON line of figures."""
    from inspection_core.history import HistoryDB
    from inspection_core.sources.video import VideoFileSource
    from inspection_core.usecases.live import LiveLine

    results: list[Any] = []
    ready: list[float] = []

    def on_event(ev: Any) -> None:
        if ev.kind == "result":
            results.append((time.monotonic(), ev.payload.score_ms, ev.payload.age_ms, ev.payload.frames_dropped))
        elif ev.kind == "ready":
            ready.append(time.monotonic())
        elif ev.kind == "failed":
            print(f"line failed: {ev.payload}", file=sys.stderr)

    with tempfile.TemporaryDirectory() as tmp:
        db = HistoryDB(Path(tmp) / "history.sqlite")
        # a camera: frames at the video's rate, the newest one scored (a late frame is dropped, not queued)
        line = LiveLine(VideoFileSource(video, realtime=True), target, db, on_event=on_event,
                        lossless=False, pace_fps=_video_fps(video))
        line.start()
        t_end = time.monotonic() + seconds + 120.0
        while not ready and time.monotonic() < t_end:
            time.sleep(0.05)
        time.sleep(seconds + 1.0)
        line.stop()
        db.close()
    t0 = (ready[0] + 1.0) if ready else 0.0
    kept = [r for r in results if r[0] >= t0]  # from 1 s after the model is ready
    if len(kept) < 3:
        print(json.dumps({"error": f"{len(kept)} frames scored"}))
        return 1
    span = kept[-1][0] - kept[0][0]
    print(json.dumps({"score_ms": statistics.median(r[1] for r in kept),
                      "score_p90": sorted(r[1] for r in kept)[int(0.9 * (len(kept) - 1))],
                      "age_ms": statistics.median(r[2] for r in kept), "fps": (len(kept) - 1) / span,
                      "frames": len(kept), "dropped": kept[-1][3] - kept[0][3]}))
    return 0


def run_line(target: Path, video: Path, seconds: float, env: dict[str, str], busy: bool) -> dict[str, Any]:
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--_line", str(target), str(video),
                              str(seconds)], env=env, capture_output=True, text=True, cwd=ROOT, timeout=600)
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    try:
        r: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        r = {"error": out.stderr.strip()[-300:]}
    return r


def bench_line(rep: Report, rt: str, target: Path, env: dict[str, str], video: Path, seconds: float,
               sections: set[str], ref: dict[str, float]) -> None:
    quiet = run_line(target, video, seconds, env, busy=False) if "line" in sections or "busy" in sections else {}
    if "error" in quiet:
        print(f"line      {rt}: {quiet['error']}")
        return
    if "line" in sections:
        if rt == "torch-fp32":
            ref["line"] = quiet["score_ms"]
        rep.add("line", f"one frame scored (heat map, verdict), {rt}", quiet["score_ms"], "ms", ref.get("line"),
                target=TARGETS.get(_family(target), ("", ""))[0], p90=round(quiet["score_p90"], 1),
                capture_to_verdict_ms=round(quiet["age_ms"], 1), fps=round(quiet["fps"], 1),
                dropped=quiet["dropped"], video=video_label(video))
    if "busy" in sections:
        busy = run_line(target, video, seconds, env, busy=True)
        if "error" in busy:
            print(f"busy      {rt}: {busy['error']}")
            return
        rep.add("busy", f"one frame, a process spinning on one core, {rt}", busy["score_ms"], "ms",
                target="<=2x quiet", x_quiet=round(busy["score_ms"] / quiet["score_ms"], 2),
                p90=round(busy["score_p90"], 1), capture_to_verdict_ms=round(busy["age_ms"], 1),
                fps=round(busy["fps"], 1), dropped=busy["dropped"])


# --------------------------------------------------------------------------- anomalib
def bench_anomalib(rep: Report, bundle: Path, anomalib_path: Path | None, n: int) -> None:
    from inspection_core.bundle import load_bundle

    b = load_bundle(bundle)
    family, pp = b.model_config.model, b.preprocessing
    if family not in ("patchcore", "ganomaly"):
        return
    args = [family, "--size", str(pp.image_size), "--channels", "3" if family == "patchcore" else str(pp.channels),
            "--n", str(n)]
    if family == "patchcore":
        args += ["--bank", str(int(b.state_dict["memory_bank"].shape[0]))]
    env = dict(os.environ)
    if anomalib_path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(anomalib_path), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "_anomalib_ref.py"), *args], env=env,
                         capture_output=True, text=True, timeout=900)
    try:
        r = json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        print(f"anomalib  not measured: {(out.stderr.strip().splitlines() or ['no output'])[-1][:200]}")
        return
    rep.add("anomalib", f"{r['model']}: one image", r["ms_1"], "ms")
    rep.add("anomalib", f"{r['model']}: batch 32", r["img_s_32"], "img/s", higher_better=True)


# --------------------------------------------------------------------------- main
def make_video(folder: Path, work: Path, fps: float = 30.0) -> Path:
    """A video of the folder's images at their own size (the first image's), ``fps`` frames/s."""
    import cv2

    from inspection_core.data.images import list_images, read_image

    files = list_images(folder, recursive=True)[:60]
    first = read_image(files[0])
    h, w = first.shape[:2]
    video = work / f"{folder.parent.name}_{w}x{h}_{fps:g}fps.avi"
    if not video.is_file():
        frames = []
        for img in [first] + [read_image(f) for f in files[1:]]:  # each image decoded once
            img = img if img.ndim == 3 else cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
            frames.append(cv2.resize(img, (w, h)) if img.shape[:2] != (h, w) else img)
        vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
        for i in range(900):  # 30 s at 30 fps
            vw.write(frames[i % len(frames)])
        vw.release()
    return video


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--_line"]:
        return line_child(argv[1], argv[2], float(argv[3]))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, nargs="+", help="trained bundles (default: train --families on --data)")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "screw",
                    help="data set the bundles are trained on (default: ../shared/data/screw)")
    ap.add_argument("--families", nargs="+", default=["patchcore", "ganomaly"])
    ap.add_argument("--images", type=Path, help="folder that inspector predict scores (default: DATA/test)")
    ap.add_argument("--runtimes", default=",".join(RUNTIMES), help=f"comma-separated: {','.join(RUNTIMES)}")
    ap.add_argument("--skip", default="", help=f"comma-separated sections to skip: {','.join(SECTIONS)}")
    ap.add_argument("--runs", type=int, default=3, help="inspector predict runs of each kind (median)")
    ap.add_argument("--seconds", type=float, default=8.0, help="seconds of live line per figure")
    ap.add_argument("--n", type=int, default=20, help="repetitions of anomalib's latency figure")
    ap.add_argument("--anomalib-path", type=Path, help="folder holding anomalib (pip install --target DIR anomalib)")
    ap.add_argument("--torch-home-from-shared", action="store_true",
                    help="take pretrained weights from ../shared/weights (machines without internet)")
    ap.add_argument("--work", type=Path, help="folder for bundles, exports and the video (kept; default: temporary)")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    ap.add_argument("--app-probe", nargs=3, metavar=("BUNDLE", "VIDEO", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.app_probe:
        return app_probe(*args.app_probe, seconds=12.0)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    if unknown := (skip - set(SECTIONS)) | (set(runtimes) - set(RUNTIMES)):
        ap.error(f"unknown section(s) or runtime(s) {sorted(unknown)}")
    sections = set(SECTIONS) - skip
    from _torch_home import work_folder

    work, tmp = work_folder(args.work, "inspector-perf-", args.torch_home_from_shared)
    from inspection_core import thread_policy

    thread_policy.configure()  # as the CLI and the app start: before torch
    print(machine_line(), flush=True)
    bundles = args.bundle or [train_bundle(args.data, f, work) for f in args.families]
    folder = args.images or args.data / "test"
    video = make_video(folder, work)
    rep = Report()
    for bundle in bundles:
        rep.bundle = bundle.name
        targets = targets_of(bundle, work, runtimes, args.images)  # the folder it scores also checks its exports
        rep.header()
        ref: dict[str, float] = {}
        order = sorted(targets, key=lambda r: r != "torch-fp32")  # the reference first: ratios against it
        for rt in order:
            target, extra = targets[rt]
            env = {**os.environ, **extra}
            if "predict" in sections:
                bench_predict(rep, rt, target, env, folder, args.runs, ref)
            if sections & {"line", "busy"}:
                bench_line(rep, rt, target, env, video, args.seconds, sections, ref)
            if "app" in sections and rt in ("torch", "onnxruntime"):
                bench_app(rep, target, video, work, rt, extra)
        if "anomalib" in sections:
            bench_anomalib(rep, bundle, args.anomalib_path, args.n)
        if "gpu" in sections:
            from inspection_core.data.images import list_images

            bench_gpu(rep, bundle, list_images(folder, recursive=True)[0], args.n)
    print(f"# done  {load_text()}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine_line(), "rows": rep.rows}, indent=1))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
