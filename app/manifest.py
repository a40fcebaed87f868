"""Reading a model's manifest without importing torch.

The GUI only needs the manifest to show "model, trained when, on what,
threshold". A model is a ``.inspector`` bundle, whose manifest
:func:`inspection_core.bundle.read_manifest` reads without torch and with the
same bounds and checks as loading the bundle (a member that unpacks to
gigabytes is refused before it is unpacked), or an exported model's folder
(``inspector export``), whose ``manifest.json`` holds the bundle's manifest
and the export's own threshold. Loading the weights always goes through
``inspection_core`` on a worker thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def read_manifest_light(path: Path | str) -> dict[str, Any]:
    """The manifest of the model at ``path``; ValueError naming the file when unreadable.

    For an exported model's folder: its bundle's manifest with the export's
    own threshold (the one its scores are judged by), and ``exported``:
    the graph's format and precision."""
    from inspection_core.station import is_export_dir

    if is_export_dir(path):
        from inspection_core.station import read_export

        record = read_export(path)
        manifest = record.meta.with_threshold(record.threshold).to_dict()
        manifest["exported"] = {"format": record.format, "precision": record.precision, "bundle_id": record.bundle_id}
        return manifest
    from inspection_core.bundle import read_manifest

    return read_manifest(Path(path))


def describe_light(manifest: dict[str, Any]) -> str:
    """One line for the status bar: name, model, size, threshold, creation date
    (and the graph's format for an exported model)."""
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
    exported = manifest.get("exported") or {}
    how = f", exported {exported.get('format', '?')} {exported.get('precision', '')}".rstrip() if exported else ""
    return f"{manifest.get('name', '?')}: {model.get('model', '?')} {model.get('image_size', '?')} px, {phi}{how}, {created}"
