"""The station's Inspector: an exported model turned into Predictions, no torch.

It keeps the scoring contract of :class:`inspection_core.inference.Inspector`
(the one preprocessing path, the frame check before scoring, the heat map
scaled by the statistics fixed at training, each image's score independent of
its batch) with the graph's own threshold from its export's parity check.
A FAIL's defect type needs the backbone's features in PyTorch: an exported
model leaves FAILs untyped and says so once (``types_problem``).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..data.preprocess import Preprocessing
from ..manifest import Manifest
from ..scorer import ScoreArrays, Scorer
from .export_format import ExportError, ExportRecord, is_export_dir, read_export
from .model import ExportedModel, to_image, to_input

log = logging.getLogger(__name__)


def torch_available() -> bool:
    """Whether PyTorch can be imported here (a station build has none)."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):  # a blocked or broken torch
        return False


class StationInspector(Scorer):
    """Scores images with an exported model (see module docstring).
    Thread-safety: calls are serialised by a lock, as the PyTorch Inspector's."""

    device = "cpu"

    def __init__(self, export: ExportRecord | str | os.PathLike[str], runtime: str = "auto",
                 threads: int | None = None) -> None:
        self.record = export if isinstance(export, ExportRecord) else read_export(export)
        self.model = ExportedModel(self.record, runtime=runtime, threads=threads)
        self.path = self.record.path
        self._meta: Manifest = self.record.meta.with_threshold(self.record.threshold)
        self.preprocessing: Preprocessing = self._meta.preprocessing
        self._threshold = self.record.threshold
        stats = self._meta.score_stats
        self.map_scale = stats.heat_scale if stats else 1.0
        self.frame_limits = self._meta.frame_limits
        self._lock = threading.Lock()
        self.types = None
        self.types_problem = ("defect types are not named on this station (an exported model carries no type "
                              "classifier)") if self._meta.defect_types is not None else ""
        self._warm_up()

    def _warm_up(self) -> None:
        """One image through the graph at load: the first part pays no one-time cost."""
        pp = self.preprocessing
        g = np.random.default_rng(1234)
        x = g.uniform(-1.0, 1.0, size=(1, pp.channels, pp.image_size, pp.image_size)).astype(np.float32)
        out = self.model.score(x)
        if not np.all(np.isfinite(out["score"])):
            raise ExportError(self.record.path, "its graph gives a non-finite score on a test image: refused")

    # ------------------------------------------------------------------ info
    @property
    def meta(self) -> Manifest:
        """The bundle's typed manifest, with this graph's threshold."""
        return self._meta

    @property
    def manifest(self) -> dict[str, Any]:
        return self._meta.to_dict()

    @property
    def name(self) -> str:
        return self._meta.name or self.record.path.name

    @property
    def bundle_id(self) -> str:
        return self.record.bundle_id

    @property
    def precision(self) -> str:
        return self.record.precision

    @property
    def engine(self) -> str:
        return self.model.engine

    def inference_record(self) -> dict[str, str]:
        return {"precision": self.precision, "engine": self.engine, "device": "cpu"}

    # --------------------------------------------------------------- scoring
    def _score(self, batch: np.ndarray | Sequence[np.ndarray]) -> ScoreArrays:
        arr = np.asarray(batch) if isinstance(batch, np.ndarray) else np.stack(
            [b[:, :, None] if np.ndim(b) == 2 else b for b in batch])
        x = to_input(arr)
        with self._lock:
            out = self.model.score(x)
        recon = out.get("reconstruction")
        texture = out.get("texture")
        return (out["score"], out["anomaly_map"], None if recon is None else to_image(recon),
                None if texture is None else np.asarray(texture, dtype=np.float64).reshape(-1))


def open_inspector(path: str | os.PathLike[str], device: str = "auto", *, runtime: str = "auto") -> Any:
    """The inspector for ``path``: an exported model's folder gives a
    :class:`StationInspector`; a ``.inspector`` bundle gives the PyTorch
    Inspector, or (where PyTorch is not installed) a ValueError that says to
    export it."""
    p = Path(path)
    if is_export_dir(p):
        if device not in ("auto", "cpu"):
            log.warning("%s: an exported model scores on the CPU here (device %s not used)", p, device)
        return StationInspector(p, runtime=runtime)
    from ..bundle import existing_bundle

    p = existing_bundle(p)  # NAME means NAME.inspector, also beside a data folder called NAME
    if p.is_dir():
        raise ExportError(p, "is a folder without an exported model's manifest.json (expected a .inspector bundle "
                             "or a folder made by 'inspector export')")
    if not torch_available():
        raise ValueError(f"model bundle '{p}': this station has no PyTorch, so it scores exported models only; "
                         f"on the engineer's workstation run: inspector export --bundle {p.name} --format onnx --out DIR, "
                         "and open DIR here")
    from ..inference import Inspector

    return Inspector(p, device=device)
