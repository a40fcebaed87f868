"""What an image file declares before it is decoded: size, page count, gray or colour.

OpenCV decodes whatever a header declares: a 0.5 MB PNG may declare
12000 × 12000 pixels (432 MB decoded), a TIFF may hold several pages of which
``imdecode`` returns the first. Reading the header first lets the reader
refuse such a file with a clear reason (:func:`inspection_core.data.images.read_image`)
and lets a data set tell gray from colour files without decoding every image
(:mod:`inspection_core.data.dataset`).

Formats: PNG (and APNG), JPEG, BMP, TIFF (and BigTIFF), WebP, GIF, PGM/PPM/PBM.
The parsers only read, check every offset against the data, and return None
for anything they do not understand (OpenCV then decides); they never raise.
Besides the size they count what ``imdecode`` would silently drop: the pages
of a TIFF and the frames of an animated GIF, WebP or PNG (``imdecode`` returns
the first), and they read a JPEG's EXIF orientation (a phone or camera stores
the pixels as the sensor saw them and a tag that says how to turn them).
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

#: a header is looked for in at most this many bytes of a file
MAX_HEADER_BYTES = 1 << 20
_MAX_IFDS = 1024

ReadAt = Callable[[int, int], bytes]


@dataclass(frozen=True)
class ImageHeader:
    """``width``/``height``: as stored; ``channels``: 1 when the file stores
    gray, 3 when it stores colour (which may still hold gray pixels), None when
    it cannot tell (a palette); ``pages``: full-resolution images in the file
    (TIFF), 1 for other formats; ``frames``: frames of an animation (GIF, WebP,
    APNG; at least that many when the file is too long to count them all), 1
    for a still image; ``orientation``: the EXIF orientation (1 to 8; 1 =
    upright, 6 = turn 90° clockwise to view), 1 when there is none."""

    format: str
    width: int
    height: int
    channels: int | None = None
    pages: int = 1
    frames: int = 1
    orientation: int = 1

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def upright_size(self) -> tuple[int, int]:
        """(width, height) as the image is viewed, its EXIF orientation applied."""
        return (self.height, self.width) if self.orientation in (5, 6, 7, 8) else (self.width, self.height)


def _u(fmt: str, data: bytes, offset: int) -> tuple[int, ...] | None:
    size = struct.calcsize(fmt)
    if offset < 0 or offset + size > len(data):
        return None
    return struct.unpack_from(fmt, data, offset)


#: chunks, blocks or segments walked at most to count frames (a crafted file may hold millions of tiny ones)
_MAX_STEPS = 100_000


def _png(read_at: ReadAt, head: bytes) -> ImageHeader | None:
    if not head.startswith(b"\x89PNG\r\n\x1a\n") or head[12:16] != b"IHDR":
        return None
    v = _u(">IIBB", head, 16)
    if v is None:
        return None
    width, height, _depth, colour = v
    channels = {0: 1, 4: 1, 2: 3, 6: 3}.get(colour)
    # An APNG declares its frames in an acTL chunk before the first IDAT.
    frames, pos = 1, 8
    for _ in range(_MAX_STEPS):
        chunk = read_at(pos, 8)
        if len(chunk) < 8 or chunk[4:8] in (b"IDAT", b"IEND"):
            break
        length = int.from_bytes(chunk[:4], "big")
        if chunk[4:8] == b"acTL":
            n = _u(">I", read_at(pos + 8, 4), 0)
            frames = max(1, n[0]) if n is not None else 1
            break
        pos += 12 + length
    return ImageHeader("png", width, height, channels, frames=frames)


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _exif_orientation(read_at: ReadAt, start: int, length: int) -> int:
    """The Orientation tag (0x0112) of the TIFF structure in an APP1 Exif
    segment (``length`` bytes from ``start``); 1 when absent or invalid."""

    def within(offset: int, n: int) -> bytes:
        if offset < 0 or offset >= length:
            return b""
        return read_at(start + offset, min(n, length - offset))

    order = within(0, 8)
    if order[:4] not in (b"II*\x00", b"MM\x00*"):
        return 1
    e = "<" if order[:2] == b"II" else ">"
    first = _u(e + "I", order, 4)
    ifd = _read_ifd(within, first[0], e, False) if first is not None else None
    value = ifd[0].get(0x0112, 1) if ifd is not None else 1
    return value if 1 <= value <= 8 else 1


def _jpeg(read_at: ReadAt) -> ImageHeader | None:
    if read_at(0, 2) != b"\xff\xd8":
        return None
    pos = 2
    orientation = 1
    while pos < MAX_HEADER_BYTES:
        seg = read_at(pos, 4)
        if len(seg) < 2 or seg[0] != 0xFF:
            return None
        marker = seg[1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # standalone markers
            pos += 2
            continue
        if len(seg) < 4 or marker in (0xD9, 0xDA):  # end of image, or scan data before any frame header
            return None
        length = struct.unpack(">H", seg[2:4])[0]
        if length < 2:
            return None
        if marker == 0xE1 and orientation == 1 and length > 16 and read_at(pos + 4, 6) == b"Exif\x00\x00":
            orientation = _exif_orientation(read_at, pos + 10, length - 8)
        if marker in _SOF:
            v = _u(">BHHB", read_at(pos + 4, 6), 0)
            if v is None:
                return None
            _precision, height, width, components = v
            return ImageHeader("jpeg", width, height, {1: 1, 3: 3, 4: 3}.get(components), orientation=orientation)
        pos += 2 + length
    return None


def _bmp(head: bytes) -> ImageHeader | None:
    if not head.startswith(b"BM"):
        return None
    size = _u("<I", head, 14)
    if size is None:
        return None
    if size[0] == 12:
        v = _u("<HHHH", head, 18)
        if v is None:
            return None
        width, height, _planes, bits = v
    else:
        v = _u("<iiHH", head, 18)
        if v is None:
            return None
        width, height, _planes, bits = v
        height = abs(height)
    if width <= 0 or height <= 0:
        return None
    return ImageHeader("bmp", width, height, 3 if bits in (16, 24, 32) else None)


def _tiff(read_at: ReadAt) -> ImageHeader | None:
    head = read_at(0, 16)
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        big = False
    elif head[:4] in (b"II+\x00", b"MM\x00+"):
        big = True
    else:
        return None
    e = "<" if head[:2] == b"II" else ">"
    if big:
        v = _u(e + "Q", head, 8)
    else:
        v = _u(e + "I", head, 4)
    if v is None:
        return None
    offset = v[0]
    first: dict[int, int] | None = None
    pages = 0
    seen: set[int] = set()
    while offset and offset not in seen and len(seen) < _MAX_IFDS:
        seen.add(offset)
        ifd = _read_ifd(read_at, offset, e, big)
        if ifd is None:
            break
        tags, offset = ifd
        if first is None:
            first = tags
        if not tags.get(254, 0) & 1:  # NewSubfileType bit 0: a reduced-resolution copy (a preview)
            pages += 1
    if first is None or 256 not in first or 257 not in first:
        return None
    samples = first.get(277, 1)
    photometric = first.get(262)
    if photometric in (0, 1):  # white-is-zero, black-is-zero: gray
        channels: int | None = 1
    elif photometric in (2, 6) or samples >= 3:  # RGB, YCbCr
        channels = 3
    else:
        channels = None
    return ImageHeader("tiff", first[256], first[257], channels, max(1, pages))


def _read_ifd(read_at: ReadAt, offset: int, e: str, big: bool) -> tuple[dict[int, int], int] | None:
    count_fmt, entry_size, next_fmt = (e + "Q", 20, e + "Q") if big else (e + "H", 12, e + "I")
    raw = read_at(offset, struct.calcsize(count_fmt))
    v = _u(count_fmt, raw, 0)
    if v is None or v[0] > 4096:
        return None
    n = v[0]
    start = offset + len(raw)
    block = read_at(start, n * entry_size + struct.calcsize(next_fmt))
    if len(block) < n * entry_size + struct.calcsize(next_fmt):
        return None
    tags: dict[int, int] = {}
    for i in range(n):
        base = i * entry_size
        if big:
            tag, typ, cnt = struct.unpack_from(e + "HHQ", block, base)
            value_at = base + 12
        else:
            tag, typ, cnt = struct.unpack_from(e + "HHI", block, base)
            value_at = base + 8
        if cnt < 1:
            continue
        if typ == 3:  # SHORT
            tags[tag] = struct.unpack_from(e + "H", block, value_at)[0]
        elif typ == 4:  # LONG
            tags[tag] = struct.unpack_from(e + "I", block, value_at)[0]
        elif typ == 16 and big:  # LONG8
            tags[tag] = struct.unpack_from(e + "Q", block, value_at)[0]
    nxt = struct.unpack_from(next_fmt, block, n * entry_size)[0]
    return tags, nxt


def _webp(read_at: ReadAt, head: bytes) -> ImageHeader | None:
    if head[:4] != b"RIFF" or head[8:12] != b"WEBP":
        return None
    chunk = head[12:16]
    if chunk == b"VP8 ":
        v = _u("<HH", head, 26)
        if v is None or head[23:26] != b"\x9d\x01\x2a":
            return None
        return ImageHeader("webp", v[0] & 0x3FFF, v[1] & 0x3FFF, 3)
    if chunk == b"VP8L":
        v = _u("<I", head, 21)
        if v is None or head[20:21] != b"\x2f":
            return None
        bits = v[0]
        return ImageHeader("webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, 3)
    if chunk == b"VP8X":
        if len(head) < 30:
            return None
        width = 1 + int.from_bytes(head[24:27], "little")
        height = 1 + int.from_bytes(head[27:30], "little")
        frames = _webp_frames(read_at, int.from_bytes(head[4:8], "little")) if head[20] & 0x02 else 1
        return ImageHeader("webp", width, height, 3, frames=frames)
    return None


def _webp_frames(read_at: ReadAt, riff_size: int) -> int:
    """ANMF chunks (one per frame) of an animated WebP (its VP8X animation flag set)."""
    frames, pos, end = 0, 12, 8 + riff_size
    for _ in range(_MAX_STEPS):
        chunk = read_at(pos, 8)
        if pos + 8 > end or len(chunk) < 8:
            break
        if chunk[:4] == b"ANMF":
            frames += 1
        size = int.from_bytes(chunk[4:8], "little")
        pos += 8 + size + (size & 1)
    return max(1, frames)


def _gif(read_at: ReadAt, head: bytes) -> ImageHeader | None:
    """GIF87a/89a: the logical screen's size and the image descriptors (frames)."""
    if head[:6] not in (b"GIF87a", b"GIF89a"):
        return None
    v = _u("<HHB", head, 6)
    if v is None:
        return None
    width, height, packed = v
    pos = 13 + (3 << ((packed & 7) + 1) if packed & 0x80 else 0)  # global colour table
    frames = 0
    steps = 0

    def skip_sub_blocks(at: int) -> int | None:
        nonlocal steps
        while steps < _MAX_STEPS:
            steps += 1
            size = read_at(at, 1)
            if not size:
                return None
            at += 1 + size[0]
            if size[0] == 0:
                return at
        return None

    while steps < _MAX_STEPS:
        steps += 1
        kind = read_at(pos, 1)
        if kind == b"\x2c":  # image descriptor: position, size, flags; then the image data
            desc = read_at(pos + 1, 9)
            if len(desc) < 9:
                break
            frames += 1
            flags = desc[8]
            pos += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0) + 1  # local colour table, LZW code size
            nxt = skip_sub_blocks(pos)
        elif kind == b"\x21":  # extension: label, then sub-blocks
            nxt = skip_sub_blocks(pos + 2)
        else:  # trailer (0x3B), end of data or garbage
            break
        if nxt is None:
            break
        pos = nxt
    if width == 0 or height == 0:
        return None
    return ImageHeader("gif", width, height, None, frames=max(1, frames))


