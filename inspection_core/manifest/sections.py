"""The manifest's sections as frozen dataclasses: the keys this version knows
as fields, the others kept in ``extra`` (ADR 0017). No torch here."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypeVar

from ..frame_check import DEFAULT_LIMITS, FrameLimits, check_section
from ..types import Threshold


def _plain(value: Any) -> Any:
    """JSON-ready copy of a section value (sections, tuples and mappings included)."""
    if isinstance(value, (Section, FrameCheck)):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


S = TypeVar("S", bound="Section")


@dataclass(frozen=True, kw_only=True)
class Section:
    """A manifest section: its known keys as fields, the others in ``extra``.
    ``to_dict`` writes a field that was read or is set (not None), so a key
    that was absent stays absent."""

    extra: Mapping[str, Any] = field(default_factory=dict)
    _given: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    #: fields that hold a section (or a mapping of them): how to read one
    _nested: ClassVar[dict[str, Callable[[Any], Any]]] = {}

    @classmethod
    def _names(cls) -> set[str]:
        return {f.name for f in fields(cls)} - {"extra", "_given"}

    @classmethod
    def from_dict(cls: type[S], d: Mapping[str, Any]) -> S:
        names = cls._names()
        kwargs: dict[str, Any] = {}
        for key in names & d.keys():
            read = cls._nested.get(key)
            value = d[key]
            kwargs[key] = read(value) if read is not None and isinstance(value, Mapping) else copy.deepcopy(value)
        extra = {k: copy.deepcopy(v) for k, v in d.items() if k not in names}
        return cls(**kwargs, extra=extra, _given=frozenset(names & d.keys()))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name in ("extra", "_given"):
                continue
            value = getattr(self, f.name)
            if value is not None or f.name in self._given:
                out[f.name] = _plain(value)
        out.update(_plain(self.extra))
        return out


@dataclass(frozen=True, kw_only=True)
class ThresholdRecord(Section):
    """``threshold``: φ (``high``; ``low`` for a review band) and how it was chosen."""

    high: float = math.inf
    low: float | None = None
    strategy: str | None = None
    target: float | None = None
    #: set from the held-out good images at training, not yet calibrated on defects
    provisional: bool | None = None

    @property
    def threshold(self) -> Threshold:
        return Threshold(float(self.high), None if self.low is None else float(self.low))


@dataclass(frozen=True, kw_only=True)
class ScoreStats(Section):
    """``score_stats``: the held-out good images' scores and the anomaly map's scale."""

    n: int | None = None
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    q50: float | None = None
    q95: float | None = None
    q99: float | None = None
    max: float | None = None
    map_scale: float | None = None
    source: str | None = None

    @property
    def heat_scale(self) -> float:
        """The anomaly map's value shown at full heat (1 where none is recorded)."""
        return float(self.map_scale or 0.0) or 1.0


@dataclass(frozen=True, kw_only=True)
class InputStats(Section):
    """``training.data.input_stats``: what the training images looked like."""

    n: int | None = None
    #: mean brightness quantiles (1 %, 50 %, 99 %)
    brightness: list[float] | None = None
    #: the most common (height, width)
    shape: list[int] | None = None


@dataclass(frozen=True, kw_only=True)
class DataSummary(Section):
    """``training.data``: the data set a bundle was trained on."""

    _nested: ClassVar[dict[str, Callable[[Any], Any]]] = {"input_stats": InputStats.from_dict}

    layout: str | None = None
    root: str | None = None
    #: ``DatasetIndex.fingerprint()`` of the folder (which images, not where)
    fingerprint: str | None = None
    channels: int | None = None
    n_train: int | None = None
    n_val: int | None = None
    n_test_good: int | None = None
    n_test_defect: int | None = None
    n_masks: int | None = None
    defect_types: Mapping[str, int] | None = None
    n_skipped: int | None = None
    skipped: list[Any] | None = None
    input_stats: InputStats | None = None


@dataclass(frozen=True, kw_only=True)
class Split(Section):
    """``training.split``: how the images were divided (the classifier's test paths too)."""

    kind: str | None = None
    seed: int | None = None
    val_fraction: float | None = None
    test_paths: list[str] | None = None


@dataclass(frozen=True, kw_only=True)
class TrainingSummary(Section):
    """``training``: how the bundle was trained (``config`` is ``TrainConfig.to_dict()``)."""

    _nested: ClassVar[dict[str, Callable[[Any], Any]]] = {"data": DataSummary.from_dict, "split": Split.from_dict}

    config: Mapping[str, Any] | None = None
    data: DataSummary | None = None
    split: Split | None = None
    fit_mode: str | None = None
    epochs_run: int | None = None
    updates: int | None = None
    best_epoch: int | None = None
    best_metric: str | None = None
    duration_s: float | None = None
    device: str | None = None
    precision: str | None = None
    fit: Mapping[str, Any] | None = None
    history: list[Any] | None = None
    stopped_reason: str | None = None

    @property
    def seed(self) -> int:
        """The seed the training split its data with (0 when not recorded)."""
        seed = (self.config or {}).get("seed", self.split.seed if self.split else None)
        return int(seed or 0)


