"""Model bundles: the one artefact an operator's station loads.

A bundle is a zip file (``NAME.inspector``) with two members:

- ``manifest.json``: format version, model type and hyper-parameters,
  preprocessing, score statistics, threshold(s), training summary, metrics…
- ``weights.pt``: the model's state dict, saved with ``torch.save`` and loaded
  with ``torch.load(weights_only=True)``: loading a bundle never runs code.

The manifest records the sha256 of ``weights.pt`` so that a tampered or
truncated file is refused. A bundle may come from anywhere, so reading is
bounded (:mod:`inspection_core.safezip`): a member that declares more than
``MAX_MANIFEST_BYTES`` / ``MAX_WEIGHTS_BYTES``, or weights of another size than
the manifest records, is refused before anything is unpacked. Writing is
atomic (:mod:`inspection_core.fileio`).
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import math
import os
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from . import __version__
from .config import ModelConfig, shown
from .data.preprocess import Preprocessing
from .fileio import atomic_open, describe_os_error
from .frame_check import check_section
from .safezip import READ_ERRORS, ZipLimitError, human_bytes, member_size, open_zip, read_member
from .types import Threshold

if TYPE_CHECKING:  # torch is imported lazily: reading a manifest stays cheap
    import torch

BUNDLE_FORMAT_VERSION = 1
BUNDLE_SUFFIX = ".inspector"
MANIFEST_NAME = "manifest.json"
WEIGHTS_NAME = "weights.pt"
#: a manifest is JSON text: a calibration of 100,000 images is about 8 MB
MAX_MANIFEST_BYTES = 32 << 20
#: the largest state dict a bundle may hold (a WideResNet-50 PatchCore bundle is 100-300 MB)
MAX_WEIGHTS_BYTES = 2 << 30
#: the precisions ``inference.precision`` may name: ``acceleration.PRECISIONS``
#: (not imported from there: that imports torch, and reading a manifest stays cheap)
KNOWN_PRECISIONS = ("fp32", "bf16", "fp16")
#: ``score_stats`` entries that are numbers (any other entry that is a number must be finite too)
SCORE_STATS_NUMBERS = ("n", "mean", "std", "min", "q50", "q95", "q99", "max", "map_scale")


class BundleError(ValueError):
    """A bundle cannot be read, or is not one this version can use."""

    def __init__(self, path: str | os.PathLike[str] | None, reason: str) -> None:
        self.path = None if path is None else Path(path)
        self.reason = reason
        where = f"model bundle '{path}'" if path is not None else "model bundle"
        super().__init__(f"{where}: {reason}")


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _atomic_write_zip(path: Path, manifest: dict[str, Any], weights: bytes) -> None:
    with atomic_open(path, "wb") as fh:  # a bundle is shared data: the usual permissions
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED) as zf:
            zf.writestr(MANIFEST_NAME, json.dumps(manifest, indent=2, default=_json_default))
            zf.writestr(WEIGHTS_NAME, weights)


def _state_bytes(state_dict: dict[str, "torch.Tensor"]) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save({k: v.detach().cpu().contiguous() for k, v in state_dict.items()}, buf)
    return buf.getvalue()


def bundle_path(path: str | os.PathLike[str]) -> Path:
    """The file a bundle name means, the same way everywhere: ``NAME`` and
    ``NAME.inspector`` are one bundle (the suffix is added when missing)."""
    path = Path(path)
    return path if path.suffix == BUNDLE_SUFFIX else path.with_name(path.name + BUNDLE_SUFFIX)


def save_bundle(path: str | os.PathLike[str], model: "torch.nn.Module", manifest: dict[str, Any]) -> Path:
    """Write ``model``'s weights and ``manifest`` to ``bundle_path(path)``
    atomically. Fills in format version, app version, creation time and the
    weights' checksum. Returns the path written."""
    path = bundle_path(path)
    weights = _state_bytes(model.state_dict())
    m = copy.deepcopy(manifest)
    m["format_version"] = BUNDLE_FORMAT_VERSION
    m["app_version"] = __version__
    m.setdefault("created", utc_now())
    m.setdefault("name", path.stem)
    m["weights"] = {"file": WEIGHTS_NAME, "sha256": hashlib.sha256(weights).hexdigest(), "bytes": len(weights)}
    _validate_manifest(path, m, deep=True)
    try:
        _atomic_write_zip(path, m, weights)
    except OSError as exc:  # the weights exist only in memory: do not lose a finished training
        raise BundleError(path, _rescue(path, m, weights, exc)) from None
    return path


