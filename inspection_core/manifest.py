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

No torch here: the GUI thread reads manifests.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

from .config import LEGACY_MODEL_KEYS, ModelConfig, shown
from .data.preprocess import Preprocessing
from .frame_check import DEFAULT_LIMITS, FrameLimits, check_section
from .safezip import human_bytes
from .types import Threshold

#: the format this version writes; it reads every format from 1 up to this one
FORMAT_VERSION = 2
#: the largest state dict a bundle may hold (a WideResNet-50 PatchCore bundle is 100-300 MB)
MAX_WEIGHTS_BYTES = 2 << 30
#: the precisions ``inference.precision`` may name: ``acceleration.PRECISIONS``
#: (not imported from there: that imports torch)
KNOWN_PRECISIONS = ("fp32", "bf16", "fp16")
#: ``score_stats`` entries that are numbers (any other entry that is a number must be finite too)
SCORE_STATS_NUMBERS = ("n", "mean", "std", "min", "q50", "q95", "q99", "max", "map_scale")
REQUIRED_KEYS = ("format_version", "model", "preprocessing", "threshold", "weights")


class BundleError(ValueError):
    """A bundle cannot be read, or is not one this version can use."""

    def __init__(self, path: str | os.PathLike[str] | None, reason: str) -> None:
        self.path = None if path is None else Path(path)
        self.reason = reason
        where = f"model bundle '{path}'" if path is not None else "model bundle"
        super().__init__(f"{where}: {reason}")


# --------------------------------------------------------------------------- sections
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


# --------------------------------------------------------------------------- migrations
#: the format-1 families whose parameters had these names (a family without them dropped them)
_FORMAT1_LEGACY_PARAMS = {"ganomaly": LEGACY_MODEL_KEYS, "skip-ganomaly": LEGACY_MODEL_KEYS,
                          "bigan": LEGACY_MODEL_KEYS, "vgg16": ("base_width",), "patchcore": ()}


def migrate_1_to_2(m: dict[str, Any]) -> dict[str, Any]:
    """Format 1 wrote ``latent_dim`` and ``base_width`` beside ``model.params``
    (the first releases' ``ModelConfig`` fields); format 2 has them in
    ``params`` for the families that take them (a value in ``params`` wins)."""
    model = m.get("model")
    if isinstance(model, dict) and any(k in model for k in LEGACY_MODEL_KEYS):
        model = dict(model)
        taken = _FORMAT1_LEGACY_PARAMS.get(str(model.get("model")), LEGACY_MODEL_KEYS)
        params = model.get("params")
        params = dict(params) if isinstance(params, dict) else params
        for key in LEGACY_MODEL_KEYS:
            if key in model:
                value = model.pop(key)
                if key in taken and isinstance(params, dict):
                    params.setdefault(key, value)
        if params is not None or "params" in model:
            model["params"] = params
        m = {**m, "model": model}
    return {**m, "format_version": 2}


#: format n -> the step that makes a format n manifest one of format n + 1
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: migrate_1_to_2}


def migrate(m: dict[str, Any]) -> dict[str, Any]:
    """``m`` (whose version is checked) in :data:`FORMAT_VERSION`, one step per version."""
    while m["format_version"] < FORMAT_VERSION:
        m = MIGRATIONS[m["format_version"]](m)
    return m


# --------------------------------------------------------------------------- the manifest
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
    }
    _TEXT: ClassVar[tuple[str, ...]] = ("app_version", "created", "name")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], path: str | os.PathLike[str] | None = None) -> "Manifest":
        """Validate, migrate and type ``d``; :class:`BundleError` (naming
        ``path``) says what this version cannot use. ``d`` is not changed."""
        m = migrate(_checked_version(dict(d), path))
        _validate(m, path)
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


# --------------------------------------------------------------------------- validation
def _checked_version(m: dict[str, Any], path: str | os.PathLike[str] | None) -> dict[str, Any]:
    missing = [k for k in REQUIRED_KEYS if k not in m]
    if missing:
        raise BundleError(path, f"manifest lacks {', '.join(missing)}")
    version = m["format_version"]
    if not isinstance(version, int) or isinstance(version, bool):
        raise BundleError(path, f"format_version must be an integer, got {shown(version)}")
    if version > FORMAT_VERSION:
        raise BundleError(path, f"made by a newer Inspector (bundle format {version}, this version reads up to "
                                f"{FORMAT_VERSION}); update Inspector to use it")
    if version < 1:
        raise BundleError(path, f"format_version must be 1 or more, got {version}")
    return m


def _validate(m: dict[str, Any], path: str | os.PathLike[str] | None) -> None:
    for key in ("model", "preprocessing", "threshold"):
        if not isinstance(m[key], dict):
            raise BundleError(path, f"manifest is invalid: '{key}' must be an object, got {shown(m[key])}")
    try:
        legacy = [k for k in LEGACY_MODEL_KEYS if k in m["model"]]
        if legacy:
            raise ValueError(f"'model.{legacy[0]}' belongs in 'model.params' (bundle format {FORMAT_VERSION})")
        cfg = ModelConfig.from_dict(m["model"])
        cfg.validate()
        if not isinstance(cfg.model, str) or not isinstance(cfg.channels, int) or isinstance(cfg.channels, bool):
            raise ValueError(f"model name must be text and channels a whole number, got {shown(cfg.model)}, "
                             f"{shown(cfg.channels)}")
        _check_params(cfg.params)
        _check_preprocessing(m["preprocessing"])
        pp = Preprocessing.from_dict(m["preprocessing"])
        for key in ("high", "low"):
            value = m["threshold"].get(key)
            if not is_number(value) and not (key == "low" and value is None):
                raise ValueError(f"threshold must hold numbers: 'threshold.{key}' is {shown(value)}")
        Threshold.from_dict(m["threshold"])
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise BundleError(path, f"manifest is invalid: {str(exc)[:200]}") from None
    if (pp.image_size, pp.channels, pp.normalize) != (cfg.image_size, cfg.channels, cfg.normalize):
        raise BundleError(path, f"manifest is invalid: preprocessing ({pp.image_size} px, {pp.channels} channel(s), "
                                f"normalize {pp.normalize}) does not match the model ({cfg.image_size} px, "
                                f"{cfg.channels} channel(s), normalize {cfg.normalize})")
    problem = _section_problem(m)
    if problem:
        raise BundleError(path, f"manifest is invalid: {problem}")