@dataclass(frozen=True, kw_only=True)
class Calibration(Section):
    """``calibration``: the latest calibration and the scores it was made on."""

    strategy: str | None = None
    target: float | None = None
    margin: float | None = None
    time: str | None = None
    note: str | None = None
    scores: list[float] | None = None
    labels: list[int] | None = None
    #: image names, relative to ``root`` where that is known
    paths: list[str] | None = None
    root: str | None = None
    auroc: float | None = None
    ap: float | None = None
    operating_point: Mapping[str, Any] | None = None
    #: the scoring path (``inference.precision``) the scores came from
    precision_path: str | None = None


@dataclass(frozen=True, kw_only=True)
class CalibrationEvent(Section):
    """One ``calibration_history`` entry: a threshold change."""

    time: str | None = None
    strategy: str | None = None
    target: float | None = None
    old: Mapping[str, Any] | None = None
    new: Mapping[str, Any] | None = None
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class FidelityCheck(Section):
    """``inference.fidelity[precision]``: a fast path compared with fp32
    (``fidelity_rule.Fidelity.to_dict()``)."""

    precision: str | None = None
    engine: str | None = None
    ok: bool | None = None
    n: int | None = None
    changed: int | None = None
    changed_rate: float | None = None
    auroc_fp32: float | None = None
    auroc: float | None = None
    #: each path's own threshold by the check's rule
    threshold_fp32: Mapping[str, Any] | None = None
    threshold: Mapping[str, Any] | None = None
    max_rel: float | None = None
    median_rel: float | None = None
    checked_on: str | None = None


def _fidelity_checks(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: FidelityCheck.from_dict(v) if isinstance(v, Mapping) else copy.deepcopy(v) for k, v in d.items()}


@dataclass(frozen=True, kw_only=True)
class InferenceRecord(Section):
    """``inference``: the scoring path the threshold belongs to and the fast paths' checks."""

    _nested: ClassVar[dict[str, Callable[[Any], Any]]] = {"fidelity": _fidelity_checks}

    precision: str | None = None
    engine: str | None = None
    device: str | None = None
    fidelity: Mapping[str, FidelityCheck] | None = None

    @property
    def calibrated_on(self) -> str:
        return self.precision or "fp32"

    def check(self, precision: str) -> FidelityCheck | None:
        """The stored check of ``precision``'s path, or None."""
        rec = (self.fidelity or {}).get(precision)
        return rec if isinstance(rec, FidelityCheck) else None


@dataclass(frozen=True, kw_only=True)
class WeightsRecord(Section):
    """``weights``: the state dict's member name, checksum and size."""

    file: str | None = None
    sha256: str = ""
    bytes: int | None = None


@dataclass(frozen=True, kw_only=True)
class Metrics(Section):
    """``metrics``: the evaluation at training (a family may add its own, kept in ``extra``)."""

    image_auroc: float | None = None
    pixel_auroc: float | None = None
    pro: float | None = None
    threshold: float | None = None
    defective_fail_rate: float | None = None
    good_pass_rate: float | None = None
    n_good: int | None = None
    n_defect: int | None = None
    split: str | None = None


@dataclass(frozen=True)
class FrameCheck:
    """``frame_check``: the limits a frame must meet to be judged as a part,
    where they came from and the training images' statistics
    (:mod:`inspection_core.frame_check`)."""

    limits: FrameLimits = DEFAULT_LIMITS
    source: str | None = None
    training: Mapping[str, list[float]] | None = None
    _given: frozenset[str] = field(default=frozenset(), repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "FrameCheck":
        """Unknown keys are refused here (``FrameLimits.from_dict``), as they were before ADR 0017."""
        check_section(d)
        limits = {k: v for k, v in d.items() if k not in ("source", "training")}
        return cls(FrameLimits.from_dict(limits), d.get("source"), copy.deepcopy(d.get("training")),
                   frozenset(limits))

    def to_dict(self) -> dict[str, Any]:
        """The limits as read (not rounded again), and any that differ from the defaults."""
        out: dict[str, Any] = {f.name: getattr(self.limits, f.name) for f in fields(FrameLimits)
                               if f.name in self._given or getattr(self.limits, f.name) != f.default}
        if self.source is not None:
            out["source"] = self.source
        if self.training is not None:
            out["training"] = _plain(self.training)
        return out

