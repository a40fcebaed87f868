"""Reading a bundle's manifest without importing torch.

The GUI only needs the manifest to show "model, trained when, on what,
threshold"; :func:`inspection_core.bundle.read_manifest` reads it without torch
and with the same bounds and checks as loading the bundle (a member that
unpacks to gigabytes is refused before it is unpacked). Loading the weights
always goes through ``inspection_core`` on a worker thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def read_manifest_light(path: Path | str) -> dict[str, Any]:
    """The manifest of the bundle at ``path``; ValueError naming the file when unreadable."""
    from inspection_core.bundle import read_manifest

    return read_manifest(Path(path))


def describe_light(manifest: dict[str, Any]) -> str:
    """One line for the status bar: name, model, size, threshold, creation date."""
    model = manifest.get("model", {}) or {}
    thr = manifest.get("threshold", {}) or {}
    high, low = thr.get("high"), thr.get("low")
    if high is None:
        phi = "φ=?"
    elif low is None:
        phi = f"φ={float(high):.4g}"
    else:
        phi = f"φ=[{float(low):.4g}, {float(high):.4g}]"
    created = str(manifest.get("created", ""))[:16].replace("T", " ")
    return f"{manifest.get('name', '?')}: {model.get('model', '?')} {model.get('image_size', '?')} px, {phi}, {created}"
