"""Model bundles: the one artefact an operator's station loads.

A bundle is a zip file (``NAME.inspector``) with two members:

- ``manifest.json``: format version, model type and hyper-parameters,
  preprocessing, score statistics, threshold(s), training summary, metrics…
- ``weights.pt``: the model's state dict, saved with ``torch.save`` and loaded
  with ``torch.load(weights_only=True)``: loading a bundle never runs code.

The manifest records the sha256 of ``weights.pt`` so that a tampered or
truncated file is refused. Writing is atomic (:mod:`inspection_core.fileio`).
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from . import __version__
from .config import ModelConfig
from .data.preprocess import Preprocessing
from .fileio import atomic_open
from .types import Threshold

if TYPE_CHECKING:  # torch is imported lazily: reading a manifest stays cheap
    import torch

BUNDLE_FORMAT_VERSION = 1
BUNDLE_SUFFIX = ".inspector"
MANIFEST_NAME = "manifest.json"
WEIGHTS_NAME = "weights.pt"


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
    _atomic_write_zip(path, m, weights)
    return path


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
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise BundleError(path, "not a model bundle, or the file is truncated or damaged") from None
    names = set(zf.namelist())
    missing = {MANIFEST_NAME, WEIGHTS_NAME} - names
    if missing:
        zf.close()
        raise BundleError(path, f"missing {', '.join(sorted(missing))}: not a complete model bundle")
    return zf


def _read_manifest_from(zf: zipfile.ZipFile, path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(zf.read(MANIFEST_NAME).decode("utf-8"))
    except (zipfile.BadZipFile, OSError, ValueError, UnicodeDecodeError) as exc:
        raise BundleError(path, f"manifest is unreadable ({exc})") from None
    if not isinstance(manifest, dict):
        raise BundleError(path, "manifest is not a JSON object")
    _validate_manifest(path, manifest)
    return manifest


REQUIRED_KEYS = ("format_version", "model", "preprocessing", "threshold", "weights")


def _validate_manifest(path: Path, m: dict[str, Any], deep: bool = False) -> None:
    """Refuse a manifest this version cannot use. ``deep`` also asks the model
    family whether it can build the model (imports torch; used on write)."""
    missing = [k for k in REQUIRED_KEYS if k not in m]
    if missing:
        raise BundleError(path, f"manifest lacks {', '.join(missing)}")
    version = m["format_version"]
    if not isinstance(version, int):
        raise BundleError(path, f"format_version must be an integer, got {version!r}")
    if version > BUNDLE_FORMAT_VERSION:
        raise BundleError(
            path,
            f"made by a newer Inspector (bundle format {version}, this version reads up to "
            f"{BUNDLE_FORMAT_VERSION}); update Inspector to use it",
        )
    if version < 1:
        raise BundleError(path, f"format_version must be 1 or more, got {version}")
    try:
        cfg = ModelConfig.from_dict(m["model"])
        cfg.validate()
        pp = Preprocessing.from_dict(m["preprocessing"])
        Threshold.from_dict(m["threshold"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(path, f"manifest is invalid: {exc}") from None
    if (pp.image_size, pp.channels) != (cfg.image_size, cfg.channels):
        raise BundleError(path, f"manifest is invalid: preprocessing ({pp.image_size} px, {pp.channels} channel(s)) "
                                f"does not match the model ({cfg.image_size} px, {cfg.channels} channel(s))")
    if deep:
        from .models import check_model_config

        try:
            check_model_config(cfg)
        except ValueError as exc:
            raise BundleError(path, f"manifest does not describe a valid model: {exc}") from None


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

        try:
            model = build_model(self.model_config)
        except ValueError as exc:
            raise BundleError(self.path, f"manifest does not describe a valid model: {exc}") from None
        try:
            model.load_state_dict(self.state_dict, strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise BundleError(self.path, f"weights do not match the model '{self.model_config.model}': {first}") from None
        return model.to(device).eval()


def load_bundle(path: str | os.PathLike[str]) -> Bundle:
    """Load and verify a bundle; raises :class:`BundleError` with a clear
    reason for a missing, truncated, tampered, newer or mismatched file."""
    import torch

    path = existing_bundle(path)
    with _open_zip(path) as zf:
        manifest = _read_manifest_from(zf, path)
        try:
            weights = zf.read(WEIGHTS_NAME)
        except (zipfile.BadZipFile, OSError) as exc:
            raise BundleError(path, f"weights are unreadable ({exc}); the file is damaged") from None
    expected = manifest["weights"].get("sha256")
    actual = hashlib.sha256(weights).hexdigest()
    if expected != actual:
        raise BundleError(path, "weights checksum does not match the manifest: the file was modified or damaged")
    try:
        state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        raise BundleError(path, f"weights cannot be loaded safely ({type(exc).__name__})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BundleError(path, "weights are not a state dict of tensors")
    return Bundle(path=path, manifest=manifest, state_dict=state)


def update_manifest(path: str | os.PathLike[str], fn: Callable[[dict[str, Any]], dict[str, Any] | None]) -> dict[str, Any]:
    """Rewrite the manifest with ``fn(manifest)`` (which may modify in place
    and return None), keeping the weights byte for byte. Atomic."""
    path = existing_bundle(path)
    with _open_zip(path) as zf:
        manifest = _read_manifest_from(zf, path)
        weights = zf.read(WEIGHTS_NAME)
    if hashlib.sha256(weights).hexdigest() != manifest["weights"].get("sha256"):
        raise BundleError(path, "weights checksum does not match the manifest: refusing to rewrite a damaged bundle")
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
