"""The benchmarks' ``--torch-home-from-shared``: ../shared/weights' checkpoints
in a temporary torch cache, so that torchvision's own loader (and its hash
check) reads them as a user's first download would have left them."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def torch_home_from_shared(tmp: Path) -> Path:
    """Copy ``../shared/weights/*.pth`` into ``tmp/torch/hub/checkpoints`` and
    point ``$TORCH_HOME`` there; returns the torch home."""
    ck = tmp / "torch" / "hub" / "checkpoints"
    ck.mkdir(parents=True, exist_ok=True)
    for f in (ROOT.parent / "shared" / "weights").glob("*.pth"):
        shutil.copy(f, ck / f.name)
    os.environ["TORCH_HOME"] = str(tmp / "torch")
    return tmp / "torch"


def work_folder(work: Path | None, prefix: str, from_shared: bool) -> tuple[Path, tempfile.TemporaryDirectory | None]:
    """A benchmark's work folder: ``work`` (made if missing, kept), else a
    temporary one (the second value: keep it referenced while it is used);
    with ``from_shared``, ../shared/weights' checkpoints in its torch cache."""
    tmp = tempfile.TemporaryDirectory(prefix=prefix) if work is None else None
    folder = work if work is not None else Path(tmp.name)  # type: ignore[union-attr]
    folder.mkdir(parents=True, exist_ok=True)
    if from_shared:
        torch_home_from_shared(folder)
    return folder, tmp
