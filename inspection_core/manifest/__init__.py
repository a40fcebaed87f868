"""The bundle manifest, typed: what a bundle says about its model (ADR 0002, 0017).

:meth:`Manifest.from_dict` is the one reader of ``manifest.json``: it refuses
what this version cannot use with a message that names the field and shows the
value, migrates an older format one explicit step per version
(:data:`MIGRATIONS`), and gives frozen sections that the code reads by
attribute (``manifest.score_stats.map_scale``) instead of ``.get("…") or {}``.
:meth:`Manifest.to_dict` gives the dict back, equal to what was read (after
migration): each section keeps the keys this version does not know in its
``extra`` mapping, so nothing that a newer minor release wrote is lost when an
older one rewrites the threshold (ADR 0017).

``sections`` holds the section types, ``checks`` the refusals, ``migrations``
the steps between formats. No torch here: the GUI thread reads manifests.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from ..config import ModelConfig
from ..data.preprocess import Preprocessing
from ..frame_check import DEFAULT_LIMITS, FrameLimits
from ..types import Threshold
from .checks import FORMAT_VERSION, KNOWN_PRECISIONS, MAX_WEIGHTS_BYTES, BundleError, checked_version, is_number, validate
from .migrations import MIGRATIONS, migrate, migrate_1_to_2
from .sections import (
    Calibration,
    CalibrationEvent,
    DataSummary,
    FidelityCheck,
    FrameCheck,
    InferenceRecord,
    InputStats,
    Metrics,
    S,
    ScoreStats,
    Section,
    Split,
    ThresholdRecord,
    TrainingSummary,
    WeightsRecord,
    _plain,
)
from .taught import DefectTypes, Lineage


def _read_calibration_history(v: Any) -> tuple[Any, ...]:
    return tuple(CalibrationEvent.from_dict(e) if isinstance(e, Mapping) else copy.deepcopy(e) for e in v)


@dataclass(frozen=True)
class Manifest:
    """A bundle's manifest. Build one with :meth:`from_dict` (validated and
    migrated); change one with :func:`dataclasses.replace`."""

    model: ModelConfig
    preprocessing: Preprocessing
    threshold: ThresholdRecord
    weights: WeightsRecord
    format_version: int = FORMAT_VERSION
    app_version: str | None = None
    created: str | None = None
    name: str | None = None
    training: TrainingSummary | None = None
    score_stats: ScoreStats | None = None
    calibration: Calibration | None = None
    calibration_history: tuple[Any, ...] | None = None
    metrics: Metrics | None = None
    inference: InferenceRecord | None = None
    frame_check: FrameCheck | None = None
    #: optional: the bundle was taught from a parent (ADR 0020)
    lineage: Lineage | None = None
    #: optional: the defect-type classifier (ADR 0020)
    defect_types: DefectTypes | None = None
    #: top-level keys this version does not know (``demo``, a newer release's sections)
    extra: Mapping[str, Any] = field(default_factory=dict)
    #: the format the file had before migration (None: it had this one)
    migrated_from: int | None = field(default=None, compare=False)
    #: optional sections present as JSON null (kept so that to_dict gives them back)
    _nulls: frozenset[str] = field(default=frozenset(), repr=False, compare=False)

    _SECTIONS: ClassVar[dict[str, Callable[[Any], Any]]] = {
        "training": TrainingSummary.from_dict, "score_stats": ScoreStats.from_dict,
        "calibration": Calibration.from_dict, "calibration_history": _read_calibration_history,
        "metrics": Metrics.from_dict, "inference": InferenceRecord.from_dict, "frame_check": FrameCheck.from_dict,
        "lineage": Lineage.from_dict, "defect_types": DefectTypes.from_dict,
    }
    _TEXT: ClassVar[tuple[str, ...]] = ("app_version", "created", "name")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], path: str | os.PathLike[str] | None = None) -> "Manifest":
        """Validate, migrate and type ``d``; :class:`BundleError` (naming
        ``path``) says what this version cannot use. ``d`` is not changed."""
        m = migrate(checked_version(dict(d), path))
        validate(m, path)
        kwargs: dict[str, Any] = {k: m.get(k) for k in cls._TEXT if k in m}
        nulls = set()
        for key, read in cls._SECTIONS.items():
            if key in m:
                if m[key] is None:
                    nulls.add(key)
                else:
                    kwargs[key] = read(m[key])
        known = {"format_version", "model", "preprocessing", "threshold", "weights", *cls._TEXT, *cls._SECTIONS}
        return cls(model=ModelConfig.from_dict(m["model"]), preprocessing=Preprocessing.from_dict(m["preprocessing"]),
                   threshold=ThresholdRecord.from_dict(m["threshold"]), weights=WeightsRecord.from_dict(m["weights"]),
                   format_version=m["format_version"], extra={k: copy.deepcopy(v) for k, v in m.items() if k not in known},
                   migrated_from=d["format_version"] if d["format_version"] != m["format_version"] else None,
                   _nulls=frozenset(nulls), **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The manifest as JSON-ready data (what ``from_dict`` read, after migration)."""
        out: dict[str, Any] = {"format_version": self.format_version, "model": self.model.to_dict(),
                               "preprocessing": self.preprocessing.to_dict(), "threshold": self.threshold.to_dict(),
                               "weights": self.weights.to_dict()}
        for key in (*self._TEXT, *self._SECTIONS):
            value = getattr(self, key)
            if value is not None:
                out[key] = _plain(value)
            elif key in self._nulls:
                out[key] = None
        out.update(_plain(self.extra))
        return out

    # --------------------------------------------------------------- reading
    @property
    def bundle_id(self) -> str:
        """The first 12 hex digits of the weights' sha256: which weights, wherever the file is."""
        return self.weights.sha256[:12] or "unsaved"

    @property
    def data(self) -> DataSummary:
        """The training data's summary (empty when not recorded)."""
        return (self.training.data if self.training else None) or DataSummary()

    @property
    def frame_limits(self) -> FrameLimits:
        """The frame check's limits (:data:`frame_check.DEFAULT_LIMITS` for a bundle made before it)."""
        return self.frame_check.limits if self.frame_check else DEFAULT_LIMITS

    def with_threshold(self, threshold: Threshold) -> "Manifest":
        """A copy with φ changed (how it was chosen kept)."""
        return replace(self, threshold=replace(self.threshold, high=threshold.high, low=threshold.low))


def section(manifest: "Manifest | Mapping[str, Any] | None", key: str, kind: type[S]) -> S | None:
    """The section ``key`` of a :class:`Manifest`, or read leniently from a
    plain (possibly partial) manifest dict, for the functions that still take
    either; None when absent."""
    if isinstance(manifest, Manifest):
        value = getattr(manifest, key)
        return value if isinstance(value, kind) else None
    raw = (manifest or {}).get(key)
    return kind.from_dict(raw) if isinstance(raw, Mapping) else None



__all__ = ["FORMAT_VERSION", "KNOWN_PRECISIONS", "MAX_WEIGHTS_BYTES", "MIGRATIONS", "BundleError", "Calibration",
           "CalibrationEvent", "DataSummary", "DefectTypes", "FidelityCheck", "FrameCheck", "InferenceRecord", "InputStats",
           "Lineage", "Manifest", "Metrics", "ScoreStats", "Section", "Split", "ThresholdRecord", "TrainingSummary",
           "WeightsRecord", "is_number", "migrate", "migrate_1_to_2", "section"]
