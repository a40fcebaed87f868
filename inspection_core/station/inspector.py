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
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import frame_check
from ..data.preprocess import Preprocessing, normalize, to_geometry, to_model_image
from ..manifest import Manifest
from ..types import Prediction, Threshold, Verdict
from .export_format import ExportError, ExportRecord, is_export_dir, read_export
from .model import ExportedModel, to_image, to_input

log = logging.getLogger(__name__)


def torch_available() -> bool:
    """Whether PyTorch can be imported here (a station build has none)."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):  # a blocked or broken torch
        return False


class StationInspector:
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

    @property
    def threshold(self) -> Threshold:
        return self._threshold

    @threshold.setter
    def threshold(self, value: Threshold) -> None:
        self._threshold = value

    def inference_record(self) -> dict[str, str]:
        return {"precision": self.precision, "engine": self.engine, "device": "cpu"}

    # --------------------------------------------------------------- scoring
    def prepare(self, image: np.ndarray) -> np.ndarray:
        return to_model_image(image, self.preprocessing)

    def check_frame(self, image: np.ndarray) -> tuple[np.ndarray, str]:
        geometry = to_geometry(image, self.preprocessing)
        reason = self.frame_limits.reason(frame_check.frame_stats(geometry)) or ""
        return normalize(geometry, self.preprocessing), reason

    def _score(self, batch: np.ndarray | Sequence[np.ndarray]
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        arr = np.asarray(batch) if isinstance(batch, np.ndarray) else np.stack(
            [b[:, :, None] if np.ndim(b) == 2 else b for b in batch])
        x = to_input(arr)
        with self._lock:
            out = self.model.score(x)
        recon = out.get("reconstruction")
        texture = out.get("texture")
        return (out["score"], out["anomaly_map"], None if recon is None else to_image(recon),
                None if texture is None else np.asarray(texture, dtype=np.float64).reshape(-1))

    def score_images(self, batch: np.ndarray | Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        scores, maps, recon, _ = self._score(batch)
        return scores, maps, recon

    def classify(self, prepared: np.ndarray, maps: np.ndarray) -> list[Any]:
        return []

    def _predictions(self, prepared: np.ndarray, reasons: Sequence[str], t0: float) -> list[Prediction]:
        scores, maps, recon, texture = self._score(prepared)
        elapsed = (time.perf_counter() - t0) * 1000.0 / max(1, len(prepared))
        thr = self._threshold
        preds = []
        for i, s in enumerate(scores):
            preds.append(Prediction(
                score=float(s),
                verdict=Verdict.INVALID if reasons[i] else thr.verdict(float(s)),
                threshold=thr,
                anomaly_map=maps[i],
                heat=np.clip(maps[i] / self.map_scale, 0.0, 1.0).astype(np.float32),
                image=prepared[i],
                reconstruction=None if recon is None else recon[i],
                latency_ms=elapsed,
                texture_part=0.0 if texture is None else float(texture[i]),
                reason=reasons[i],
            ))
        return preds

    def predict(self, image: np.ndarray) -> Prediction:
        t0 = time.perf_counter()
        prepared, reason = self.check_frame(image)
        return self._predictions(prepared[None], [reason], t0)[0]

    def predict_batch(self, images: Sequence[np.ndarray]) -> list[Prediction]:
        if len(images) == 0:
            return []
        t0 = time.perf_counter()
        return self.predict_checked([self.check_frame(im) for im in images], t0)

    def predict_checked(self, checked: Sequence[tuple[np.ndarray, str]], t0: float | None = None) -> list[Prediction]:
        """:meth:`predict_batch` of images :meth:`check_frame` has prepared already
        (``inspector predict`` prepares the next batch while this one scores)."""
        if len(checked) == 0:
            return []
        t0 = time.perf_counter() if t0 is None else t0
        return self._predictions(np.stack([c[0] for c in checked]), [c[1] for c in checked], t0)


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