def _pnm(head: bytes) -> ImageHeader | None:
    if len(head) < 3 or head[0:1] != b"P" or head[1:2] not in b"123456" or len(head[1:2]) != 1:
        return None
    kind = head[1:2]
    fields: list[int] = []
    text = head[2:4096]
    i = 0
    while len(fields) < 2 and i < len(text):
        c = text[i:i + 1]
        if c == b"#":
            j = text.find(b"\n", i)
            i = len(text) if j < 0 else j + 1
        elif c.isspace():
            i += 1
        elif c.isdigit():
            j = i
            while j < len(text) and text[j:j + 1].isdigit():
                j += 1
            if j - i > 9:
                return None
            fields.append(int(text[i:j]))
            i = j
        else:
            return None
    if len(fields) < 2:
        return None
    return ImageHeader("pnm", fields[0], fields[1], 3 if kind in (b"3", b"6") else 1)


def structural_problem(data: bytes | bytearray | memoryview) -> str | None:
    """What makes encoded bytes unsafe to hand to the decoder, or None.

    A PNG chunk that declares more bytes than the file holds (a 1 KB file whose
    IDAT claims 4 GiB) made OpenCV's reader allocate the declared size; every
    chunk length is checked against what follows it. The chunks that make the
    pixels (critical ones: IHDR, PLTE, IDAT, IEND) must pass their checksum
    and the file must reach IEND: a damaged or cut file is refused here, with
    the reason, rather than by libpng (which prints its own ``libpng error``
    line beside the reader's message); a checksum costs about 2 % of a decode."""
    view = memoryview(data).cast("B")
    if bytes(view[:8]) != b"\x89PNG\r\n\x1a\n" or bytes(view[8:16]) != b"\x00\x00\x00\rIHDR":
        return None  # not a PNG (the decoder says so)
    pos, n = 8, len(view)
    while pos + 8 <= n:
        length = int.from_bytes(view[pos:pos + 4], "big")
        kind = bytes(view[pos + 4:pos + 8])
        name = kind.decode("latin-1")
        if length > 0x7FFFFFFF or pos + 12 + length > n:
            return (f"damaged PNG: chunk {name!r} declares {length} bytes, "
                    f"more than the {max(0, n - pos - 12)} left in the file")
        if not kind[0] & 0x20 and not _crc_ok(view, pos, length):
            return f"damaged PNG: chunk {name!r} at byte {pos} fails its checksum (CRC)"
        if kind == b"IEND":
            return None
        pos += 12 + length
    return f"damaged PNG: the file ends after {n} bytes, before its IEND chunk (cut short)"


