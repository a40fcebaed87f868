"""The exported-model folder: ``manifest.json`` beside the graph file.

``manifest.json``::

    {"format": "inspector-export", "format_version": 1,
     "bundle": {...the bundle's manifest...},
     "export": {"format": "onnx" | "openvino", "file": "model.onnx" | "model.xml",
                "precision": "fp32" | "int8", "input": "image",
                "outputs": ["score", "anomaly_map", ("reconstruction"), ("texture")],
                "chunk": N | null,    # images per call of the graph (the family's CPU chunk; null: any batch)
                "threshold": {"high": ..., "low": ...},   # this graph's own threshold (parity check)
                "parity": {...}, "source": {"bundle_id": ..., "file": ..., "sha256": ...},
                "created": ..., "versions": {...}}}

No torch here: the station reads it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..manifest import Manifest
from ..types import Threshold

EXPORT_FORMAT = "inspector-export"
EXPORT_FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
#: graph formats and the file each keeps its graph in
GRAPH_FILES = {"onnx": "model.onnx", "openvino": "model.xml"}
#: the largest manifest read (a calibration record of many scores is well under it)
MAX_MANIFEST_BYTES = 64 << 20


class ExportError(ValueError):
    """An exported model that cannot be used; the message names the folder."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path, self.problem = Path(path), problem
        super().__init__(f"exported model '{path}': {problem}")


@dataclass(frozen=True)
class ExportRecord:
    """An exported model as read from its folder."""

    path: Path
    #: the bundle's manifest, typed
    meta: Manifest
    #: "onnx" or "openvino"
    format: str
    graph: Path
    precision: str
    outputs: tuple[str, ...]
    #: the graph's own threshold (from its parity check)
    threshold: Threshold
    parity: Mapping[str, Any] = field(default_factory=dict)
    source: Mapping[str, Any] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict)
    #: images per call of the graph (None: a whole batch in one call)
    chunk: int | None = None

    @property
    def bundle_id(self) -> str:
        return str(self.source.get("bundle_id") or self.meta.bundle_id)


def is_export_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder with an export's ``manifest.json``."""
    p = Path(path)
    return p.is_dir() and (p / MANIFEST_FILE).is_file()


def read_export(path: str | os.PathLike[str]) -> ExportRecord:
    """The export in folder ``path``; :class:`ExportError` says what is wrong."""
    p = Path(path)
    if not p.exists():
        raise ExportError(p, "not found")
    if not p.is_dir():
        raise ExportError(p, "is a file, expected an exported model's folder (made by 'inspector export')")
    mf = p / MANIFEST_FILE
    if not mf.is_file():
        raise ExportError(p, f"has no {MANIFEST_FILE}: not an exported model (made by 'inspector export')")
    try:
        if mf.stat().st_size > MAX_MANIFEST_BYTES:
            raise ExportError(p, f"{MANIFEST_FILE} is larger than {MAX_MANIFEST_BYTES >> 20} MB: refused")
        d = json.loads(mf.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, ExportError):
            raise
        raise ExportError(p, f"{MANIFEST_FILE} is unreadable ({str(exc)[:200]})") from None
    if not isinstance(d, dict) or d.get("format") != EXPORT_FORMAT:
        raise ExportError(p, f"{MANIFEST_FILE} is not an exported model's manifest")
    version = d.get("format_version")
    if not isinstance(version, int) or version > EXPORT_FORMAT_VERSION:
        raise ExportError(p, f"export format {version!r} is newer than this station reads ({EXPORT_FORMAT_VERSION}): "
                             "update the station")
    ex, bundle = d.get("export"), d.get("bundle")
    if not isinstance(ex, dict) or not isinstance(bundle, dict):
        raise ExportError(p, f"{MANIFEST_FILE} lacks its 'export' or 'bundle' section")
    fmt = ex.get("format")
    if fmt not in GRAPH_FILES:
        raise ExportError(p, f"unknown graph format {fmt!r} (known: {', '.join(GRAPH_FILES)})")
    graph = p / str(ex.get("file") or GRAPH_FILES[fmt])
    if graph.parent != p or not graph.is_file():
        raise ExportError(p, f"its graph file '{graph.name}' is missing")
    if fmt == "openvino" and not graph.with_suffix(".bin").is_file():
        raise ExportError(p, f"its weights file '{graph.with_suffix('.bin').name}' is missing")
    chunk = ex.get("chunk")
    if chunk is not None and (not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1):
        raise ExportError(p, f"{MANIFEST_FILE} is invalid (chunk {chunk!r}: expected a positive whole number or null)")
    try:
        meta = Manifest.from_dict(bundle, p)
        thr = ex.get("threshold") or {}
        threshold = Threshold(high=float(thr["high"]), low=None if thr.get("low") is None else float(thr["low"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ExportError(p, f"{MANIFEST_FILE} is invalid ({str(exc)[:200]})") from None
    outputs = tuple(str(o) for o in ex.get("outputs") or ("score", "anomaly_map"))
    if outputs[:2] != ("score", "anomaly_map"):
        raise ExportError(p, f"the graph's outputs {list(outputs)} do not start with score, anomaly_map")
    return ExportRecord(path=p, meta=meta, format=fmt, graph=graph, precision=str(ex.get("precision") or "fp32"),
                        outputs=outputs, threshold=threshold, parity=dict(ex.get("parity") or {}),
                        source=dict(ex.get("source") or {}), raw=d, chunk=chunk)
