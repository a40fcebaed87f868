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
import os
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from . import __version__
from .config import ModelConfig
from .data.preprocess import Preprocessing
from .fileio import atomic_open, describe_os_error
from .manifest import FORMAT_VERSION, KNOWN_PRECISIONS, MAX_WEIGHTS_BYTES, BundleError, Manifest
from .safezip import READ_ERRORS, ZipLimitError, human_bytes, member_size, open_zip, read_member
from .types import Threshold

if TYPE_CHECKING:  # torch is imported lazily: reading a manifest stays cheap
    import torch

#: the format this version writes (:mod:`inspection_core.manifest` migrates older ones on read)
BUNDLE_FORMAT_VERSION = FORMAT_VERSION
BUNDLE_SUFFIX = ".inspector"
MANIFEST_NAME = "manifest.json"
WEIGHTS_NAME = "weights.pt"
#: a manifest is JSON text: a calibration of 100,000 images is about 8 MB
MAX_MANIFEST_BYTES = 32 << 20
__all__ = ["BUNDLE_FORMAT_VERSION", "KNOWN_PRECISIONS", "MAX_WEIGHTS_BYTES", "Bundle", "BundleError", "Manifest",
           "bundle_path", "describe", "existing_bundle", "load_bundle", "read_manifest", "save_bundle",
           "update_manifest"]


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
    m = _validate_manifest(path, m, deep=True).to_dict()
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


def _read_manifest_from(zf: zipfile.ZipFile, path: Path) -> Manifest:
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
    return _validate_manifest(path, manifest)


def _read_weights_from(zf: zipfile.ZipFile, path: Path, manifest: Manifest) -> bytes:
    """The weights' bytes, refused before unpacking when they declare another
    size than the manifest records or more than ``MAX_WEIGHTS_BYTES``, and
    after reading when their checksum differs from the manifest's."""
    expected = manifest.weights.bytes
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
    if hashlib.sha256(weights).hexdigest() != manifest.weights.sha256:
        raise BundleError(path, "weights checksum does not match the manifest: the file was modified or damaged")
    return weights


def _validate_manifest(path: Path, m: dict[str, Any], deep: bool = False) -> Manifest:
    """The typed manifest, or :class:`BundleError` for one this version cannot
    use (:meth:`Manifest.from_dict`). ``deep`` also asks the model family
    whether it can build the model (imports torch; used on write)."""
    meta = Manifest.from_dict(m, path)
    if deep:
        from .models import check_model_config

        try:
            check_model_config(ModelConfig.from_dict(meta.model.to_dict()))
        except ValueError as exc:
            raise BundleError(path, f"manifest does not describe a valid model: {exc}") from None
    return meta


def load_manifest(path: str | os.PathLike[str]) -> Manifest:
    """The typed manifest alone (cheap: weights are not read or checked)."""
    path = existing_bundle(path)
    with _open_zip(path) as zf:
        return _read_manifest_from(zf, path)


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """:func:`load_manifest` as a plain dict (migrated to this format)."""
    return load_manifest(path).to_dict()


@dataclass
class Bundle:
    """A loaded bundle: manifest plus verified state dict. ``meta`` is the
    typed manifest; ``manifest`` the same as a plain dict (for the readers
    not yet converted; do not change it)."""

    path: Path | None
    manifest: dict[str, Any]
    state_dict: dict[str, "torch.Tensor"]
    #: the weights were matched to the model on the meta device (by ``load_bundle``)
    _checked: bool = field(default=False, repr=False, compare=False)

    @cached_property
    def meta(self) -> Manifest:
        """The typed manifest (an unsaved one, just trained, has no weights record yet)."""
        m = self.manifest
        if "weights" not in m or "format_version" not in m:
            m = {"format_version": BUNDLE_FORMAT_VERSION, "weights": {"sha256": ""}, **m}
        return Manifest.from_dict(m, self.path)

    @property
    def model_config(self) -> ModelConfig:
        """A fresh copy (a caller may change it)."""
        return ModelConfig.from_dict(self.meta.model.to_dict())

    @property
    def preprocessing(self) -> Preprocessing:
        return self.meta.preprocessing

    @property
    def threshold(self) -> Threshold:
        return self.meta.threshold.threshold

    @property
    def name(self) -> str:
        return self.meta.name or (self.path.stem if self.path else "bundle")

    @property
    def bundle_id(self) -> str:
        return self.meta.bundle_id

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
        meta = _read_manifest_from(zf, path)
        weights = _read_weights_from(zf, path, meta)
    try:
        state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        raise BundleError(path, f"weights cannot be loaded safely ({type(exc).__name__})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BundleError(path, "weights are not a state dict of tensors")
    bundle = Bundle(path=path, manifest=meta.to_dict(), state_dict=state)
    bundle.meta = meta  # the cache: read once
    bundle._check_on_meta()  # weights that cannot fit or cannot score the model are refused here, not later
    return bundle


def update_manifest(path: str | os.PathLike[str], fn: Callable[[dict[str, Any]], dict[str, Any] | None]) -> dict[str, Any]:
    """Rewrite the manifest with ``fn(manifest)`` (which may modify in place
    and return None), keeping the weights byte for byte. Atomic."""
    path = existing_bundle(path)
    with _open_zip(path) as zf:
        meta = _read_manifest_from(zf, path)
        weights = _read_weights_from(zf, path, meta)
    new = fn(meta.to_dict())
    if new is None:
        raise BundleError(path, "manifest update returned nothing")
    new["weights"] = meta.weights.to_dict()
    new["format_version"] = BUNDLE_FORMAT_VERSION
    new = _validate_manifest(path, new, deep=True).to_dict()
    _atomic_write_zip(path, new, weights)
    return new


def describe(manifest: Manifest | dict[str, Any]) -> str:
    """One line for status bars and CLI output."""
    m = manifest if isinstance(manifest, Manifest) else Manifest.from_dict(manifest)
    thr, data = m.threshold, m.data
    phi = f"φ={thr.high:.4g}" if thr.low is None else f"φ=[{thr.low:.4g}, {thr.high:.4g}]"
    return (
        f"{m.name or '?'}: {m.model.model} {m.model.image_size}px, "
        f"trained {(m.created or '?')[:10]} on {Path(data.root or '?').name} "
        f"({'?' if data.n_train is None else data.n_train} images), {phi}{' (provisional)' if thr.provisional else ''}"
    )
