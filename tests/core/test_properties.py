"""Property-based tests (Hypothesis) of the two readers that take bytes from
outside (issue 13): random and mutated bytes never give a traceback, never
run code, and reading any one input adds less than ``MEMORY_BOUND`` (64 MiB)
to the process's peak memory.

- The image reader: whatever the bytes, ``decode_image`` returns an array in
  the documented layout (which the one preprocessing path accepts) or raises
  ``ImageReadError``; the header probe never raises.
- The bundle reader: whatever the bytes of a bundle (flipped, cut, inserted,
  a manifest with random values at random places, a pickle that would run
  code), ``load_bundle`` and ``Inspector`` return or raise ``BundleError``.

Examples are derandomised (the same ones on every run, so CI is stable);
``INSPECTOR_HYPOTHESIS=explore`` searches ten times longer with fresh examples.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import tempfile
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _memory import MiB, peak_growth
from inspection_core.bundle import BundleError, load_bundle
from inspection_core.data.image_header import probe
from inspection_core.data.images import ImageReadError, decode_image
from inspection_core.data.preprocess import Preprocessing, to_model_image

settings.register_profile("ci", derandomize=True, database=None, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("explore", database=None, deadline=None, max_examples=3000,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PROFILE = os.environ.get("INSPECTOR_HYPOTHESIS", "ci")
settings.load_profile(PROFILE)
SCALE = 10 if PROFILE == "explore" else 1
#: what reading one input may add to the process's peak memory (a bundle here is 250 KB, an image a few KB)
MEMORY_BOUND = 64 * MiB


# --------------------------------------------------------------------------- bytes to mutate

def _seed_images() -> list[bytes]:
    rng = np.random.default_rng(0)
    colour = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, (24, 32), dtype=np.uint8)
    deep = rng.integers(0, 65536, (12, 16), dtype=np.uint16)
    rgba = rng.integers(0, 256, (12, 16, 4), dtype=np.uint8)
    out = [cv2.imencode(ext, img)[1].tobytes() for ext, img in (
        (".png", colour), (".png", gray), (".png", deep), (".png", rgba), (".jpg", colour), (".jpg", gray),
        (".bmp", colour), (".tif", colour), (".tif", deep), (".webp", colour), (".pgm", gray), (".ppm", colour))]
    ok, pages = cv2.imencodemulti(".tif", [gray, gray]) if hasattr(cv2, "imencodemulti") else (False, None)
    if ok:
        out.append(pages.tobytes())
    return out


SEEDS = _seed_images()


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "set", "cut", "insert", "header"]))
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[pos] = draw(st.integers(0, 255))
        elif op == "cut":
            data = data[:pos]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=64))
        else:  # rewrite a width/height/offset-like field near the start with an extreme value
            at = draw(st.integers(0, min(len(data), 64) - 1))
            value = draw(st.sampled_from([0, 1, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF]))
            data[at:at + 4] = value.to_bytes(4, draw(st.sampled_from(["big", "little"])))
    return bytes(data)


IMAGE_BYTES = st.one_of(mutated_images(), st.binary(max_size=2048),
                        st.builds(lambda magic, rest: magic + rest,
                                  st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM", b"II*\x00", b"MM\x00*",
                                                   b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"P5\n", b"P6 "]),
                                  st.binary(max_size=512)))


@pytest.mark.fault("images", "random and mutated image bytes (Hypothesis: flipped, cut, inserted, extreme header "
                   "fields, random data behind image signatures)",
                   "an image in the documented layout or ImageReadError; never another error; memory stays bounded")
def test_random_and_mutated_image_bytes_never_give_a_traceback() -> None:
    pp_colour, pp_gray = Preprocessing(32, 3), Preprocessing(16, 1)
    seen = {"decoded": 0, "refused": 0}
    for data in SEEDS:  # one-time costs (each codec's first use) are not the reader's
        decode_image(data) if data[:4] != b"II*\x00" or probe(data).pages == 1 else None

    worst = [0]

    @settings(max_examples=400 * SCALE)
    @given(IMAGE_BYTES)
    def check(data: bytes) -> None:
        probe(data)  # never raises
        img, grew = peak_growth(lambda: decode_image(data, "fuzz.bin"), collect=False)
        worst[0] = max(worst[0], grew)
        assert grew < MEMORY_BOUND, f"decoding {len(data)} bytes took {grew / MiB:.0f} MiB"
        if isinstance(img, ImageReadError):
            assert img.reason and "fuzz.bin" in str(img)
            seen["refused"] += 1
            return
        if isinstance(img, BaseException):
            raise img
        assert img.dtype in (np.uint8, np.uint16) and img.ndim in (2, 3) and img.size > 0
        assert img.ndim == 2 or img.shape[2] in (3, 4)
        assert to_model_image(img, pp_colour).shape == (32, 32, 3)
        assert to_model_image(img, pp_gray).shape == (16, 16, 1)
        seen["decoded"] += 1

    check()
    assert seen["decoded"] > 20 and seen["refused"] > 20, seen
    assert worst[0] < MEMORY_BOUND


# --------------------------------------------------------------------------- bundles

class _RunsCode:
    """A pickle that would create a file if anything unpickled it."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # pragma: no cover - must never be called
        return (open, (self.marker, "w"))


