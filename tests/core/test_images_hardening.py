"""Hardening of the image reader, round 3: animations, GIF files in folders,
EXIF orientation, masks of the wrong size and the decoders' own stderr lines.

The test files are written byte by byte where that is short (GIF, animated
WebP, the EXIF segment of a JPEG, damaged PNG chunks), so that what is tried
does not depend on which encoders the installed OpenCV has.
"""

from __future__ import annotations

import logging
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspection_core.data.dataset import load_images, load_masks, scan_dataset
from inspection_core.data.image_header import probe
from inspection_core.data.images import (
    IMAGE_EXTENSIONS,
    ImageReadError,
    decode_image,
    is_image_file,
    list_images,
    read_image,
)
from inspection_core.data.preprocess import Preprocessing

ROOT = Path(__file__).resolve().parents[2]


def _gray(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


# ------------------------------------------------------------ files written by hand


def _lzw_uncompressed(indices: np.ndarray) -> bytes:
    """GIF image data for 8-bit palette indices: 9-bit literal codes, a clear code
    every 250 (the code table never grows past 9 bits), as GIF allows."""
    clear, end = 256, 257
    codes: list[int] = []
    for i, v in enumerate(indices.reshape(-1).tolist()):
        if i % 250 == 0:
            codes.append(clear)
        codes.append(v)
    codes.append(end)
    acc = bits = 0
    out = bytearray()
    for c in codes:
        acc |= c << bits
        bits += 9
        while bits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            bits -= 8
    if bits:
        out.append(acc & 0xFF)
    blocks = b"".join(bytes([len(out[i:i + 255])]) + bytes(out[i:i + 255]) for i in range(0, len(out), 255))
    return b"\x08" + blocks + b"\x00"


def _gif(frames: list[np.ndarray]) -> bytes:
    """A GIF89a with a gray palette (index v is gray level v), one image per frame."""
    h, w = frames[0].shape
    palette = bytes(v for i in range(256) for v in (i, i, i))
    data = b"GIF89a" + struct.pack("<HHBBB", w, h, 0xF7, 0, 0) + palette
    if len(frames) > 1:
        data += b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"  # loop forever
    for f in frames:
        data += b"\x21\xf9\x04\x00\x0a\x00\x00\x00"  # graphic control: 0.1 s a frame
        data += b"\x2c" + struct.pack("<HHHHB", 0, 0, w, h, 0) + _lzw_uncompressed(f)
    return data + b"\x3b"


def _riff_chunk(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("<I", len(payload)) + payload + (b"\x00" if len(payload) & 1 else b"")


def _animated_webp(frames: list[np.ndarray]) -> bytes:
    """An animated WebP: VP8X (animation flag), ANIM, then one ANMF per frame
    holding the lossless bitstream OpenCV encodes for it."""
    h, w = frames[0].shape[:2]
    body = _riff_chunk(b"VP8X", bytes([0x02, 0, 0, 0]) + (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little"))
    body += _riff_chunk(b"ANIM", b"\x00\x00\x00\x00\x00\x00")
    for f in frames:
        ok, buf = cv2.imencode(".webp", f, [cv2.IMWRITE_WEBP_QUALITY, 101])  # above 100: lossless
        assert ok
        still = buf.tobytes()
        assert still[12:16] == b"VP8L"
        head = (b"\x00\x00\x00" * 2 + (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little")
                + (100).to_bytes(3, "little") + b"\x00")
        body += _riff_chunk(b"ANMF", head + still[12:])
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def _with_exif_orientation(jpeg: bytes, orientation: int, big_endian: bool = False) -> bytes:
    """The JPEG with an APP1 Exif segment right after SOI whose IFD0 holds
    only the Orientation tag (0x0112, SHORT)."""
    e = ">" if big_endian else "<"
    tiff = (b"MM\x00*" if big_endian else b"II*\x00") + struct.pack(e + "I", 8)
    tiff += struct.pack(e + "H", 1) + struct.pack(e + "HHIH", 0x0112, 3, 1, orientation) + b"\x00\x00"
    tiff += struct.pack(e + "I", 0)
    payload = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


#: what each EXIF orientation asks a viewer to do with the stored pixels
UPRIGHT = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1, :],
    5: lambda a: np.swapaxes(a, 0, 1),
    6: lambda a: np.rot90(a, -1),  # 90° clockwise
    7: lambda a: np.rot90(a, 2).swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),  # 90° counter-clockwise
}


# ------------------------------------------------------------ 1. animations


@pytest.mark.fault("images", "an animated GIF, WebP or PNG (APNG)",
                   "ImageReadError 'animated GIF (12 frames)' naming the file (it scored frame 1 without a word); "
                   "a single-frame GIF or WebP is read")
def test_an_animated_image_is_refused_with_its_frame_count(tmp_path: Path) -> None:
    frames = [_gray((12, 20), seed=i) for i in range(12)]
    gif = tmp_path / "blink.gif"
    gif.write_bytes(_gif(frames))
    if hasattr(cv2, "imdecodeanimation"):  # the hand-written file is a real animation
        ok, anim = cv2.imdecodeanimation(np.fromfile(gif, dtype=np.uint8))
        assert ok and len(anim.frames) == 12
    with pytest.raises(ImageReadError, match=r"animated GIF \(12 frames\): Inspector scores one image per file") as err:
        read_image(gif)
    assert "blink.gif" in str(err.value)
    assert probe(gif.read_bytes()).frames == 12  # counted from the header, before decoding

    colour = [cv2.cvtColor(f, cv2.COLOR_GRAY2BGR) for f in frames[:5]]
    webp = tmp_path / "spin.webp"
    webp.write_bytes(_animated_webp(colour))
    if hasattr(cv2, "imdecodeanimation"):
        ok, anim = cv2.imdecodeanimation(np.fromfile(webp, dtype=np.uint8))
        assert ok and len(anim.frames) == 5
    with pytest.raises(ImageReadError, match=r"'.*spin\.webp': animated WebP \(5 frames\)"):
        read_image(webp)

    if hasattr(cv2, "imwriteanimation"):  # APNG: OpenCV writes it
        anim = cv2.Animation()
        anim.frames, anim.durations = colour[:3], [100] * 3
        apng = tmp_path / "pulse.png"
        assert cv2.imwriteanimation(str(apng), anim)
        with pytest.raises(ImageReadError, match=r"animated PNG \(APNG\) \(3 frames\)"):
            read_image(apng)

    # One frame is a still image: read exactly.
    single = tmp_path / "still.gif"
    single.write_bytes(_gif(frames[:1]))
    np.testing.assert_array_equal(read_image(single), cv2.cvtColor(frames[0], cv2.COLOR_GRAY2BGR))
    still_webp = tmp_path / "still.webp"
    still_webp.write_bytes(_animated_webp(colour[:1]))
    np.testing.assert_array_equal(read_image(still_webp), colour[0])
    ok, buf = cv2.imencode(".webp", colour[1], [cv2.IMWRITE_WEBP_QUALITY, 101])
    np.testing.assert_array_equal(decode_image(buf.tobytes()), colour[1])


# ------------------------------------------------------------ 2. GIF files in folders


@pytest.mark.fault("sources", "GIF files in an image folder (folder source, data set)",
                   "listed like any image: a single-frame GIF scored, an animated one skipped and counted with "
                   "'animated GIF (n frames)' (they were neither scored nor counted)")
def test_gif_files_in_a_folder_are_scored_or_skipped_and_counted(tmp_path: Path) -> None:
    from inspection_core.sources import FolderSource

    good = tmp_path / "good"
    good.mkdir()
    for i in range(3):
        assert cv2.imwrite(str(good / f"{i}.png"), _gray((16, 16), seed=i))
    (good / "3.gif").write_bytes(_gif([_gray((16, 16), seed=3)]))
    (good / "4.gif").write_bytes(_gif([_gray((16, 16), seed=s) for s in (4, 5, 6)]))
    (good / "5.GIF").write_bytes(_gif([_gray((16, 16), seed=7)]))
    assert [p.name for p in list_images(good)] == ["0.png", "1.png", "2.png", "3.gif", "4.gif", "5.GIF"]
    assert is_image_file("incoming/frame.gif")  # the watched folder takes them too

    with FolderSource(good) as src:
        refs = [Path(f.ref).name for f in src]
        assert src.total == 6
    assert refs == ["0.png", "1.png", "2.png", "3.gif", "5.GIF"]
    assert [(p.name, r.split(":")[0]) for p, r in src.skipped] == [("4.gif", "animated GIF (3 frames)")]

    index = scan_dataset(tmp_path)  # good/ only: a train-only good/defect set
    samples = [*index.train, *index.test]
    assert sorted(s.path.name for s in samples) == ["0.png", "1.png", "2.png", "3.gif", "4.gif", "5.GIF"]
    loaded = load_images(samples, Preprocessing(8, 1))
    assert len(loaded.samples) == 5
    assert [(p.name, "animated GIF (3 frames)" in r) for p, r in loaded.skipped] == [("4.gif", True)]


def test_every_listed_extension_is_one_the_reader_decodes(tmp_path: Path) -> None:
    """No extension is listed that read_image cannot read, and every format
    the reader is tested on has its usual extensions listed."""
    img = _gray((6, 10), seed=1)
    encoder_for = {".jpe": ".jpg", ".jfif": ".jpg", ".dib": ".bmp", ".pnm": ".pgm", ".pbm": ".pbm"}
    for ext in sorted(IMAGE_EXTENSIONS):
        path = tmp_path / f"x{ext}"
        if ext == ".gif":
            path.write_bytes(_gif([img]))
        else:
            encoder = encoder_for.get(ext, ext)
            gray = encoder in (".pgm", ".pbm")
            ok, buf = cv2.imencode(encoder, img if gray else cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))
            assert ok, ext
            path.write_bytes(buf.tobytes())
        assert read_image(path).shape[:2] == (6, 10), ext
    assert {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".pgm", ".ppm"} <= IMAGE_EXTENSIONS


# ------------------------------------------------------------ 3. EXIF orientation


@pytest.mark.fault("images", "a phone or camera JPEG with an EXIF orientation (e.g. 6: turn 90° clockwise)",
                   "read as its user sees it, all eight orientations, colour and gray (it was read as stored, "
                   "on its side)")
@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_jpeg_is_read_in_its_exif_orientation(tmp_path: Path, orientation: int) -> None:
    # A tall, asymmetric picture: any wrong turn or flip shows.
    colour = np.zeros((24, 40, 3), np.uint8)
    colour[:, :, 0] = np.arange(40, dtype=np.uint8)[None, :] * 6
    colour[:, :, 1] = np.arange(24, dtype=np.uint8)[:, None] * 10
    colour[:8, :8, 2] = 255
    for img, big_endian in ((colour, False), (cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY), True)):
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        assert ok
        stored = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)  # the pixels as stored
        path = tmp_path / f"phone_{img.ndim}.jpg"
        path.write_bytes(_with_exif_orientation(buf.tobytes(), orientation, big_endian))
        got = read_image(path)
        assert got.dtype == np.uint8 and got.ndim == img.ndim
        np.testing.assert_array_equal(got, UPRIGHT[orientation](stored))
        header = probe(path.read_bytes())  # the header says the size as viewed (a mask must match it)
        assert header.orientation == orientation and header.upright_size == got.shape[1::-1]


