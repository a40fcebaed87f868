"""Reading a bundle's manifest without importing torch.

``inspection_core.bundle`` imports torch at module level (seconds on a small
machine); the GUI only needs the manifest to show "model, trained when, on
what, threshold", so it reads ``manifest.json`` from the zip directly. Loading
the weights always goes through ``inspection_core`` on a worker thread.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"  # the same name as inspection_core.bundle.MANIFEST_NAME


def read_manifest_light(path: Path | str) -> dict[str, Any]:
    """The manifest of the bundle at ``path``; ValueError naming the file when unreadable."""
    p = Path(path)
    try:
        with zipfile.ZipFile(p) as zf:
            data = json.loads(zf.read(MANIFEST_NAME).decode("utf-8"))
    except FileNotFoundError:
        raise ValueError(f"model bundle '{p}': not found") from None
    except (zipfile.BadZipFile, KeyError, OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"model bundle '{p}': not a readable bundle ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"model bundle '{p}': manifest is not a JSON object")
    return data


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