def _zip(manifest: bytes, weights: bytes, extra: list[tuple[str, bytes]] = ()) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("manifest.json", manifest)
        zf.writestr("weights.pt", weights)
        for name, data in extra:
            zf.writestr(name, data)
    return buf.getvalue()


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _paths(d: object, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(d, dict):
        for k, v in d.items():
            out += _paths(v, prefix + (k,))
    return out


@st.composite
def mutated_manifests(draw: st.DrawFn, manifest: dict) -> dict:
    m = json.loads(json.dumps(manifest))
    paths = _paths(m)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths))
        d = m
        for k in path[:-1]:
            d = d.get(k) if isinstance(d, dict) else None
            if not isinstance(d, dict):
                break
        if isinstance(d, dict):
            if draw(st.booleans()):
                d[path[-1]] = draw(JSON_VALUES)
            else:
                d.pop(path[-1], None)
    return m


@pytest.fixture(scope="module")
def bundle_parts(tiny_bundle: Path) -> tuple[bytes, dict, bytes]:
    data = tiny_bundle.read_bytes()
    with zipfile.ZipFile(tiny_bundle) as zf:
        return data, json.loads(zf.read("manifest.json")), zf.read("weights.pt")


def _evil_weights(marker: str) -> bytes:
    buf = io.BytesIO()
    pickle.dump({"w": _RunsCode(marker)}, buf)
    return buf.getvalue()


@pytest.mark.fault("bundle", "random and mutated bundle bytes (Hypothesis: flipped, cut, inserted bytes; random "
                   "manifest values at random places; extra members; a pickle that runs code, with a matching checksum)",
                   "load_bundle returns or raises BundleError; no code runs; memory stays bounded")
def test_random_and_mutated_bundles_never_give_a_traceback(bundle_parts, tmp_path_factory) -> None:
    data, manifest, weights = bundle_parts
    folder = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp()))
    marker = str(folder / "code-ran")
    evil = _evil_weights(marker)

    def with_evil(m: dict) -> bytes:
        m = json.loads(json.dumps(m))
        m["weights"] = {"file": "weights.pt", "sha256": hashlib.sha256(evil).hexdigest(), "bytes": len(evil)}
        return _zip(json.dumps(m).encode(), evil)

    @st.composite
    def mutated_bundles(draw: st.DrawFn) -> bytes:
        kind = draw(st.sampled_from(["bytes", "manifest", "manifest", "evil", "extra", "random"]))
        if kind == "random":
            return draw(st.binary(max_size=4096))
        if kind == "manifest":
            return _zip(json.dumps(draw(mutated_manifests(manifest)), allow_nan=True).encode(), weights)
        if kind == "evil":
            return with_evil(draw(mutated_manifests(manifest)) if draw(st.booleans()) else manifest)
        if kind == "extra":
            name = draw(st.sampled_from(["../x", "/abs", "manifest.json", "notes.txt", "a\\..\\b"]))
            return _zip(json.dumps(manifest).encode(), weights, [(name, draw(st.binary(max_size=64)))])
        b = bytearray(data)
        for _ in range(draw(st.integers(1, 4))):
            pos = draw(st.integers(0, len(b) - 1))
            op = draw(st.sampled_from(["flip", "cut", "insert", "tail"]))
            if op == "flip":
                b[pos] ^= 1 << draw(st.integers(0, 7))
            elif op == "cut":
                b = b[:pos] if pos else b
            elif op == "insert":
                b[pos:pos] = draw(st.binary(min_size=1, max_size=32))
            else:  # the end record and central directory: where sizes and counts live
                at = max(0, len(b) - draw(st.integers(1, min(len(b), 200))))
                b[at] = draw(st.integers(0, 255))
        return bytes(b)

    seen = {"loaded": 0, "refused": 0}
    path = folder / "fuzz.inspector"
    path.write_bytes(data)
    load_bundle(path).build_model()  # one-time costs (imports, torch's first model) are not the reader's

    @settings(max_examples=250 * SCALE)
    @given(mutated_bundles())
    def check(blob: bytes) -> None:
        path.write_bytes(blob)
        out, grew = peak_growth(lambda: load_bundle(path).build_model(), collect=False)
        assert grew < MEMORY_BOUND, f"reading a {len(blob)}-byte bundle took {grew / MiB:.0f} MiB"
        if isinstance(out, BundleError):
            assert "fuzz.inspector" in str(out) and out.reason
            seen["refused"] += 1
        elif isinstance(out, BaseException):
            raise out
        else:
            seen["loaded"] += 1
        assert not os.path.exists(marker), "unpickling ran code"

    check()
    assert seen["refused"] > 100 and seen["loaded"] > 0, seen


@pytest.mark.fault("bundle", "mutated manifests opened by the Inspector (scoring path, score statistics, threshold)",
                   "an Inspector that scores, or BundleError naming the bundle; never another error")
def test_mutated_manifests_never_break_the_inspector(bundle_parts, tmp_path_factory) -> None:
    from inspection_core.inference import Inspector

    _data, manifest, weights = bundle_parts
    path = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp())) / "m.inspector"
    image = np.random.default_rng(0).integers(40, 200, (40, 40, 3)).astype(np.uint8)  # a textured part

    @settings(max_examples=25 * SCALE)
    @given(mutated_manifests(manifest))
    def check(m: dict) -> None:
        path.write_bytes(_zip(json.dumps(m, allow_nan=True).encode(), weights))
        try:
            insp = Inspector(path, device="cpu")
        except BundleError as exc:
            assert "m.inspector" in str(exc)
            return
        pred = insp.predict(image)
        assert pred.verdict.value in ("PASS", "REVIEW", "FAIL") or (pred.verdict.value == "INVALID" and pred.reason)

    check()
