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
    assert m["format_version"] == 2  # written in this format; format 1 is migrated on read (test_manifest.py)
    assert m["model"]["model"] == "skip-ganomaly"
    assert m["preprocessing"] == {"image_size": 32, "channels": 3, "normalize": "none"}
    assert m["threshold"]["provisional"] is True
    assert m["training"]["data"]["n_train"] > 0 and len(m["training"]["data"]["fingerprint"]) == 64
    assert m["score_stats"]["map_scale"] > 0
    assert len(m["weights"]["sha256"]) == 64


@pytest.mark.fault("bundle", "a truncated bundle (half of the file)",
                   "BundleError 'not a model bundle, or the file is truncated or damaged'")
def test_truncated_file_is_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    bad = tmp_path / "truncated.inspector"
    data = tiny_bundle.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match="truncated or damaged"):
        load_bundle(bad)


@pytest.mark.fault("bundle", "tampered weights (one byte flipped)",
                   "BundleError 'weights checksum does not match the manifest'")
def test_tampered_weights_are_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    def flip(w: bytes) -> bytes:
        b = bytearray(w)
        b[len(b) // 2] ^= 0xFF
        return bytes(b)

    bad = _rewrite(tiny_bundle, tmp_path / "tampered.inspector", weights_fn=flip)
    with pytest.raises(BundleError, match="checksum"):
        load_bundle(bad)


@pytest.mark.fault("bundle", "a bundle of a newer format",
                   "BundleError 'made by a newer Inspector … update Inspector to use it'")
def test_newer_format_is_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    def newer(m: dict) -> dict:
        m["format_version"] = 99
        return m

    bad = _rewrite(tiny_bundle, tmp_path / "newer.inspector", manifest_fn=newer)
    with pytest.raises(BundleError, match="newer Inspector"):
        load_bundle(bad)


@pytest.mark.fault("bundle", "a manifest that does not match its weights (other width, other family)",
                   "BundleError 'weights do not match the model …'")
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


@pytest.mark.fault("bundle", "a pickled payload that runs code, with a matching checksum",
                   "BundleError 'weights cannot be loaded safely'; the code never runs (weights_only)")
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
        m["weights"]["bytes"] = len(payload)
        return m

    bad = _rewrite(tiny_bundle, tmp_path / "evil.inspector", manifest_fn=fix, weights_fn=lambda w: payload)
    with pytest.raises(BundleError, match="cannot be loaded safely"):
        load_bundle(bad)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.fault("bundle", "a missing file; a text file named .inspector",
                   "BundleError 'file not found' / 'not a model bundle'")
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


# --------------------------------------------------------------------------- hostile archives (issue 13)

def _declare_size(path: Path, member: str, size: int) -> None:
    """Make ``member`` declare ``size`` unpacked bytes in both zip headers
    (what a crafted zip bomb does), without writing them."""
    import struct

    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
    data = bytearray(path.read_bytes())
    local = info.header_offset
    assert data[local:local + 4] == b"PK\x03\x04"
    struct.pack_into("<L", data, local + 22, size)
    central = data.find(b"PK\x01\x02")
    while central >= 0:
        name_len = struct.unpack_from("<H", data, central + 28)[0]
        if data[central + 46:central + 46 + name_len].decode() == member:
            struct.pack_into("<L", data, central + 24, size)
            break
        central = data.find(b"PK\x01\x02", central + 4)
    path.write_bytes(bytes(data))


@pytest.mark.fault("bundle", "manifest.json that unpacks to 3 GiB (17 MB file)",
                   "refused at once, naming the file and the size; memory stays flat")
def test_a_manifest_bomb_is_refused_before_it_is_unpacked(tiny_bundle: Path, tmp_path: Path) -> None:
    import time

    from _memory import MiB, peak_growth

    from app.manifest import read_manifest_light

    bomb = _rewrite(tiny_bundle, tmp_path / "bomb.inspector")
    _declare_size(bomb, "manifest.json", 3 << 30)
    for reader in (read_manifest, load_bundle, read_manifest_light):
        t0 = time.monotonic()
        err, grew = peak_growth(lambda: reader(bomb))
        assert isinstance(err, BundleError), err
        assert "bomb.inspector" in str(err) and "manifest.json unpacks to 3.0 GiB" in str(err)
        assert time.monotonic() - t0 < 2.0 and grew < 50 * MiB

    real = tmp_path / "deflated.inspector"  # a real one: 40 MiB of JSON deflated to ~40 KB
    with zipfile.ZipFile(real, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("manifest.json", "{" + " " * (40 << 20) + "}")
        zf.writestr("weights.pt", b"")
    assert real.stat().st_size < 1 << 20
    with pytest.raises(BundleError, match="unpacks to 40.0 MiB"):
        read_manifest(real)


@pytest.mark.fault("bundle", "weights.pt that unpacks to 3.9 GiB",
                   "refused at once: the size differs from the manifest's record, or exceeds the 2 GiB limit")
def test_a_weights_bomb_is_refused_before_it_is_unpacked(tiny_bundle: Path, tmp_path: Path) -> None:
    import time

    from _memory import MiB, peak_growth
    from inspection_core.bundle import MAX_WEIGHTS_BYTES

    bomb = _rewrite(tiny_bundle, tmp_path / "wbomb.inspector")
    _declare_size(bomb, "weights.pt", 3900 << 20)
    t0 = time.monotonic()
    err, grew = peak_growth(lambda: load_bundle(bomb))
    assert isinstance(err, BundleError) and "weights are 3.8 GiB but the manifest records" in str(err), err
    assert time.monotonic() - t0 < 2.0 and grew < 50 * MiB

    def claim(m: dict) -> dict:  # the manifest agrees with the bomb: the hard limit refuses it
        m["weights"]["bytes"] = 3900 << 20
        return m

    with pytest.raises(BundleError, match="weights.bytes' must be a size up to 2.0 GiB"):
        load_bundle(_rewrite(tiny_bundle, tmp_path / "claims.inspector", manifest_fn=claim))
    assert MAX_WEIGHTS_BYTES >= 1 << 30  # room for real PatchCore bundles (100-300 MB)


@pytest.mark.fault("bundle", "zip with '../' member names, duplicate manifest.json, or 65,535 members",
                   "refused ('suspicious name', 'twice', 'declares N members'); nothing is ever extracted")
def test_odd_archives_are_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    import warnings

    with zipfile.ZipFile(tiny_bundle) as zf:
        manifest, weights = zf.read("manifest.json"), zf.read("weights.pt")
    cases = {
        "traversal": [("manifest.json", manifest), ("weights.pt", weights), ("../../pwned.sh", b"echo")],
        "absolute": [("manifest.json", manifest), ("weights.pt", weights), ("/etc/cron.d/x", b"x")],
        "twice": [("manifest.json", b"{}"), ("manifest.json", manifest), ("weights.pt", weights)],
    }
    expected = {"traversal": "suspicious name", "absolute": "suspicious name", "twice": "twice"}
    for case, members in cases.items():
        path = tmp_path / f"{case}.inspector"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
            with zipfile.ZipFile(path, "w") as zf:
                for name, data in members:
                    zf.writestr(name, data)
        with pytest.raises(BundleError, match=expected[case]):
            load_bundle(path)
    many = tmp_path / "many.inspector"
    with zipfile.ZipFile(many, "w") as zf:
        for i in range(17):
            zf.writestr(f"m{i}", b"")
    with pytest.raises(BundleError, match="declares 17 members"):
        read_manifest(many)
    data = bytearray(many.read_bytes())  # a central directory that claims 70,000 entries is not even parsed
    eocd = data.rfind(b"PK\x05\x06")
    data[eocd + 8:eocd + 12] = (65535).to_bytes(2, "little") * 2
    many.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="declares 65535 members"):
        read_manifest(many)
    assert not (tmp_path.parent / "pwned.sh").exists()


@pytest.mark.fault("bundle", "full disk when a finished training is saved",
                   "BundleError naming the file and the cause; the model is saved to the data folder instead")
def test_a_bundle_that_cannot_be_written_is_rescued(tiny_bundle: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from _disk import fill, small_disk

    monkeypatch.setenv("INSPECTOR_DATA_DIR", str(tmp_path / "data"))
    b = load_bundle(tiny_bundle)
    model = b.build_model()
    with small_disk(tmp_path / "disk", size_kb=128) as disk:
        fill(disk)
        with pytest.raises(BundleError) as info:
            save_bundle(disk / "trained.inspector", model, b.manifest)
    message = str(info.value)
    assert f"'{disk / 'trained.inspector'}'" in message and "no space left on the disk" in message
    rescued = list((tmp_path / "data" / "rescued").glob("trained-*.inspector"))
    assert len(rescued) == 1 and f"saved to '{rescued[0]}'" in message
    assert load_bundle(rescued[0]).manifest["weights"] == b.manifest["weights"]


def _set(path: str, value):
    def fn(m: dict) -> dict:
        *keys, last = path.split(".")
        d = m
        for k in keys:
            d = d.setdefault(k, {})
        d[last] = value
        return m
    return fn


@pytest.mark.fault("bundle", "manifest fields out of range or of the wrong type (format_version -5, a preprocessing "
                   "size unlike the model's, latent size 10⁹, map_scale 'x', a threshold 'abc', NaN parameters, "
                   "sections of the wrong type)",
                   "BundleError naming the bundle and the field; latent 10⁹ refused at once on the meta device "
                   "(it gave a raw allocator message)")
@pytest.mark.parametrize("change, message", [
    (_set("format_version", -5), "format_version must be 1 or more"),
    (_set("preprocessing.image_size", 64), "does not match the model"),
    (_set("model.params.latent_dim", 10**9), "latent_dim must be a whole number from 1 to 8192"),
    (_set("model.params.base_width", 10**6), "base_width must be a whole number from 1 to 512"),
    (_set("score_stats.map_scale", "x"), "'score_stats.map_scale' must be a number"),
    (_set("threshold.high", "abc"), "threshold must hold numbers"),
    (_set("threshold.high", float("nan")), "threshold must hold numbers"),
    (_set("model.params.lam", float("inf")), "must be a finite number"),
    (_set("weights", ["sha"]), "'weights' must be an object"),
    (_set("training", [1, 2]), "'training' must be an object"),
    (_set("training.config", "seed=3"), "'training.config' must be an object"),
    (_set("name", 42), "'name' must be text"),
    (_set("model.channels", 3.0), "channels a whole number"),
])
def test_bad_manifest_fields_are_refused_by_name(tiny_bundle: Path, tmp_path: Path, change, message: str) -> None:
    import time

    from _memory import MiB, peak_growth

    bad = _rewrite(tiny_bundle, tmp_path / "bad.inspector", manifest_fn=change)
    t0 = time.monotonic()
    err, grew = peak_growth(lambda: Inspector(bad, device="cpu"))
    assert isinstance(err, BundleError), repr(err)
    assert "bad.inspector" in str(err) and message in str(err), str(err)
    assert time.monotonic() - t0 < 5.0 and grew < 200 * MiB
