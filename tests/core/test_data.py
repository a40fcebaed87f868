"""Image reading, the preprocessing path and folder data sets."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from inspection_core.data import (
    EXPECTED_LAYOUT,
    DatasetLayoutError,
    ImageReadError,
    Preprocessing,
    from_tensor,
    list_images,
    load_images,
    load_masks,
    make_demo_dataset,
    prepare_mask,
    read_image,
    scan_dataset,
    to_model_image,
    to_tensor,
)


def _write(path: Path, img: np.ndarray) -> Path:
    """Write with imencode + tofile so non-ASCII paths work everywhere."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(path.suffix, img)
    assert ok
    buf.tofile(str(path))
    return path


def _rng_image(shape: tuple[int, ...], dtype=np.uint8, seed: int = 0) -> np.ndarray:
    hi = 65535 if dtype == np.uint16 else 255
    return np.random.default_rng(seed).integers(0, hi + 1, size=shape).astype(dtype)


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo_dataset(
        tmp_path_factory.mktemp("demo") / "washers", seed=3, size=64, n_train=6, n_test_good=3, n_test_defect_per_type=2
    )


# ---------------------------------------------------------------- images


@pytest.mark.parametrize(
    "name, img",
    [
        ("gray8.png", _rng_image((20, 30))),
        ("bgr8.png", _rng_image((20, 30, 3))),
        ("bgra8.png", _rng_image((20, 30, 4))),
        ("gray16.png", _rng_image((20, 30), np.uint16)),
        ("bgr16.tif", _rng_image((20, 30, 3), np.uint16)),
        ("bmp8.bmp", _rng_image((17, 9, 3))),
    ],
)
def test_read_image_keeps_pixels_depth_and_channels(tmp_path: Path, name: str, img: np.ndarray) -> None:
    got = read_image(_write(tmp_path / name, img))
    assert got.dtype == img.dtype
    assert got.shape == img.shape
    np.testing.assert_array_equal(got, img)


def test_read_image_with_non_ascii_path(tmp_path: Path) -> None:
    img = _rng_image((12, 14, 3))
    path = _write(tmp_path / "Prüfteil 检查" / "schraube_ä.png", img)
    np.testing.assert_array_equal(read_image(path), img)
    assert list_images(path.parent) == [path]


@pytest.mark.fault("images", "corrupt, zero-byte and missing image files",
                   "ImageReadError naming the file: 'not a decodable image', 'empty file', 'file not found'")
def test_corrupt_empty_and_missing_files_name_the_file(tmp_path: Path) -> None:
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    missing = tmp_path / "nope.png"
    for path, reason in [(corrupt, "not a decodable image"), (empty, "empty file"), (missing, "file not found")]:
        with pytest.raises(ImageReadError) as err:
            read_image(path)
        assert str(path) in str(err.value)
        assert reason in str(err.value)
        assert err.value.path == path
        assert isinstance(err.value, ValueError)


def test_list_images_sorted_by_extension_skipping_hidden(tmp_path: Path) -> None:
    img = _rng_image((4, 4))
    for name in ["b.png", "a.JPG", "c.tiff", ".hidden.png", "notes.txt", "sub/d.png"]:
        p = tmp_path / name
        p.parent.mkdir(exist_ok=True)
        if name.endswith("txt"):
            p.write_text("x")
        else:
            _write(p, img) if not name.endswith("JPG") else _write(p.with_suffix(".jpg"), img).rename(p)
    assert [p.name for p in list_images(tmp_path)] == ["a.JPG", "b.png", "c.tiff"]
    assert [p.name for p in list_images(tmp_path, recursive=True)] == ["a.JPG", "b.png", "c.tiff", "d.png"]
    assert list_images(tmp_path / "absent") == []


# ---------------------------------------------------------------- preprocessing