def _crc_ok(view: memoryview, pos: int, length: int) -> bool:
    """Whether the chunk at ``pos`` (``length`` data bytes, all present) passes its CRC."""
    stored = int.from_bytes(view[pos + 8 + length:pos + 12 + length], "big")
    return zlib.crc32(view[pos + 4:pos + 8 + length]) == stored


#: ancillary PNG chunks that change the pixels OpenCV returns (the others are metadata)
_PIXEL_CHUNKS = frozenset({b"tRNS"})


def png_ancillary_chunks(data: bytes | bytearray | memoryview) -> list[tuple[int, int]]:
    """(start, end) byte spans of a PNG's ancillary chunks that do not change
    its pixels (ICC profile, text, EXIF, ...); empty for anything else."""
    view = memoryview(data).cast("B")
    if bytes(view[:8]) != b"\x89PNG\r\n\x1a\n":
        return []
    spans: list[tuple[int, int]] = []
    pos, n = 8, len(view)
    while pos + 12 <= n:
        length = int.from_bytes(view[pos:pos + 4], "big")
        kind = bytes(view[pos + 4:pos + 8])
        end = pos + 12 + length
        if end > n or kind == b"IEND":
            break
        # lower-case first letter: ancillary (a tRNS that fails its checksum goes, as libpng would drop it)
        if kind[0] & 0x20 and (kind not in _PIXEL_CHUNKS or not _crc_ok(view, pos, length)):
            if spans and spans[-1][1] == pos:
                spans[-1] = (spans[-1][0], end)
            else:
                spans.append((pos, end))
        pos = end
    return spans


