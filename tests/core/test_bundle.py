"""Bundles: round trip, atomic writes and refusal of bad files."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from inspection_core.bundle import BundleError, load_bundle, read_manifest, save_bundle, update_manifest
from inspection_core.data.dataset import scan_dataset
from inspection_core.data.images import read_image
from inspection_core.inference import Inspector


def _rewrite(src: Path, dst: Path, manifest_fn=None, weights_fn=None) -> Path:
    with zipfile.ZipFile(src) as zf:
        m = json.loads(zf.read("manifest.json"))
        w = zf.read("weights.pt")
    if manifest_fn:
        m = manifest_fn(m)
    if weights_fn:
        w = weights_fn(w)
    with zipfile.ZipFile(dst, "w") as zf:
        zf.writestr("manifest.json", json.dumps(m))
        zf.writestr("weights.pt", w)
    return dst


def test_round_trip_gives_identical_scores(tiny_bundle: Path, demo_data: Path, tmp_path: Path) -> None:
    images = [read_image(s.path) for s in scan_dataset(demo_data).test[:6]]
    first = Inspector(tiny_bundle, device="cpu")
    copy = save_bundle(tmp_path / "copy.inspector", first.model, first.manifest)
    second = Inspector(copy, device="cpu")
    a = np.array([p.score for p in first.predict_batch(images)])
    b = np.array([p.score for p in second.predict_batch(images)])
    np.testing.assert_array_equal(a, b)
    assert second.manifest["model"] == first.manifest["model"]
    assert second.threshold == first.threshold


def test_manifest_describes_the_model(tiny_bundle: Path) -> None:
    m = read_manifest(tiny_bundle)
    assert m["format_version"] == 1
    assert m["model"]["model"] == "skip-ganomaly"
    assert m["preprocessing"] == {"image_size": 32, "channels": 3}
    assert m["threshold"]["provisional"] is True
    assert m["training"]["data"]["n_train"] > 0 and len(m["training"]["data"]["fingerprint"]) == 64
    assert m["score_stats"]["map_scale"] > 0
    assert len(m["weights"]["sha256"]) == 64


def test_truncated_file_is_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    bad = tmp_path / "truncated.inspector"
    data = tiny_bundle.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match="truncated or damaged"):
        load_bundle(bad)


def test_tampered_weights_are_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    def flip(w: bytes) -> bytes:
        b = bytearray(w)
        b[len(b) // 2] ^= 0xFF
        return bytes(b)

    bad = _rewrite(tiny_bundle, tmp_path / "tampered.inspector", weights_fn=flip)
    with pytest.raises(BundleError, match="checksum"):
        load_bundle(bad)


def test_newer_format_is_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    def newer(m: dict) -> dict:
        m["format_version"] = 99
        return m

    bad = _rewrite(tiny_bundle, tmp_path / "newer.inspector", manifest_fn=newer)
    with pytest.raises(BundleError, match="newer Inspector"):
        load_bundle(bad)


def test_mismatched_model_is_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    def wider(m: dict) -> dict:
        m["model"]["params"]["base_width"] = 16
        return m

    def other(m: dict) -> dict:
        m["model"]["model"] = "ganomaly"
        return m

    bad = _rewrite(tiny_bundle, tmp_path / "mismatch.inspector", manifest_fn=wider)
    with pytest.raises(BundleError, match="do not match the model 'skip-ganomaly'"):
        Inspector(bad, device="cpu")
    bad = _rewrite(tiny_bundle, tmp_path / "other.inspector", manifest_fn=other)
    with pytest.raises(BundleError, match="ganomaly"):
        Inspector(bad, device="cpu")


def test_pickled_code_is_never_run(tiny_bundle: Path, tmp_path: Path) -> None:
    import hashlib
    import io
    import pickle

    class Evil:
        def __reduce__(self):  # pragma: no cover - must never be called
            return (Path(tmp_path / "pwned").touch, ())

    buf = io.BytesIO()
    pickle.dump({"x": Evil()}, buf)
    payload = buf.getvalue()

    def fix(m: dict) -> dict:
        m["weights"]["sha256"] = hashlib.sha256(payload).hexdigest()
        return m

    bad = _rewrite(tiny_bundle, tmp_path / "evil.inspector", manifest_fn=fix, weights_fn=lambda w: payload)
    with pytest.raises(BundleError, match="cannot be loaded safely"):
        load_bundle(bad)
    assert not (tmp_path / "pwned").exists()


def test_missing_and_non_bundle_files(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="file not found"):
        load_bundle(tmp_path / "nope.inspector")
    (tmp_path / "x.inspector").write_text("hello")
    with pytest.raises(BundleError, match="not a model bundle"):
        read_manifest(tmp_path / "x.inspector")


def test_update_manifest_is_atomic_and_keeps_weights(tiny_bundle: Path, tmp_path: Path) -> None:
    path = tmp_path / "b.inspector"
    path.write_bytes(tiny_bundle.read_bytes())
    before = load_bundle(path).state_dict

    def set_thr(m: dict) -> dict:
        m["threshold"]["high"] = 0.5
        return m

    update_manifest(path, set_thr)
    after = load_bundle(path)
    assert after.threshold.high == 0.5
    assert all((before[k] == after.state_dict[k]).all() for k in before)

    # a failing update leaves the good file untouched and no temp file behind
    def boom(m: dict) -> dict:
        m["model"]["image_size"] = m["preprocessing"]["image_size"] = 33  # not a power of two
        return m

    with pytest.raises(BundleError, match="image size"):
        update_manifest(path, boom)
    assert load_bundle(path).threshold.high == 0.5
    assert [p.name for p in tmp_path.iterdir()] == ["b.inspector"]