def is_number(v: Any) -> bool:
    """A finite JSON number (a whole number too large for a float is not)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:  # a JSON integer of 400 digits: no float holds it
        return False


def _check_preprocessing(pp: dict[str, Any]) -> None:
    """The preprocessing section's fields have their types (``Preprocessing``
    would take the text "3" for 3 channels)."""
    for key in ("image_size", "channels"):
        if key not in pp:
            raise ValueError(f"'preprocessing.{key}' is missing")
        if not isinstance(pp[key], int) or isinstance(pp[key], bool):
            raise ValueError(f"'preprocessing.{key}' must be a whole number, got {shown(pp[key])}")
    if not isinstance(pp.get("normalize", "none"), str):
        raise ValueError(f"'preprocessing.normalize' must be text, got {shown(pp['normalize'])}")


def _check_params(params: dict[str, Any], depth: int = 0) -> None:
    """Family parameters are JSON scalars, lists or objects of them; a number
    must be finite (a family's ``check_config`` judges the values)."""
    for key, value in params.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not is_number(value):
            raise ValueError(f"model parameter {key!r} must be a finite number, got {shown(value)}")
        if isinstance(value, dict) and depth < 4:
            _check_params(value, depth + 1)


#: optional manifest sections and the JSON type each must have when present
_SECTION_TYPES: dict[str, type | tuple[type, ...]] = {
    "name": str, "created": str, "app_version": str, "training": dict, "score_stats": dict, "metrics": dict,
    "inference": dict, "calibration": (dict, type(None)), "calibration_history": list,
}


def _section_problem(m: dict[str, Any]) -> str | None:
    """What is wrong with the optional sections (None when nothing): the
    typed sections may then trust their types."""
    for key, kind in _SECTION_TYPES.items():
        if key in m and not isinstance(m[key], kind):
            return f"'{key}' must be {_kind_name(kind)}, got {type(m[key]).__name__}"
    w = m["weights"]
    if not isinstance(w, dict) or not isinstance(w.get("sha256"), str):
        return "'weights' must be an object with the weights' sha256"
    if w.get("bytes") is not None and (not isinstance(w["bytes"], int) or isinstance(w["bytes"], bool)
                                       or not 0 < w["bytes"] <= MAX_WEIGHTS_BYTES):
        return f"'weights.bytes' must be a size up to {human_bytes(MAX_WEIGHTS_BYTES)}, got {w['bytes']!r:.40}"
    if "frame_check" in m:
        try:
            check_section(m["frame_check"])
        except ValueError as exc:
            return str(exc)
    stats = m.get("score_stats") or {}
    scale = stats.get("map_scale")
    if scale is not None and (not is_number(scale) or scale < 0):
        return f"'score_stats.map_scale' must be a number of 0 or more, got {shown(scale)}"
    for key, value in stats.items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if (key in SCORE_STATS_NUMBERS or number) and value is not None and not is_number(value):
            return f"'score_stats.{key:.40}' must be a finite number, got {shown(value)}"
    training = m.get("training") or {}
    for key in ("config", "data", "split"):
        if training.get(key) is not None and not isinstance(training[key], dict):
            return f"'training.{key}' must be an object, got {type(training[key]).__name__}"
    data = training.get("data") or {}
    if data.get("input_stats") is not None and not isinstance(data["input_stats"], dict):
        return f"'training.data.input_stats' must be an object, got {type(data['input_stats']).__name__}"
    seed = ((training.get("config") or {}).get("seed", (training.get("split") or {}).get("seed")))
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        return f"the training seed must be a whole number, got {seed!r:.40}"
    inference = m.get("inference") or {}
    precision = inference.get("precision")
    if precision is not None and precision not in KNOWN_PRECISIONS:
        return f"'inference.precision' must be one of {', '.join(KNOWN_PRECISIONS)}, got {shown(precision)}"
    if inference.get("fidelity") is not None and not isinstance(inference["fidelity"], dict):
        return f"'inference.fidelity' must be an object, got {type(inference['fidelity']).__name__}"
    cal = m.get("calibration") or {}
    for key in ("scores", "labels", "paths"):
        if cal.get(key) is not None and not isinstance(cal[key], list):
            return f"'calibration.{key}' must be a list"
    return None


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "text", dict: "an object", list: "a list", type(None): "null"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


__all__ = ["FORMAT_VERSION", "KNOWN_PRECISIONS", "MIGRATIONS", "BundleError", "Calibration", "CalibrationEvent",
           "DataSummary", "FidelityCheck", "FrameCheck", "InferenceRecord", "InputStats", "Manifest", "Metrics",
           "ScoreStats", "Section", "Split", "ThresholdRecord", "TrainingSummary", "WeightsRecord", "is_number",
           "migrate", "migrate_1_to_2", "section"]