def probe_reader(read_at: ReadAt) -> ImageHeader | None:
    """The header of an image read through ``read_at(offset, n) -> bytes``; None when unknown."""
    try:
        head = read_at(0, 64)
        for parse in (_bmp, _pnm):
            found = parse(head)
            if found is not None:
                return found
        for parse_at in (_png, _webp, _gif):
            found = parse_at(read_at, head)
            if found is not None:
                return found
        return _jpeg(read_at) or _tiff(read_at)
    except (struct.error, ValueError, OverflowError, OSError, IndexError):
        return None


def probe(data: bytes | bytearray | memoryview) -> ImageHeader | None:
    """The header of encoded image bytes (None when not understood)."""
    view = memoryview(data).cast("B") if not isinstance(data, (bytes, bytearray)) else data

    def read_at(offset: int, n: int) -> bytes:
        if offset < 0 or n < 0 or offset > MAX_HEADER_BYTES * 64:
            return b""
        return bytes(view[offset:offset + n])

    return probe_reader(read_at)


def probe_file(path: str | os.PathLike[str]) -> ImageHeader | None:
    """The header of an image file, reading only what the header needs
    (None when the file cannot be read or its header is not understood)."""
    try:
        with open(path, "rb") as fh:
            return probe_reader(_file_reader(fh))
    except OSError:
        return None


def _file_reader(fh: BinaryIO) -> ReadAt:
    budget = [MAX_HEADER_BYTES]

    def read_at(offset: int, n: int) -> bytes:
        if offset < 0 or n <= 0 or budget[0] <= 0:
            return b""
        n = min(n, budget[0])
        fh.seek(offset)
        data = fh.read(n)
        budget[0] -= len(data)
        return data

    return read_at


__all__ = ["ImageHeader", "MAX_HEADER_BYTES", "png_ancillary_chunks", "probe", "probe_file", "probe_reader",
           "structural_problem"]
