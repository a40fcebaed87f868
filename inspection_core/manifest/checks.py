"""What a manifest must be for this version to use it: the checks that
:meth:`inspection_core.manifest.Manifest.from_dict` runs, each refusal naming
the field and showing the value with its kind. No torch here."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from ..config import LEGACY_MODEL_KEYS, ModelConfig, shown
from ..data.preprocess import Preprocessing
from ..frame_check import check_section
from ..safezip import human_bytes
from ..types import Threshold

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



def checked_version(m: dict[str, Any], path: str | os.PathLike[str] | None) -> dict[str, Any]:
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


def validate(m: dict[str, Any], path: str | os.PathLike[str] | None) -> None:
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
    "lineage": (dict, type(None)), "defect_types": (dict, type(None)),
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

