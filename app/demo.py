"""The built-in demo: a synthetic washer data set and a small model for it.

The model comes from one of two places:

1. a pre-trained bundle shipped with the application (``models/demo.inspector``
   in a checkout, ``<_MEIPASS>/models`` in a PyInstaller build,
   ``<prefix>/share/inspector/models`` in an installed package), built by
   ``python -m app.demo --build models/demo.inspector``, so the first start
   needs no training at all;
2. otherwise (no shipped bundle, or one built for other demo data), the same
   recipe trained on first start and cached in the user's model folder.

A bundle is used for the demo only when its manifest's ``demo`` record matches
:func:`demo_spec`: the demo images are generated (never committed), and the
bundle's threshold and figures hold only for the images this version generates.

What a demo bundle inspects is recorded in the demo's own history
(:func:`demo_history_path`, ``<data folder>/demo/history.sqlite3``), never in
the station's: the app's context switches to it while a demo bundle is in use.

Everything here is plain Python (no Qt) so the CLI and packaging scripts can
reuse it; the GUI runs :func:`ensure_demo_bundle` as a job with a progress bar.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from app.settings import StationSettings

DEMO_BUNDLE_NAME = "demo.inspector"
DEMO_SEED = 0              # seed of the demo images (train and test split)
DEMO_CALIBRATION_SEED = 1  # seed of the separate set the threshold is calibrated on
DEMO_IMAGE_SIZE = 128      # size of the demo images on disk
DEMO_MODEL_SIZE = 64       # model input size
DEMO_LINE_DIR = "demo-line"
#: the demo's own history (its database and kept images), under the data folder:
#: demo verdicts never go to the station's history
DEMO_HISTORY_DIR = "demo"
DEMO_RECIPE = 3            # bump when the training recipe below changes

# The training recipe (found by measuring image AUROC on the demo test split,
# see models/README.md). Skip-GANomaly with the reconstruction-only score
# (lam = 1): its heat map and score both come from the reconstruction error.
# A GAN needs a few hundred updates: 30 epochs of 7 batches of 16 = 210 steps,
# at a higher learning rate than the DCGAN default.
DEMO_MODEL = "skip-ganomaly"
DEMO_PRESET = "quick"      # the values below override it; recorded in the bundle
DEMO_WIDTH = 16
DEMO_LATENT = 64
#: the quick preset's pixel residual (no pretrained weights needed) with the
#: paper's image score and no illumination normalisation
DEMO_PARAMS: dict[str, Any] = {"lam": 1.0, "score": "paper"}
DEMO_NORMALIZE = "none"
DEMO_EPOCHS = 30
DEMO_BATCH = 16
DEMO_LR = 1e-3
DEMO_CALIBRATION_STRATEGY = "youden"

ProgressFn = Callable[[Any], None]


# ------------------------------------------------------------------ locations
def _settings(settings: StationSettings | None) -> StationSettings:
    return settings if settings is not None else StationSettings.load()


def shipped_models_dirs() -> list[Path]:
    """Folders that may hold bundles shipped with the application, in order:
    a PyInstaller build's ``models`` folder, the ``models`` folder beside the
    ``app`` package (a checkout or an editable install), and
    ``<prefix>/share/inspector/models`` (a non-editable install that ships it
    as data files)."""
    dirs: list[Path] = []
    meipass = getattr(sys, "_MEIPASS", None)
    if meipass:
        dirs.append(Path(meipass) / "models")
    dirs.append(Path(__file__).resolve().parents[1] / "models")
    dirs.append(Path(sys.prefix) / "share" / "inspector" / "models")
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def demo_spec() -> dict[str, Any]:
    """What a demo bundle must have been built for (stored in its manifest)."""
    return {
        "data_seed": DEMO_SEED,
        "image_size": DEMO_IMAGE_SIZE,
        "model_size": DEMO_MODEL_SIZE,
        "calibration_seed": DEMO_CALIBRATION_SEED,
        "recipe": DEMO_RECIPE,
    }


def _bundle_ok(path: Path) -> bool:
    """Whether ``path`` is a readable demo bundle built for this version's demo data."""
    if not path.is_file():
        return False
    try:
        from app.manifest import read_manifest_light

        manifest = read_manifest_light(path)
    except Exception:  # noqa: BLE001 - a damaged bundle is simply not used (and rebuilt when cached)
        return False
    return manifest.get("demo") == demo_spec()


