"""The built-in demo: a synthetic washer data set and a small model trained
on it the first time, cached in the user's model folder afterwards.

``ensure_demo_bundle`` is plain Python (no Qt) so the CLI and packaging
scripts can reuse it; the GUI runs it as a job with a progress bar.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

from app.settings import StationSettings

DEMO_BUNDLE_NAME = "demo.inspector"
DEMO_SEED = 0
DEMO_IMAGE_SIZE = 128      # size of the demo images on disk
DEMO_MODEL_SIZE = 64       # model input size: trains in about a minute on 2 CPU cores
DEMO_EPOCHS = 6
DEMO_LINE_DIR = "demo-line"


def _settings(settings: StationSettings | None) -> StationSettings:
    return settings if settings is not None else StationSettings.load()


def demo_bundle_path(settings: StationSettings | None = None) -> Path:
    return _settings(settings).models_path() / DEMO_BUNDLE_NAME


def demo_data_path(settings: StationSettings | None = None) -> Path:
    return _settings(settings).demo_data_path()


def demo_line_path(settings: StationSettings | None = None) -> Path:
    """A folder with the demo's test images interleaved like parts on a line
    (mostly good, a defect now and then) for the Inspect view."""
    return _settings(settings).data_path() / DEMO_LINE_DIR


def _bundle_ok(path: Path) -> bool:
    if not path.is_file():
        return False
    try:
        from app.manifest import read_manifest_light

        read_manifest_light(path)
        return True
    except Exception:  # noqa: BLE001 - a damaged cached bundle is simply rebuilt
        return False


def ensure_demo_data(settings: StationSettings | None = None) -> Path:
    """Create the demo data set and the interleaved line folder if missing."""
    from inspection_core.data.demo import make_demo_dataset

    s = _settings(settings)
    root = demo_data_path(s)
    if not (root / "train" / "good").is_dir() or not any((root / "train" / "good").iterdir()):
        tmp = root.with_name(root.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        make_demo_dataset(tmp, seed=DEMO_SEED, size=DEMO_IMAGE_SIZE)
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


def ensure_demo_bundle(
    progress: Callable | None = None,
    cancel: object | None = None,
    settings: StationSettings | None = None,
    epochs: int = DEMO_EPOCHS,
) -> Path:
    """The demo bundle's path, training it first when it is not cached yet.

    ``progress`` receives ``ProgressEvent``s (data set, then training);
    ``cancel`` is a ``CancelToken``; cancelling raises ``Cancelled`` and leaves
    no half-written bundle behind.
    """
    from inspection_core.progress import CancelToken, ProgressEvent, null_progress

    s = _settings(settings)
    progress = progress or null_progress
    token = cancel if isinstance(cancel, CancelToken) else CancelToken()
    target = demo_bundle_path(s)
    if _bundle_ok(target):
        ensure_demo_data(s)
        return target
    progress(ProgressEvent("message", message="Creating the demo images…"))
    root = ensure_demo_data(s)
    token.raise_if_cancelled()

    progress(ProgressEvent("message", message="Training the demo model (first start only)…"))
    from inspection_core.bundle import save_bundle
    from inspection_core.config import ModelConfig, TrainConfig
    from inspection_core.training import train

    mcfg = ModelConfig(model="ganomaly", image_size=DEMO_MODEL_SIZE, base_width=16, latent_dim=64)
    tcfg = TrainConfig(epochs=epochs, batch_size=16, device="auto", seed=DEMO_SEED, samples_per_epoch=0)
    result = train(root, mcfg, tcfg, progress=progress, cancel=token)
    token.raise_if_cancelled()
    target.parent.mkdir(parents=True, exist_ok=True)
    manifest = dict(result.manifest)
    manifest["name"] = "demo"
    path = save_bundle(target, result.model, manifest)
    progress(ProgressEvent("done", message=f"Demo model saved to {path}"))
    return Path(path)


def main() -> int:
    """``python -m app.demo``: build (or find) the demo bundle from a terminal."""
    def show(e: object) -> None:
        kind = getattr(e, "kind", "")
        if kind in ("message", "done"):
            print(getattr(e, "message", ""))
        elif kind == "epoch":
            print(f"epoch {e.epoch}/{e.epochs}  {getattr(e, 'elapsed_s', 0):.0f} s")  # type: ignore[attr-defined]

    print(ensure_demo_bundle(show))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