def _rescue(path: Path, manifest: dict[str, Any], weights: bytes, exc: OSError) -> str:
    """Write a bundle that could not go to ``path`` to the data folder or the
    temporary folder instead; the message says where (or that it could not)."""
    import tempfile

    from .paths import data_dir

    reason = describe_os_error(exc)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    tried = []
    for folder in (data_dir() / "rescued", Path(tempfile.gettempdir())):
        if folder.resolve() == path.parent.resolve():
            continue
        target = folder / f"{path.stem}-{stamp}{BUNDLE_SUFFIX}"
        try:
            _atomic_write_zip(target, manifest, weights)
        except OSError:
            tried.append(str(folder))
            continue
        return (f"cannot be written ({reason}); the model was saved to '{target}' instead: "
                f"move it to '{path}' once the problem is fixed")
    also = f" (also tried {', '.join(tried)})" if tried else ""
    return f"cannot be written ({reason}); the model could not be saved anywhere else either{also}"


def existing_bundle(path: str | os.PathLike[str]) -> Path:
    """``path`` as given when it is a file, else ``bundle_path(path)`` when that
    is one (so that ``--bundle demo`` finds ``demo.inspector``, also beside a
    data folder called ``demo``), else ``path`` (whose error then names it)."""
    path = Path(path)
    return bundle_path(path) if not path.is_file() and bundle_path(path).is_file() else path


def _open_zip(path: Path) -> zipfile.ZipFile:
    if not path.exists():
        raise BundleError(path, "file not found")
    if path.is_dir():
        raise BundleError(path, "is a folder, expected a .inspector file")
    try:
        zf = open_zip(path)
    except ZipLimitError as exc:
        raise BundleError(path, f"not a model bundle: it {exc.reason}") from None
    except PermissionError:
        raise BundleError(path, "cannot be read (permission denied)") from None
    except READ_ERRORS:
        raise BundleError(path, "not a model bundle, or the file is truncated or damaged") from None
    names = set(zf.namelist())
    missing = {MANIFEST_NAME, WEIGHTS_NAME} - names
    if missing:
        zf.close()
        raise BundleError(path, f"missing {', '.join(sorted(missing))}: not a complete model bundle")
    return zf


