"""A PatchCore bundle trained with the command line's defaults (``inspector
train --data DIR --model patchcore``), kept in a work folder and reused by
the next benchmark that asks for the same data set."""

from __future__ import annotations

import time
from pathlib import Path


def patchcore_bundle(data: Path, work: Path) -> tuple[Path, float | None]:
    """(the bundle, its training seconds; None when an earlier run's bundle was reused)."""
    from inspection_core.bundle import bundle_path
    from inspection_core.cli.main import main

    out = bundle_path(work / f"{data.name}_patchcore")
    if out.is_file():
        return out, None
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rc = main(["train", "--data", str(data), "--model", "patchcore", "--out", str(out), "--device", "cpu"])
    if rc != 0 or not out.is_file():
        raise SystemExit(f"training PatchCore on {data} failed (exit {rc})")
    return out, time.perf_counter() - t0


__all__ = ["patchcore_bundle"]
