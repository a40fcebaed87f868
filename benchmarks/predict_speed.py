"""Speed on the user's path: ``inspector predict`` on a folder, and one image
through the scoring path, quiet and with another process spinning on a core.

    python benchmarks/predict_speed.py --bundle B.inspector [--bundle C.inspector] [--folder DIR]
    python benchmarks/predict_speed.py --bundle B.inspector --wait-policy passive,spin   # and OpenMP's default, in turn

Figures (medians of --runs):
- folder: ``inspector predict --bundle B DIR --csv T`` run as a subprocess, as a
  user runs it; images/s over the whole run (start-up and model load included),
  and without them: the run on one image of the folder is timed too, and the
  difference of the two runs gives the images/s once the model is loaded;
- one image: ``Inspector.predict`` on one image in a loop (decoded already:
  preprocessing, model, score, heat map and verdict), in a child process,
  quiet and while a second process spins (``while True: pass``), and their ratio.

Every figure is printed with the machine's load average: on a shared machine
it changes them. The machine line is benchmarks/perf.py's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _perf_report import inspector_command  # noqa: E402

#: the OpenMP wait policies compared: the one Inspector sets (inspection_core.thread_policy) and OpenMP's own
POLICIES = {"passive": {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"},
            "spin": {"OMP_WAIT_POLICY": "ACTIVE", "KMP_BLOCKTIME": "200"}}


def _env(policy: str) -> dict[str, str]:
    return {**os.environ, **POLICIES[policy]}


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f}/{five:.2f}"


def predict_wall(bundle: Path, paths: list[Path], env: dict[str, str], extra: list[str]) -> float:
    """Wall seconds of one ``inspector predict`` run (its output to a CSV, nothing printed here)."""
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        done = subprocess.run([*inspector_command(), "predict", "--bundle", str(bundle), *map(str, paths),
                               "--csv", str(Path(tmp) / "out.csv"), *extra],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"inspector predict failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return wall


def folder_figures(bundle: Path, folder: Path, runs: int, policies: list[str], extra: list[str]) -> None:
    from inspection_core.data.images import list_images

    files = list_images(folder, recursive=True)
    whole: dict[str, list[float]] = {p: [] for p in policies}
    one: dict[str, list[float]] = {p: [] for p in policies}
    for _ in range(runs):  # in turn, so that a slow moment of the machine lands on each
        for policy in policies:
            whole[policy].append(predict_wall(bundle, [folder], _env(policy), extra))
            one[policy].append(predict_wall(bundle, [files[0]], _env(policy), extra))
    for policy in policies:
        t_all, t_one = statistics.median(whole[policy]), statistics.median(one[policy])
        steady = (len(files) - 1) / max(t_all - t_one, 1e-9)
        print(f"folder  {bundle.name}: {len(files)} images in {t_all:.2f} s = {len(files) / t_all:.1f} images/s "
              f"(whole run); one image {t_one:.2f} s (start-up and load); {steady:.1f} images/s once loaded  "
              f"[{policy}, {runs} runs, {_load()}]", flush=True)


def latency_child(bundle: Path, image: Path, seconds: float) -> None:
    """(child) median ms of Inspector.predict on one decoded image, printed as one number."""
    from inspection_core.data.images import read_image
    from inspection_core.inference import Inspector

    insp = Inspector(bundle)
    img = read_image(image)
    for _ in range(3):
        insp.predict(img)
    times = []
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds or len(times) < 10:
        t = time.perf_counter()
        insp.predict(img)
        times.append(time.perf_counter() - t)
    print(f"{statistics.median(times) * 1e3:.3f} {len(times)}")


def one_latency(bundle: Path, image: Path, seconds: float, policy: str) -> tuple[float, int]:
    out = subprocess.run([sys.executable, __file__, "--_latency", str(bundle), str(image), str(seconds)],
                         env=_env(policy), capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"latency run failed: {out.stderr.strip()[-500:]}")
    ms, n = out.stdout.split()[-2:]
    return float(ms), int(n)


def latency_figures(bundle: Path, folder: Path, seconds: float, rounds: int, policies: list[str]) -> None:
    from inspection_core.data.images import list_images

    image = list_images(folder, recursive=True)[0]
    quiet: dict[str, list[float]] = {p: [] for p in policies}
    busy: dict[str, list[float]] = {p: [] for p in policies}
    for _ in range(rounds):
        for policy in policies:
            quiet[policy].append(one_latency(bundle, image, seconds, policy)[0])
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            time.sleep(0.3)
            for policy in policies:
                busy[policy].append(one_latency(bundle, image, seconds, policy)[0])
        finally:
            spinner.kill()
            spinner.wait()
    for policy in policies:
        q, b = statistics.median(quiet[policy]), statistics.median(busy[policy])
        print(f"one     {bundle.name}: {q:.1f} ms quiet, {b:.1f} ms with a process spinning on one core "
              f"({b / q:.2f}x)  [{policy}, {rounds} rounds of {seconds:g} s, {_load()}]", flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--_latency"]:
        latency_child(Path(argv[1]), Path(argv[2]), float(argv[3]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, action="append", required=True, help="bundle to time (repeatable)")
    ap.add_argument("--folder", type=Path, default=ROOT.parent / "shared" / "data" / "screw" / "test",
                    help="images to score (default: ../shared/data/screw/test)")
    ap.add_argument("--runs", type=int, default=3, help="predict runs of each kind (median)")
    ap.add_argument("--seconds", type=float, default=4.0, help="seconds of one-image scoring per latency figure")
    ap.add_argument("--rounds", type=int, default=2, help="quiet/busy latency rounds (median)")
    ap.add_argument("--wait-policy", default="passive",
                    help="OpenMP wait policy of the timed processes: passive (what inspector sets), spin (OpenMP's "
                         "default), or both, comma-separated (timed in turn)")
    ap.add_argument("--skip", default="", help="comma-separated: folder, one")
    ap.add_argument("--predict-arg", action="append", default=[], help="extra argument to inspector predict")
    args = ap.parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    policies = [p.strip() for p in args.wait_policy.split(",") if p.strip()]
    if not policies or any(p not in POLICIES for p in policies):
        ap.error(f"--wait-policy: one or more of {', '.join(POLICIES)}")
    os.environ.update(POLICIES[policies[0]])  # this process imports torch too (the machine line)
    from _perf_report import machine_line

    print(machine_line(), flush=True)
    for bundle in args.bundle:
        if "folder" not in skip:
            folder_figures(bundle, args.folder, args.runs, policies, args.predict_arg)
        if "one" not in skip:
            latency_figures(bundle, args.folder, args.seconds, args.rounds, policies)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