# ------------------------------------------------------------ 4. masks of the wrong size


@pytest.mark.fault("data set", "a ground-truth mask whose size differs from its image's",
                   "not used (it was stretched onto the image): a warning naming the mask file and both sizes, "
                   "listed in load_masks(skipped=…) for the caller to count")
def test_a_mask_of_the_wrong_size_is_reported_and_not_stretched(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    train, crack, gt = tmp_path / "train" / "good", tmp_path / "test" / "crack", tmp_path / "ground_truth" / "crack"
    for folder in (train, crack, gt):
        folder.mkdir(parents=True)
    for i in range(2):
        assert cv2.imwrite(str(train / f"{i}.png"), _gray((32, 48), seed=i))
    region = np.zeros((32, 48), np.uint8)
    region[8:16, 8:24] = 255
    for name in ("fits", "half"):
        assert cv2.imwrite(str(crack / f"{name}.png"), _gray((32, 48), seed=5))
    assert cv2.imwrite(str(gt / "fits_mask.png"), region)
    assert cv2.imwrite(str(gt / "half_mask.png"), cv2.resize(region, (24, 16), interpolation=cv2.INTER_NEAREST))
    # A phone JPEG stored on its side: the mask matches the image as viewed.
    ok, buf = cv2.imencode(".jpg", _gray((48, 32), seed=6))
    (crack / "turned.jpg").write_bytes(_with_exif_orientation(buf.tobytes(), 6))
    assert cv2.imwrite(str(gt / "turned_mask.png"), region)

    index = scan_dataset(tmp_path)
    defects = sorted((s for s in index.test if s.label == 1), key=lambda s: s.path.name)
    assert [(s.path.name, s.mask_path.name) for s in defects] == [
        ("fits.png", "fits_mask.png"), ("half.png", "half_mask.png"), ("turned.jpg", "turned_mask.png")]
    with caplog.at_level(logging.WARNING, logger="inspection_core.data.dataset"):
        masks = load_masks(defects, 16)
    assert masks[0].any() and masks[2].any()
    assert not masks[1].any()  # not stretched onto the image
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "half_mask.png" in warned[0] and "24 × 16" in warned[0] and "48 × 32" in warned[0]
    skipped: list[tuple[Path, str]] = []  # counted for the caller, which leaves the image out of pixel metrics
    np.testing.assert_array_equal(load_masks(defects, 16, skipped=skipped), masks)
    assert [p.name for p, _ in skipped] == ["half_mask.png"]
    reason = skipped[0][1]
    assert reason == (f"24 × 16 pixels, but its image '{crack / 'half.png'}' is 48 × 32: "
                      "a mask must match its image's size")


# ------------------------------------------------------------ 5. the decoders' own stderr lines


_STDERR_SCRIPT = textwrap.dedent(r"""
    import logging, struct, sys, zlib
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    import cv2
    import numpy as np

    from inspection_core.data.images import ImageReadError, read_image

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    log = logging.getLogger("check")
    folder = Path(sys.argv[1])

    def chunk(kind, payload, crc=None):
        crc = zlib.crc32(kind + payload) if crc is None else crc
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc & 0xFFFFFFFF)

    ok, buf = cv2.imencode(".png", np.full((16, 16, 3), 90, np.uint8))
    png = buf.tobytes()
    at = 8 + 25  # after IHDR
    # libpng would warn and read on: a text chunk with a wrong checksum, an ICC profile too short
    (folder / "warns.png").write_bytes(png[:at] + chunk(b"tEXt", b"Comment\x00hello", crc=1)
                                       + chunk(b"iCCP", b"ICC\x00\x00" + zlib.compress(b"\x00" * 64)) + png[at:])
    # libpng would give up, printing why: the image data's checksum is wrong; the file is cut before its end
    i = png.find(b"IDAT")
    flipped = bytearray(png)
    flipped[i + 6] ^= 0xFF
    (folder / "crc.png").write_bytes(bytes(flipped))
    (folder / "cut.png").write_bytes(png[:-12])

    def report(name):
        try:
            print(f"read {name} {read_image(folder / name).shape}", flush=True)
        except ImageReadError as exc:
            log.warning("skipping %s", exc)

    for name in ["crc.png", "cut.png", "warns.png"]:  # one by one
        report(name)
    with ThreadPoolExecutor(4) as pool:  # and on threads at once
        list(pool.map(report, ["warns.png"] * 10))
    sys.stderr.write("done\n")
""")


@pytest.mark.fault("images", "PNGs that make libpng print (a text chunk's bad checksum, a short ICC profile, image "
                   "data failing its checksum, a cut file), read one by one and on threads",
                   "only Inspector's one line naming the file and the problem ('damaged PNG: chunk 'IDAT' at byte "
                   "33 fails its checksum (CRC)'); libpng's own lines, which leaked beside it, are never printed")
def test_libpng_lines_stay_off_stderr(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", _STDERR_SCRIPT, str(tmp_path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr.splitlines()
    assert err == [
        f"WARNING skipping cannot read image '{tmp_path / 'crc.png'}': damaged PNG: chunk 'IDAT' at byte 33 fails "
        "its checksum (CRC)",
        f"WARNING skipping cannot read image '{tmp_path / 'cut.png'}': damaged PNG: the file ends after "
        f"{(tmp_path / 'cut.png').stat().st_size} bytes, before its IEND chunk (cut short)",
        "done"], err
    assert proc.stdout.count("read warns.png (16, 16, 3)") == 11