def test_preprocessing_round_trips_through_dict() -> None:
    pp = Preprocessing(image_size=64, channels=1)
    assert Preprocessing.from_dict(pp.to_dict()) == pp
    with pytest.raises(ValueError, match="channels"):
        Preprocessing(64, 2)


def test_16_bit_maps_full_range_to_8_bit() -> None:
    img = np.array([[0, 257 * 100, 65535, 128]], dtype=np.uint16).repeat(4, axis=0)
    out = to_model_image(img, Preprocessing(4, 1))
    assert out.dtype == np.uint8 and out.shape == (4, 4, 1)
    np.testing.assert_array_equal(out[0, :, 0], [0, 100, 255, 0])


def test_channel_conversions() -> None:
    gray = _rng_image((8, 8))
    bgr = _rng_image((8, 8, 3), seed=1)
    bgra = np.dstack([bgr, np.full((8, 8), 7, np.uint8)])
    three = to_model_image(gray, Preprocessing(8, 3))
    assert three.shape == (8, 8, 3)
    for c in range(3):
        np.testing.assert_array_equal(three[:, :, c], gray)
    one = to_model_image(bgr, Preprocessing(8, 1))
    np.testing.assert_array_equal(one[:, :, 0], cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    np.testing.assert_array_equal(to_model_image(bgra, Preprocessing(8, 3)), bgr)  # alpha dropped
    assert to_model_image(bgr, Preprocessing(8, 3)).flags["C_CONTIGUOUS"]


def test_resize_filters_and_non_square_stretch() -> None:
    img = _rng_image((100, 100, 3))
    np.testing.assert_array_equal(
        to_model_image(img, Preprocessing(32, 3)), cv2.resize(img, (32, 32), interpolation=cv2.INTER_AREA)
    )
    small = _rng_image((10, 10, 3))
    np.testing.assert_array_equal(
        to_model_image(small, Preprocessing(32, 3)), cv2.resize(small, (32, 32), interpolation=cv2.INTER_LINEAR)
    )
    # A wide image is stretched, not cropped: its right half lands in the right half.
    wide = np.zeros((40, 120), np.uint8)
    wide[:, 60:] = 255
    out = to_model_image(wide, Preprocessing(32, 1))[:, :, 0]
    assert out.shape == (32, 32)
    assert out[:, :15].max() == 0 and out[:, 17:].min() == 255


def test_to_tensor_from_tensor_round_trip() -> None:
    batch = _rng_image((5, 16, 16, 3))
    batch[0, 0, 0] = [0, 255, 128]
    t = to_tensor(batch)
    assert t.dtype == torch.float32 and tuple(t.shape) == (5, 3, 16, 16)
    assert t.min().item() == -1.0 and t.max().item() == 1.0
    assert t[0, 1, 0, 0].item() == 1.0  # channel order kept (BGR stays BGR)
    np.testing.assert_array_equal(from_tensor(t), batch)
    np.testing.assert_array_equal(to_tensor(list(batch)), t)
    # Out-of-range network output is clamped, not wrapped.
    wild = torch.tensor([-3.0, 3.0, 0.0]).reshape(1, 3, 1, 1)
    np.testing.assert_array_equal(from_tensor(wild)[0, 0, 0], [0, 255, 128])
    with pytest.raises(ValueError, match="uint8"):
        to_tensor(batch.astype(np.float32))


def test_prepare_mask_nearest_and_any_depth() -> None:
    m16 = np.zeros((8, 8), np.uint16)
    m16[:4, :4] = 65535
    out = prepare_mask(m16, 4)
    assert out.dtype == bool and out.shape == (4, 4)
    assert out[:2, :2].all() and out.sum() == 4
    m3 = np.zeros((6, 6, 3), np.uint8)
    m3[1, 1, 2] = 255
    assert prepare_mask(m3, 6).sum() == 1


# ---------------------------------------------------------------- data sets


def test_scan_demo_dataset(demo_root: Path) -> None:
    idx = scan_dataset(demo_root)
    summary = idx.summary()
    assert summary == {
        "layout": "mvtec",
        "n_train": 6,
        "n_test_good": 3,
        "n_test_defect": 8,
        "defect_types": {"dent": 2, "missing": 2, "scratch": 2, "stain": 2},
        "n_masks": 8,
        "channels": 3,
    }
    for s in idx.test:
        if s.label == 1:
            assert s.mask_path is not None and s.mask_path.name == f"{s.path.stem}_mask.png"
            assert s.mask_path.parent.name == s.defect_type == s.path.parent.name
        else:
            assert s.mask_path is None and s.defect_type == "good"
    assert len(idx.fingerprint()) == 64 and idx.fingerprint() == scan_dataset(demo_root).fingerprint()


def test_gray_data_sets_are_one_channel(tmp_path: Path) -> None:
    root = make_demo_dataset(tmp_path / "g", size=32, n_train=3, n_test_good=1, n_test_defect_per_type=1, channels=1)
    assert read_image(root / "train" / "good" / "000.png").ndim == 2
    assert scan_dataset(root).channels == 1
    # Grayscale saved as 3 identical channels also counts as gray.
    rgb_root = tmp_path / "rgb"
    for i in range(3):
        g = _rng_image((16, 16), seed=i)
        _write(rgb_root / "train" / "good" / f"{i}.png", cv2.cvtColor(g, cv2.COLOR_GRAY2BGR))
    assert scan_dataset(rgb_root).channels == 1


def test_masks_accept_plain_stem_and_load(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    _write(root / "train" / "good" / "a.png", _rng_image((16, 16, 3)))
    _write(root / "test" / "crack" / "x.png", _rng_image((16, 16, 3)))
    _write(root / "test" / "crack" / "y.png", _rng_image((16, 16, 3)))
    mask = np.zeros((16, 16), np.uint8)
    mask[:8] = 255
    _write(root / "ground_truth" / "crack" / "x.png", mask)
    idx = scan_dataset(root)
    assert [s.mask_path.name if s.mask_path else None for s in idx.test] == ["x.png", None]
    masks = load_masks(idx.test, 8)
    assert masks.shape == (2, 8, 8) and masks.dtype == bool
    assert masks[0, :4].all() and not masks[0, 4:].any() and not masks[1].any()


def test_good_defect_layout_seeded_split(tmp_path: Path) -> None:
    root = tmp_path / "gd"
    for i in range(10):
        _write(root / "good" / f"g{i}.png", _rng_image((8, 8, 3), seed=i))
    for i in range(3):
        _write(root / "bad" / f"b{i}.png", _rng_image((8, 8, 3), seed=50 + i))
    idx = scan_dataset(root, seed=1)
    s = idx.summary()
    assert (s["layout"], s["n_train"], s["n_test_good"], s["n_test_defect"]) == ("good_defect", 7, 3, 3)
    assert s["defect_types"] == {"bad": 3}
    train_names = {x.path.name for x in idx.train}
    assert train_names.isdisjoint(x.path.name for x in idx.test)
    assert train_names == {x.path.name for x in scan_dataset(root, seed=1).train}
    assert any(train_names != {x.path.name for x in scan_dataset(root, seed=k).train} for k in range(2, 6))


def test_folders_of_images_the_good_defect_layout_does_not_read_are_named(tmp_path: Path,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    # an MVTec category's test folder given as the data set: good/ beside crack/ and scratch/
    root = tmp_path / "test"
    for i in range(4):
        _write(root / "good" / f"g{i}.png", _rng_image((8, 8, 3), seed=i))
    for name in ("crack", "scratch"):
        _write(root / name / "000.png", _rng_image((8, 8, 3), seed=9))
    (root / "empty_folder").mkdir()
    with caplog.at_level(logging.WARNING):
        idx = scan_dataset(root)
    assert idx.summary()["n_test_defect"] == 0
    notes = [n for n in idx.notes if "were not read" in n]
    assert len(notes) == 1 and "'crack', 'scratch'" in notes[0] and "empty_folder" not in notes[0]
    assert "defect/" in notes[0] and "train/ and test/" in notes[0]
    assert any("were not read" in r.getMessage() and str(root) in r.getMessage() for r in caplog.records)
    # the usual good/ + bad/ pair gets no such note
    _write(tmp_path / "gd" / "good" / "g.png", _rng_image((8, 8, 3), seed=1))
    _write(tmp_path / "gd" / "bad" / "b.png", _rng_image((8, 8, 3), seed=2))
    assert not [n for n in scan_dataset(tmp_path / "gd").notes if "were not read" in n]


@pytest.mark.parametrize("case", ["empty", "wrong", "no_train_images", "missing"])
def test_bad_folders_explain_the_expected_layout(tmp_path: Path, case: str) -> None:
    root = tmp_path / "ds"
    if case != "missing":
        root.mkdir()
    if case == "wrong":
        _write(root / "images" / "a.png", _rng_image((8, 8)))
    if case == "no_train_images":
        (root / "train" / "good").mkdir(parents=True)
    with pytest.raises(DatasetLayoutError) as err:
        scan_dataset(root)
    msg = str(err.value)
    assert str(root) in msg
    if case == "missing":
        assert "does not exist" in msg
    else:
        assert EXPECTED_LAYOUT in msg


@pytest.mark.fault("data set", "corrupt files among training images",
                   "skipped with a warning naming each, listed in the run's summary")
def test_load_images_skips_and_reports_corrupt_files(
    demo_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    idx = scan_dataset(demo_root)
    bad = tmp_path / "corrupt.png"
    bad.write_bytes(b"garbage")
    samples = [idx.train[0], type(idx.train[0])(bad, 0, "good"), idx.train[1]]
    pp = Preprocessing(32, 3)
    seen: list[tuple[int, int]] = []
    with caplog.at_level(logging.WARNING):
        loaded = load_images(samples, pp, progress=lambda d, n: seen.append((d, n)))
    assert loaded.images.shape == (2, 32, 32, 3) and loaded.images.dtype == np.uint8
    assert [s.path for s in loaded.samples] == [idx.train[0].path, idx.train[1].path]
    assert len(loaded.skipped) == 1 and loaded.skipped[0][0] == bad
    assert "corrupt.png" in caplog.text
    np.testing.assert_array_equal(loaded.images[1], to_model_image(read_image(idx.train[1].path), pp))
    assert seen[-1] == (3, 3)


def test_fingerprint_changes_when_a_file_changes(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    p = _write(root / "train" / "good" / "a.png", _rng_image((8, 8)))
    before = scan_dataset(root).fingerprint()
    _write(root / "train" / "good" / "b.png", _rng_image((8, 8)))
    after_add = scan_dataset(root).fingerprint()
    _write(p, _rng_image((9, 9), seed=5))
    os.utime(p, ns=(1, 1))
    assert len({before, after_add, scan_dataset(root).fingerprint()}) == 3


SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.mark.data
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"real data sets not found at {SHARED_DATA}")
def test_real_data_sets_scan_as_documented() -> None:
    tile = scan_dataset(SHARED_DATA / "magnetic_tile").summary()
    assert (tile["n_train"], tile["n_test_good"], tile["n_test_defect"], tile["n_masks"]) == (200, 60, 392, 392)
    assert tile["channels"] == 1
    screw = scan_dataset(SHARED_DATA / "screw").summary()
    assert (screw["n_train"], screw["n_test_good"], screw["n_test_defect"]) == (320, 41, 119)
    assert screw["n_masks"] == 0  # its masks cannot be paired with images by name


# ---------------------------------------------------------------- bad inputs (issue 13)


def _png_declaring(width: int, height: int) -> bytes:
    """A valid tiny PNG whose IHDR (with a correct CRC) declares another size: a decompression bomb's header."""
    import struct
    import zlib

    data = bytearray(cv2.imencode(".png", _rng_image((2, 2)))[1].tobytes())
    struct.pack_into(">II", data, 16, width, height)
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    return bytes(data)


@pytest.mark.fault("images", "a PNG declaring 20000 × 20000 pixels (a few hundred bytes)",
                   "ImageReadError 'declares 20000 × 20000 pixels (400 megapixels), more than the 268 …' before decoding")
def test_an_image_declaring_too_many_pixels_is_refused_before_decoding(tmp_path: Path) -> None:
    from inspection_core.data.image_header import probe

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_declaring(20000, 20000))
    assert probe(bomb.read_bytes()).pixels == 400_000_000
    with pytest.raises(ImageReadError, match=r"declares 20000 × 20000 pixels \(400 megapixels\), more than the 268"):
        read_image(bomb)
    big = _write(tmp_path / "camera.png", _rng_image((3000, 4000)))  # a 12-megapixel camera image is read
    assert read_image(big).shape == (3000, 4000)


@pytest.mark.fault("images", "a multi-page TIFF", "ImageReadError 'multi-page TIFF (3 pages)' (it scored page 1 without a word)")
def test_a_multi_page_tiff_is_refused_with_its_page_count(tmp_path: Path) -> None:
    pages = [_rng_image((20, 30), seed=i) for i in range(3)]
    multi = tmp_path / "stack.tif"
    assert cv2.imwritemulti(str(multi), pages)
    with pytest.raises(ImageReadError, match=r"multi-page TIFF \(3 pages\): Inspector scores one image per file"):
        read_image(multi)
    single = tmp_path / "one.tif"
    assert cv2.imwritemulti(str(single), pages[:1])
    np.testing.assert_array_equal(read_image(single), pages[0])


@pytest.mark.fault("images", "broken symbolic links in a folder (source, predict, data set)",
                   "listed, skipped with 'broken symbolic link (its target … does not exist)' and counted")
def test_broken_symlinks_are_skipped_and_counted(tmp_path: Path) -> None:
    from inspection_core.sources import FolderSource, WatchedFolderSource

    folder = tmp_path / "train" / "good"
    for i in range(3):
        _write(folder / f"{i}.png", _rng_image((16, 16, 3), seed=i))
    (folder / "9_link.png").symlink_to(tmp_path / "gone.png")
    assert [p.name for p in list_images(folder)] == ["0.png", "1.png", "2.png", "9_link.png"]
    with pytest.raises(ImageReadError, match="broken symbolic link"):
        read_image(folder / "9_link.png")
    with FolderSource(folder) as src:
        assert len(list(src)) == 3 and [(p.name, "broken" in r) for p, r in src.skipped] == [("9_link.png", True)]
    index = scan_dataset(tmp_path)
    loaded = load_images(index.train, Preprocessing(16, 3))
    assert len(loaded.samples) == 3 and [p.name for p, _ in loaded.skipped] == ["9_link.png"]
    watched = tmp_path / "incoming"
    watched.mkdir()
    with WatchedFolderSource(watched, poll_interval=0.02, settle_time=0.05) as src:
        (watched / "late.png").symlink_to(tmp_path / "never.png")
        _write(watched / "real.png", _rng_image((8, 8, 3)))
        frame = src.poll(3.0)
        import time

        deadline = time.monotonic() + 3.0
        while not src.skipped and time.monotonic() < deadline:
            frame = frame or src.poll(0.05)
        assert frame is not None and frame.ref.endswith("real.png")
        assert [p.name for p, _ in src.skipped] == ["late.png"] and "broken symbolic link" in src.last_error


@pytest.mark.fault("data set", "a training folder mixing gray and colour images (the colour ones sorted last)",
                   "3 channels from the whole folder, with a note 'training images mix gray and colour' (logged, in the manifest)")
def test_a_mixed_gray_and_colour_folder_is_decided_by_every_file_and_said(tmp_path: Path,
                                                                           caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "mixed"
    for i in range(10):
        _write(root / "train" / "good" / f"a{i:02d}.png", _rng_image((16, 16), seed=i))  # gray, sorted first
    _write(root / "train" / "good" / "z_colour.png", _rng_image((16, 16, 3), seed=99))
    with caplog.at_level(logging.WARNING):
        index = scan_dataset(root)
    assert index.channels == 3
    assert len(index.notes) == 1 and "mix gray and colour" in index.notes[0] and "z_colour.png" in index.notes[0]
    assert index.summary()["notes"] == index.notes and "mix gray and colour" in caplog.text
    (root / "train" / "good" / "z_colour.png").unlink()  # all gray again: 1 channel, nothing to say
    assert scan_dataset(root).channels == 1 and scan_dataset(root).notes == []
    _write(root / "train" / "good" / "z_rgb_gray.png", cv2.cvtColor(_rng_image((16, 16)), cv2.COLOR_GRAY2BGR))
    assert scan_dataset(root).channels == 1, "a colour file whose planes are equal is gray"


def _float_tiff(path: Path) -> Path:
    ok = cv2.imwrite(str(path), np.random.default_rng(0).random((12, 10)).astype(np.float32))
    assert ok
    return path


@pytest.mark.fault("images", "zero-byte, truncated, corrupt, mislabelled (PNG named .jpg), 16-bit, RGBA, float TIFF, "
                   "1×1 images, each scored", "a Prediction, or ImageReadError naming the file; never another error")
def test_every_odd_image_is_scored_or_refused_by_name(tmp_path: Path, tiny_bundle: Path) -> None:
    from inspection_core.inference import Inspector

    png = cv2.imencode(".png", _rng_image((20, 30, 3)))[1].tobytes()
    files = {
        "zero.png": b"", "truncated.png": png[: len(png) // 2], "corrupt.jpg": b"\xff\xd8\xff\xe0" + b"\x00" * 40,
        "mislabelled.jpg": png, "gray16.png": cv2.imencode(".png", _rng_image((20, 30), np.uint16))[1].tobytes(),
        "rgba.png": cv2.imencode(".png", _rng_image((20, 30, 4)))[1].tobytes(),
        "one_pixel.png": cv2.imencode(".png", _rng_image((1, 1, 3)))[1].tobytes(),
        "text.png": b"hello, not an image",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    _float_tiff(tmp_path / "float.tif")
    insp = Inspector(tiny_bundle, device="cpu")
    outcome = {}
    for path in sorted(tmp_path.iterdir()):
        try:
            pred = insp.predict(read_image(path))
            outcome[path.name] = pred.verdict.value
            assert np.isfinite(pred.score)
        except ImageReadError as exc:
            assert exc.path == path and str(path) in str(exc)
            outcome[path.name] = "refused"
    assert {k for k, v in outcome.items() if v == "refused"} == {"zero.png", "truncated.png", "corrupt.jpg", "text.png"}
    assert len(outcome) == 9


@pytest.mark.fault("images", "a 1 KB PNG whose IDAT chunk declares 4 GiB (found by the Hypothesis search)",
                   "ImageReadError 'damaged PNG: chunk 'IDAT' declares … bytes'; OpenCV allocated the declared 4 GiB")
def test_a_png_chunk_longer_than_the_file_is_refused_before_decoding(tmp_path: Path) -> None:
    from _memory import MiB, peak_growth

    data = bytearray(cv2.imencode(".png", _rng_image((24, 32)))[1].tobytes())
    at = data.find(b"IDAT") - 4
    data[at:at + 4] = b"\xff\xff\xff\xff"
    (tmp_path / "chunk.png").write_bytes(bytes(data))
    err, grew = peak_growth(lambda: read_image(tmp_path / "chunk.png"))
    assert isinstance(err, ImageReadError) and "damaged PNG: chunk 'IDAT' declares 4294967295 bytes" in str(err)
    assert grew < 50 * MiB