class _DuplicateKey(ValueError):
    """A JSON object names one key twice (``json`` would keep the last silently)."""


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        twice = next(k for k, _v in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise _DuplicateKey(f"manifest is invalid: the key {twice!r:.60} appears twice in one object "
                            f"(which of its values holds is unclear)")
    return obj


def _read_manifest_from(zf: zipfile.ZipFile, path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(read_member(zf, MANIFEST_NAME, MAX_MANIFEST_BYTES).decode("utf-8"),
                              object_pairs_hook=_no_duplicate_keys)
    except ZipLimitError as exc:
        raise BundleError(path, f"refused: {exc.reason}") from None
    except _DuplicateKey as exc:
        raise BundleError(path, str(exc)) from None
    except RecursionError:
        raise BundleError(path, "manifest is unreadable (nested too deeply)") from None
    except READ_ERRORS as exc:
        raise BundleError(path, f"manifest is unreadable ({str(exc)[:200] or type(exc).__name__})") from None
    if not isinstance(manifest, dict):
        raise BundleError(path, "manifest is not a JSON object")
    _validate_manifest(path, manifest)
    return manifest


def _read_weights_from(zf: zipfile.ZipFile, path: Path, manifest: dict[str, Any]) -> bytes:
    """The weights' bytes, refused before unpacking when they declare another
    size than the manifest records or more than ``MAX_WEIGHTS_BYTES``, and
    after reading when their checksum differs from the manifest's."""
    expected = manifest["weights"].get("bytes")
    declared = member_size(zf, WEIGHTS_NAME)
    if expected is not None and declared != expected:
        raise BundleError(path, f"weights are {human_bytes(declared)} but the manifest records "
                                f"{human_bytes(int(expected))}: the file was modified or damaged")
    try:
        weights = read_member(zf, WEIGHTS_NAME, MAX_WEIGHTS_BYTES)
    except ZipLimitError as exc:
        raise BundleError(path, f"refused: {exc.reason}") from None
    except READ_ERRORS as exc:
        raise BundleError(path, f"weights are unreadable ({str(exc)[:200] or type(exc).__name__}); the file is damaged") from None
    if hashlib.sha256(weights).hexdigest() != manifest["weights"].get("sha256"):
        raise BundleError(path, "weights checksum does not match the manifest: the file was modified or damaged")
    return weights


REQUIRED_KEYS = ("format_version", "model", "preprocessing", "threshold", "weights")


def _validate_manifest(path: Path, m: dict[str, Any], deep: bool = False) -> None:
    """Refuse a manifest this version cannot use. ``deep`` also asks the model
    family whether it can build the model (imports torch; used on write)."""
    missing = [k for k in REQUIRED_KEYS if k not in m]
    if missing:
        raise BundleError(path, f"manifest lacks {', '.join(missing)}")
    version = m["format_version"]
    if not isinstance(version, int) or isinstance(version, bool):
        raise BundleError(path, f"format_version must be an integer, got {shown(version)}")
    if version > BUNDLE_FORMAT_VERSION:
        raise BundleError(
            path,
            f"made by a newer Inspector (bundle format {version}, this version reads up to "
            f"{BUNDLE_FORMAT_VERSION}); update Inspector to use it",
        )
    if version < 1:
        raise BundleError(path, f"format_version must be 1 or more, got {version}")
    for key in ("model", "preprocessing", "threshold"):
        if not isinstance(m[key], dict):
            raise BundleError(path, f"manifest is invalid: '{key}' must be an object, got {shown(m[key])}")
    try:
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
            if not _is_number(value) and not (key == "low" and value is None):
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
    if deep:
        from .models import check_model_config

        try:
            check_model_config(cfg)
        except ValueError as exc:
            raise BundleError(path, f"manifest does not describe a valid model: {exc}") from None


def _is_number(v: Any) -> bool:
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
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not _is_number(value):
            raise ValueError(f"model parameter {key!r} must be a finite number, got {shown(value)}")
        if isinstance(value, dict) and depth < 4:
            _check_params(value, depth + 1)


#: optional manifest sections and the JSON type each must have when present
_SECTION_TYPES: dict[str, type | tuple[type, ...]] = {
    "name": str, "created": str, "app_version": str, "training": dict, "score_stats": dict, "metrics": dict,
    "inference": dict, "calibration": (dict, type(None)), "calibration_history": list,
}


def _section_problem(m: dict[str, Any]) -> str | None:
    """What is wrong with the sections the readers use (None when nothing): a
    reader may then trust their types instead of guarding every access."""
    for key, kind in _SECTION_TYPES.items():
        if key in m and not isinstance(m[key], kind):
            return f"'{key}' must be {_kind_name(kind)}, got {type(m[key]).__name__}"
    if not isinstance(m["threshold"], dict):
        return "'threshold' must be an object"
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
    if scale is not None and (not _is_number(scale) or scale < 0):
        return f"'score_stats.map_scale' must be a number of 0 or more, got {shown(scale)}"
    for key, value in stats.items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if (key in SCORE_STATS_NUMBERS or number) and value is not None and not _is_number(value):
            return f"'score_stats.{key:.40}' must be a finite number, got {shown(value)}"
    training = m.get("training") or {}
    for key in ("config", "data", "split"):
        if training.get(key) is not None and not isinstance(training[key], dict):
            return f"'training.{key}' must be an object, got {type(training[key]).__name__}"
    seed = ((training.get("config") or {}).get("seed", (training.get("split") or {}).get("seed")))
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        return f"the training seed must be a whole number, got {seed!r:.40}"
    inference = m.get("inference") or {}
    precision = inference.get("precision")
    if precision is not None and precision not in KNOWN_PRECISIONS:
        return f"'inference.precision' must be one of {', '.join(KNOWN_PRECISIONS)}, got {shown(precision)}"
    cal = m.get("calibration") or {}
    for key in ("scores", "labels", "paths"):
        if cal.get(key) is not None and not isinstance(cal[key], list):
            return f"'calibration.{key}' must be a list"
    return None


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "text", dict: "an object", list: "a list", type(None): "null"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest alone (cheap: weights are not read or checked)."""
    path = existing_bundle(path)
    with _open_zip(path) as zf:
        return _read_manifest_from(zf, path)


@dataclass
class Bundle:
    """A loaded bundle: manifest plus verified state dict."""

    path: Path | None
    manifest: dict[str, Any]
    state_dict: dict[str, "torch.Tensor"]
    #: the weights were matched to the model on the meta device (by ``load_bundle``)
    _checked: bool = field(default=False, repr=False, compare=False)

    @property
    def model_config(self) -> ModelConfig:
        return ModelConfig.from_dict(self.manifest["model"])

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing.from_dict(self.manifest["preprocessing"])

    @property
    def threshold(self) -> Threshold:
        return Threshold.from_dict(self.manifest["threshold"])

    @property
    def name(self) -> str:
        return str(self.manifest.get("name") or (self.path.stem if self.path else "bundle"))

    @property
    def bundle_id(self) -> str:
        return str(self.manifest.get("weights", {}).get("sha256", "unsaved"))[:12]

    def build_model(self, device: "str | torch.device" = "cpu") -> "torch.nn.Module":
        """The detector with these weights, in eval mode on ``device``."""
        from .models import build_model

        if not self._checked:
            self._check_on_meta()
        try:
            model = build_model(self.model_config)
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:  # a parameter of the wrong type
            raise BundleError(self.path, f"manifest does not describe a valid model: {_first_line(exc)}") from None
        except (RuntimeError, MemoryError, OverflowError) as exc:  # e.g. a size no allocator can give
            raise BundleError(self.path, f"the model the manifest describes cannot be built "
                                         f"({_first_line(exc)})") from None
        self._check_state(model)
        try:
            model.load_state_dict(self.state_dict, strict=True)
        except (RuntimeError, ValueError) as exc:  # ValueError: a family's own loader refuses a size
            raise BundleError(self.path, f"weights do not match the model '{self.model_config.model}': "
                                         f"{_first_line(exc)}") from None
        return model.to(device).eval()

    def _check_state(self, model: "torch.nn.Module") -> None:
        """The family's own check that the weights can score
        (``Detector.check_state_dict``: PatchCore's memory bank), before
        anything is copied: refused here, not at the first part scored."""
        check = getattr(model, "check_state_dict", None)
        if check is None:
            return
        try:
            check(self.state_dict)
        except ValueError as exc:
            family = self.model_config.model
            reason = _first_line(exc).removeprefix(f"{family}: ")
            raise BundleError(self.path, f"weights cannot be used by the model '{family}': {reason}") from None

    def _check_on_meta(self) -> None:
        """Match the weights to the model the manifest describes on torch's
        "meta" device first: no memory is allocated, so a manifest that asks
        for a latent size of 10⁹ is refused at once with the weights' shapes
        instead of an allocator's message (a family whose model cannot be
        built there is left to the real build)."""
        import torch

        from .models import build_model

        try:
            with torch.device("meta"):
                ghost = build_model(self.model_config)
        except ValueError as exc:
            raise BundleError(self.path, f"manifest does not describe a valid model: {exc}") from None
        except Exception:  # noqa: BLE001 - not buildable on meta: the real build judges
            return
        self._check_state(ghost)
        values = sum(t.numel() for t in (*ghost.parameters(), *ghost.buffers()))
        try:
            ghost.load_state_dict(self.state_dict, strict=True, assign=True)  # shapes checked, nothing copied
        except (RuntimeError, ValueError) as exc:  # ValueError: a family's own loader refuses a size
            stored = sum(t.numel() for t in self.state_dict.values())
            raise BundleError(self.path, f"weights do not match the model '{self.model_config.model}' the manifest "
                                         f"describes ({values:.3g} values, the weights hold {stored:.3g}): "
                                         f"{_first_line(exc)}") from None
        except Exception:  # noqa: BLE001 - a family's loader that needs real tensors: the real build judges
            return
        self._checked = True


def _first_line(exc: BaseException) -> str:
    """The telling line of an error (torch's state-dict errors start with a heading)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    telling = [line for line in lines if not line.startswith("Error(s) in loading state_dict")]
    return ((telling or lines or [type(exc).__name__])[0])[:300]


def load_bundle(path: str | os.PathLike[str]) -> Bundle:
    """Load and verify a bundle; raises :class:`BundleError` with a clear
    reason for a missing, truncated, tampered, newer or mismatched file."""
    import torch

    path = existing_bundle(path)
    with _open_zip(path) as zf:
        manifest = _read_manifest_from(zf, path)
        weights = _read_weights_from(zf, path, manifest)
    try:
        state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        raise BundleError(path, f"weights cannot be loaded safely ({type(exc).__name__})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BundleError(path, "weights are not a state dict of tensors")
    bundle = Bundle(path=path, manifest=manifest, state_dict=state)
    bundle._check_on_meta()  # weights that cannot fit or cannot score the model are refused here, not later
    return bundle


def update_manifest(path: str | os.PathLike[str], fn: Callable[[dict[str, Any]], dict[str, Any] | None]) -> dict[str, Any]:
    """Rewrite the manifest with ``fn(manifest)`` (which may modify in place
    and return None), keeping the weights byte for byte. Atomic."""
    path = existing_bundle(path)
    with _open_zip(path) as zf:
        manifest = _read_manifest_from(zf, path)
        weights = _read_weights_from(zf, path, manifest)
    new = fn(copy.deepcopy(manifest))
    if new is None:
        raise BundleError(path, "manifest update returned nothing")
    new["weights"] = manifest["weights"]
    new["format_version"] = BUNDLE_FORMAT_VERSION
    _validate_manifest(path, new, deep=True)
    _atomic_write_zip(path, new, weights)
    return new


def describe(manifest: dict[str, Any]) -> str:
    """One line for status bars and CLI output."""
    model = manifest.get("model", {})
    thr = manifest.get("threshold", {})
    data = manifest.get("training", {}).get("data", {})
    low = thr.get("low")
    phi = f"φ={thr.get('high'):.4g}" if low is None else f"φ=[{low:.4g}, {thr.get('high'):.4g}]"
    return (
        f"{manifest.get('name', '?')}: {model.get('model', '?')} {model.get('image_size', '?')}px, "
        f"trained {str(manifest.get('created', '?'))[:10]} on {Path(str(data.get('root', '?'))).name} "
        f"({data.get('n_train', '?')} images), {phi}{' (provisional)' if thr.get('provisional') else ''}"
    )