def shipped_demo_bundle() -> Path | None:
    """The demo bundle shipped with the application, or None."""
    for folder in shipped_models_dirs():
        p = folder / DEMO_BUNDLE_NAME
        if _bundle_ok(p):
            return p
    return None


def cached_demo_bundle_path(settings: StationSettings | None = None) -> Path:
    """Where the first start caches a demo bundle it had to train."""
    return _settings(settings).models_path() / DEMO_BUNDLE_NAME


def demo_bundle_path(settings: StationSettings | None = None) -> Path:
    """The demo bundle to use: the shipped one when present, else the cached one
    (which may not exist yet; :func:`ensure_demo_bundle` builds it)."""
    return shipped_demo_bundle() or cached_demo_bundle_path(settings)


def demo_history_path(settings: StationSettings | None = None) -> Path:
    """The demo's own history database (``<data folder>/demo/history.sqlite3``):
    what a demo bundle inspects is recorded there, never in the station's
    history, whose rows are real parts."""
    from inspection_core.paths import HISTORY_FILENAME

    return _settings(settings).data_path() / DEMO_HISTORY_DIR / HISTORY_FILENAME


def demo_image_dir(history_path: Path) -> Path:
    """Where the demo history at ``history_path`` keeps its FAIL/REVIEW images (beside it)."""
    from inspection_core.paths import KEPT_IMAGES_DIRNAME

    return Path(history_path).parent / KEPT_IMAGES_DIRNAME


def is_demo_bundle_file(path: Path | str | None) -> bool:
    """Whether the bundle at ``path`` is a demo bundle (its manifest has a
    ``demo`` record, of this version's demo data or an older one): its
    verdicts belong in the demo history; also an exported demo model's folder.
    False for no path or an unreadable file."""
    from inspection_core.station import is_export_dir

    if path is None or not (Path(path).is_file() or is_export_dir(path)):
        return False
    try:
        from app.manifest import read_manifest_light

        return bool(read_manifest_light(path).get("demo"))
    except Exception:  # noqa: BLE001 - an unreadable bundle is not the demo's (loading it says why)
        return False


def demo_data_path(settings: StationSettings | None = None) -> Path:
    return _settings(settings).demo_data_path()


def demo_line_path(settings: StationSettings | None = None) -> Path:
    """A folder with the demo's test images interleaved like parts on a line
    (mostly good, a defect now and then) for the Inspect view."""
    return _settings(settings).data_path() / DEMO_LINE_DIR


# ----------------------------------------------------------------- demo data
def make_demo_data(out: Path, seed: int = DEMO_SEED) -> Path:
    """The demo data set (MVTec layout) the demo bundle's figures refer to."""
    from inspection_core.data.demo import make_demo_dataset

    return make_demo_dataset(out, seed=seed, size=DEMO_IMAGE_SIZE)


def make_calibration_data(out: Path) -> Path:
    """A separate labelled set (other seed) for the threshold: 30 good parts,
    10 of each defect type (its one training image is unused)."""
    from inspection_core.data.demo import make_demo_dataset

    return make_demo_dataset(out, seed=DEMO_CALIBRATION_SEED, size=DEMO_IMAGE_SIZE, n_train=1)


def demo_calibration_path(settings: StationSettings | None = None) -> Path:
    """Where the demo's calibration images are generated again for the Calibrate view's gallery."""
    return _settings(settings).data_path() / "demo-calibration"


