"""The Inspector: a loaded bundle that turns images into Predictions.

Every path that scores images (evaluation, calibration, the CLI's predict, the
desktop app's live view) goes through :meth:`Inspector.score_images`, which
uses the single preprocessing path and the model in eval mode, so that a score
never depends on which path or which batch computed it.

The model runs on the fastest scoring path that keeps the bundle's scores
(see :mod:`inspection_core.acceleration`): chosen, packed and warmed up here,
at load, so the first part inspected pays no one-time cost.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Sequence

import numpy as np
import torch

from . import acceleration
from .bundle import Bundle, BundleError, load_bundle
from .data.preprocess import Preprocessing, from_tensor, to_tensor
from .defect_types import DefectTypesError, TypeAnswer, TypeClassifier
from .device import resolve_device
from .manifest import Manifest
from .scorer import ScoreArrays, Scorer
from .types import Threshold

log = logging.getLogger(__name__)

#: load-time self-check limits (relative score difference to eager fp32 on a
#: fixed pseudo-random image): catches a broken kernel, not a fidelity test
_SELF_CHECK_RTOL = {"fp32": 1e-3, "bf16": 0.15, "fp16": 0.15}


def _self_check_input(channels: int, size: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1234)
    return torch.rand(1, channels, size, size, generator=g) * 2.0 - 1.0


class Inspector(Scorer):
    """Scores images with one model bundle.

    Thread-safety: one Inspector may be shared, calls are serialised by a lock
    (the GUI uses one scoring worker anyway).
    """

    def __init__(
        self,
        bundle: Bundle | str | os.PathLike[str],
        device: str | torch.device = "auto",
        *,
        precision: str | None = None,
    ) -> None:
        """``precision``: "auto" (default; also ``$INSPECTOR_PRECISION``),
        "eager" (the plain fp32 reference), "fp32", "bf16" or "fp16" (CUDA)."""
        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        self.device = resolve_device(device)
        self.model = self.bundle.build_model(self.device)
        self.preprocessing: Preprocessing = self.bundle.preprocessing
        self._threshold = self.bundle.threshold
        #: the anomaly map's value shown at full heat (fixed at training)
        self.map_scale = self.meta.score_stats.heat_scale if self.meta.score_stats else 1.0
        #: what a frame must meet to be judged as a part (blank, overexposed… frames are INVALID)
        self.frame_limits = self.meta.frame_limits
        self._lock = threading.Lock()
        #: the defect-type classifier (None: the bundle carries none) and why it cannot run, if so
        self.types: TypeClassifier | None = None
        self.types_problem = ""
        self._type_embed: Any = None
        self._load_types()
        self.path = self._build_path(precision)
        own = acceleration.threshold_for(self.meta, self.precision)
        if own is not None:  # calibrated on bf16, scored here with fp32: the fp32 path's own threshold
            self._threshold = Threshold.from_dict(own)
            log.info("%s: this station scores with fp32; using the fp32 threshold stored with the bundle's "
                     "fidelity check (%.6g)", self.name, self._threshold.high)

    def _load_types(self) -> None:
        """The bundle's defect-type classifier and its feature function; a
        record that cannot be read refuses the bundle, a backbone whose
        weights are not on this station leaves FAILs untyped (said once)."""
        record = self.meta.defect_types
        if record is None:
            return
        try:
            self.types = TypeClassifier.from_record(record.to_dict())
        except DefectTypesError as exc:
            raise BundleError(self.bundle.path, f"its defect-type classifier cannot be used: {exc}") from None
        from .backbones import WeightsUnavailableError
        from .defect_types.features import build_embed

        try:
            self._type_embed = build_embed(self.model, record.features or {"source": "model"}, self.device)
        except (WeightsUnavailableError, ValueError) as exc:
            self.types, self.types_problem = None, f"defect types are not named on this station: {exc}"
            log.warning("%s: %s", self.name, self.types_problem)

    def classify(self, prepared: np.ndarray, maps: np.ndarray) -> list[TypeAnswer]:
        """The defect type of each prepared image (N, S, S, C) with its anomaly
        map (N, S, S); empty when the bundle has no classifier."""
        if self.types is None or len(prepared) == 0:
            return []
        from .defect_types.features import region_features

        with self._lock:
            feats = region_features(self._type_embed, np.asarray(prepared), np.asarray(maps), self.device)
        return self.types.predict(feats)

    def _build_path(self, precision: str | None) -> acceleration.ScoringPath:
        """Choose, build and warm up the scoring path (one-time costs happen
        here, at load); fall back to the plain model if the fast path fails
        its self-check."""
        family = self.bundle.model_config.model
        chosen = acceleration.choose_precision(precision, family, self.device, self.meta)
        pp = self.preprocessing
        example = _self_check_input(pp.channels, pp.image_size).to(self.device)
        path = self._checked_path(chosen, example)
        auto = acceleration.requested_precision(precision) == "auto"
        if path.precision == "bf16" and self.device.type == "cpu" and auto and not acceleration.cpu_bf16_is_fast():
            # bf16 runs natively here but its convolutions are not faster: keep it only if it is
            fp32 = self._checked_path("fp32", example)
            path, t_bf16, t_fp32 = acceleration.faster_path(path, fp32, example)
            log.info("%s: this CPU's bf16 is not fast; bf16 %.1f ms, fp32 %.1f ms per image: scoring with %s",
                     self.name, t_bf16 * 1e3, t_fp32 * 1e3, path.engine)
        with torch.inference_mode():  # warm-up: kernels, oneDNN primitives, cuDNN autotuning
            path(example)
        path.single_threads = acceleration.one_image_threads(path, example)  # the live line's one image
        return path

    def _checked_path(self, precision: str, example: torch.Tensor) -> acceleration.ScoringPath:
        """The path for ``precision``, built and self-checked against the
        plain model (the plain model itself where that check fails)."""
        pp = self.preprocessing
        path = acceleration.build_path(self.model, self.device, precision, pp.image_size, pp.channels)
        if path.module is not self.model:
            try:
                rel = acceleration.check_path(path, self.model, example, _SELF_CHECK_RTOL.get(path.precision, 1e-3))
                log.info("%s: scoring with %s (self-check %.2e)", self.name, path.engine, rel)
            except Exception as exc:  # noqa: BLE001 - never inspect with a broken fast path
                log.warning("%s: %s; using the plain fp32 path", self.name, exc)
                path = acceleration.eager_path(self.model, self.device)
        return path

    @property
    def precision(self) -> str:
        """Numeric precision of the path in use ("fp32", "bf16", "fp16")."""
        return self.path.precision

    @property
    def engine(self) -> str:
        """The scoring path in use, e.g. "cpu-onednn-packed-bf16"."""
        return self.path.engine

    def inference_record(self) -> dict[str, str]:
        """What to store as ``manifest["inference"]`` when a threshold is
        calibrated with this Inspector."""
        return {"precision": self.precision, "engine": self.engine, "device": str(self.device)}

    # ------------------------------------------------------------------ info
    @property
    def meta(self) -> Manifest:
        """The bundle's typed manifest."""
        return self.bundle.meta

    @property
    def manifest(self) -> dict[str, Any]:
        """The manifest as a plain dict (for the readers not yet converted to :attr:`meta`)."""
        return self.bundle.manifest

    @property
    def name(self) -> str:
        return self.bundle.name

    @property
    def bundle_id(self) -> str:
        return self.bundle.bundle_id

    # --------------------------------------------------------------- scoring
    @torch.inference_mode()
    def _score(self, batch: np.ndarray | Sequence[np.ndarray]) -> ScoreArrays:
        """:meth:`score_images` and each score's whole-image texture part (or None)."""
        x = to_tensor(batch).to(self.device, non_blocking=True)
        with self._lock:
            out = self.path(x)
        scores = out.scores.detach().float().cpu().numpy().astype(np.float64)
        maps = out.anomaly_map.detach().float().cpu().numpy().astype(np.float32)
        recon = None if out.reconstruction is None else from_tensor(out.reconstruction.detach().float().cpu())
        texture = None if out.texture is None else out.texture.detach().float().cpu().numpy().astype(np.float64)
        return scores, maps, recon, texture