def ensure_demo_calibration_data(settings: StationSettings | None = None) -> Path:
    """The demo bundle's calibration images (the set its threshold was chosen on,
    generated again: same seed, same files), so the Calibrate view can show the
    images its stored calibration misjudged. Made once, then reused."""
    root = demo_calibration_path(settings)
    if not (root / "test" / "good").is_dir():
        tmp = root.with_name(root.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        make_calibration_data(tmp)
        shutil.rmtree(root, ignore_errors=True)
        os.replace(tmp, root)
    return root


def is_demo_bundle(manifest: dict[str, Any]) -> bool:
    """Whether ``manifest`` is a demo bundle built for this version's demo data."""
    return manifest.get("demo") == demo_spec()


def ensure_demo_data(settings: StationSettings | None = None) -> Path:
    """Create the demo data set and the interleaved line folder if missing."""
    s = _settings(settings)
    root = demo_data_path(s)
    if not (root / "train" / "good").is_dir() or not any((root / "train" / "good").iterdir()):
        tmp = root.with_name(root.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        make_demo_data(tmp)
        shutil.rmtree(root, ignore_errors=True)
        os.replace(tmp, root)
    line = demo_line_path(s)
    if not line.is_dir() or not any(line.iterdir()):
        _build_line(root, line)
    return root


def _build_line(root: Path, line: Path) -> None:
    """Interleave good and defective test images: a defect every ~4th part."""
    test = root / "test"
    good = sorted((test / "good").glob("*.png"))
    bad = sorted(p for d in sorted(test.iterdir()) if d.is_dir() and d.name != "good" for p in d.glob("*.png"))
    bad = bad[::2]  # every defect type, but fewer of each: a line is mostly good
    order: list[Path] = []
    gi = bi = 0
    while gi < len(good) or bi < len(bad):
        for _ in range(3):
            if gi < len(good):
                order.append(good[gi])
                gi += 1
        if bi < len(bad):
            order.append(bad[bi])
            bi += 1
    tmp = line.with_name(line.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for i, src in enumerate(order):
        kind = src.parent.name
        shutil.copyfile(src, tmp / f"part_{i:03d}_{kind}.png")
    shutil.rmtree(line, ignore_errors=True)
    os.replace(tmp, line)


# ------------------------------------------------------------------ building
def demo_configs(epochs: int | None = None) -> tuple[Any, Any]:
    """(ModelConfig, TrainConfig) of the demo recipe, built the way the CLI and
    the Train view build theirs (:func:`inspection_core.recipes.resolve`), so
    the Train view can reproduce it."""
    from inspection_core.recipes import resolve

    return resolve(DEMO_MODEL, DEMO_PRESET, image_size=DEMO_MODEL_SIZE,
                   params={"base_width": DEMO_WIDTH, "latent_dim": DEMO_LATENT, **DEMO_PARAMS},
                   train={"epochs": epochs or DEMO_EPOCHS, "batch_size": DEMO_BATCH, "lr": DEMO_LR, "device": "cpu",
                          "seed": DEMO_SEED, "samples_per_epoch": 0, "cpu_bf16": False},  # fp32: the same demo on every CPU
                   normalize=DEMO_NORMALIZE)


def build_demo_bundle(
    out: Path,
    data_root: Path,
    progress: ProgressFn | None = None,
    cancel: object | None = None,
    epochs: int | None = None,
    data_label: str | None = None,
) -> Path:
    """Train the demo recipe on ``data_root`` (made by :func:`make_demo_data`),
    calibrate its threshold on a separate demo set, record its figures on the
    test split, and write the bundle to ``out`` (atomically). Each step is the
    core's use case (train and save, calibrate, evaluate), as for any bundle.

    Training runs on the CPU with a fixed seed, so the same torch version,
    thread count and CPU class (AVX2, AVX512...) give the same weights; another
    thread count or class gives others (docs/results-demo.md). ``data_label`` replaces the (temporary)
    data folder name in the manifest.
    """
    from inspection_core.bundle import update_manifest
    from inspection_core.progress import CancelToken, ProgressEvent, null_progress
    from inspection_core.usecases.calibrate import calibrate_bundle
    from inspection_core.usecases.evaluate import evaluate_bundle
    from inspection_core.usecases.training import train_and_save

    progress = progress or null_progress
    token = cancel if isinstance(cancel, CancelToken) else CancelToken()
    mcfg, tcfg = demo_configs(epochs)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".demo-build-", dir=out.parent))
    try:
        cal_root = make_calibration_data(work / "calibration")
        token.raise_if_cancelled()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        # the calibration set's test split picks the best epoch (never the demo test split)
        trained = train_and_save(data_root, mcfg, tcfg, work / DEMO_BUNDLE_NAME, progress, token, evaluate_test=False,
                                 val_data=cal_root, manifest_extra={"name": "demo", "demo": demo_spec()})
        train_wall, train_cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        staged = trained.path

        progress(ProgressEvent("message", message="Calibrating the demo threshold…"))
        calibrate_bundle(staged, cal_root, DEMO_CALIBRATION_STRATEGY, bootstrap=0, device="cpu", cancel=token,
                         note=f"demo calibration set (seed {DEMO_CALIBRATION_SEED})")

        progress(ProgressEvent("message", message="Checking the demo model on the demo test images…"))
        figures = demo_figures(evaluate_bundle(staged, data_root, device="cpu", cancel=token).metrics)
        figures["train_wall_s"] = round(train_wall, 1)
        figures["train_cpu_s"] = round(train_cpu, 1)

        def record(m: dict[str, Any]) -> dict[str, Any]:
            m["metrics"] = {**figures, "split": f"demo test split (seed {DEMO_SEED})"}
            if data_label:
                m["training"]["data"]["root"] = data_label
            return m

        update_manifest(staged, record)
        os.replace(staged, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    progress(ProgressEvent("done", message=f"Demo model saved to {out}"))
    return out


def demo_figures(metrics: dict[str, Any]) -> dict[str, Any]:
    """The figures a user notices, from :func:`inspection_core.evaluation.evaluate`'s metrics."""
    c = metrics["confusion"]
    n_good, n_defect = metrics["n_good"], metrics["n_defect"]
    return {
        "image_auroc": metrics["image_auroc"],
        "pixel_auroc": metrics.get("pixel_auroc"),
        "pro": metrics.get("pro"),
        "threshold": metrics["threshold"],
        "defective_fail_rate": c["tp"] / n_defect if n_defect else None,
        "good_pass_rate": c["tn"] / n_good if n_good else None,
        "n_good": n_good,
        "n_defect": n_defect,
    }


def ensure_demo_bundle(
    progress: ProgressFn | None = None,
    cancel: object | None = None,
    settings: StationSettings | None = None,
    epochs: int | None = None,
) -> Path:
    """The demo bundle's path, with the demo images in place.

    Uses the shipped bundle when there is one; otherwise trains the demo
    recipe (first start only; ``epochs`` defaults to ``DEMO_EPOCHS``) and
    caches it in the user's model folder. ``progress`` receives
    ``ProgressEvent``s; ``cancel`` is a ``CancelToken``: cancelling raises
    ``Cancelled`` and leaves no half-written bundle behind.
    """
    from inspection_core.progress import CancelToken, ProgressEvent, null_progress

    s = _settings(settings)
    progress = progress or null_progress
    token = cancel if isinstance(cancel, CancelToken) else CancelToken()
    target = demo_bundle_path(s)
    if _bundle_ok(target):
        if not demo_line_path(s).is_dir():
            progress(ProgressEvent("message", message="Creating the demo images…"))
        ensure_demo_data(s)
        return target
    progress(ProgressEvent("message", message="Creating the demo images…"))
    root = ensure_demo_data(s)
    token.raise_if_cancelled()
    progress(ProgressEvent("message", message="Training the demo model (first start only)…"))
    return build_demo_bundle(target, root, progress, token, epochs=epochs)


# ----------------------------------------------------------------------- CLI
def _printer(e: Any) -> None:
    kind = getattr(e, "kind", "")
    if kind in ("message", "done"):
        print(getattr(e, "message", ""), flush=True)
    elif kind == "epoch":
        auc = (getattr(e, "metrics", None) or {}).get("val_auroc")
        extra = f"  validation AUROC {auc:.3f}" if auc is not None else ""
        print(f"epoch {e.epoch}/{e.epochs}  {getattr(e, 'elapsed_s', 0):.0f} s{extra}", flush=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m app.demo``: find (or train and cache) the demo bundle;
    ``--build PATH`` rebuilds the bundle that ships in ``models/``."""
    p = argparse.ArgumentParser(prog="python -m app.demo", description=__doc__.splitlines()[0])
    p.add_argument("--build", type=Path, metavar="PATH",
                   help="train the demo recipe from scratch and write the bundle to PATH (e.g. models/demo.inspector)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads for --build (default 2)")
    args = p.parse_args(argv)
    if args.build is None:
        print(ensure_demo_bundle(_printer))
        return 0
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="inspector-demo-") as tmp:
        root = make_demo_data(Path(tmp) / "demo-data")
        label = f"generated demo data (make_demo_dataset seed={DEMO_SEED}, size={DEMO_IMAGE_SIZE})"
        path = build_demo_bundle(args.build, root, _printer, data_label=label)
    from inspection_core.bundle import read_manifest

    m = read_manifest(path)["metrics"]
    print(f"{path}: {path.stat().st_size / 1e6:.2f} MB; image AUROC {m['image_auroc']:.3f}, "
          f"pixel AUROC {m['pixel_auroc']:.3f}, defective FAIL {m['defective_fail_rate']:.0%}, "
          f"good PASS {m['good_pass_rate']:.0%}; training {m['train_wall_s']:.0f} s wall, {m['train_cpu_s']:.0f} s CPU")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
