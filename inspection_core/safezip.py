"""Reading a zip file that may be hostile: bounded member sizes and counts.

A model bundle is a zip file that may come from anywhere (a USB stick, a
shared folder, a mail). :mod:`zipfile` reads whatever the archive declares: a
17 MB file can declare a member that unpacks to 3 GiB, or a central directory
of a million entries. Here every limit is checked on what the archive declares
*before* anything is unpacked, and unpacking never yields more than the
declared size (``zipfile`` stops there), so memory stays within the limit
whatever the bytes are. No torch, no cv2: the GUI thread reads manifests
through this too.

Every refusal is a :class:`ZipLimitError` (a ``ValueError``) whose ``reason``
is one line for the user; the bundle reader adds the file's name.
"""

from __future__ import annotations

import os
import struct
import zipfile
import zlib
from pathlib import Path

#: more members than this is not an archive we wrote (a bundle has two)
MAX_MEMBERS = 16
#: the compression methods our writers use (ZIP_STORED) or a zip tool may re-pack with
ALLOWED_COMPRESSION = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)

_EOCD = b"PK\x05\x06"
_EOCD_SIZE = 22
_MAX_COMMENT = 0xFFFF

#: what zipfile and zlib raise on a damaged archive (besides BadZipFile)
READ_ERRORS: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile, zlib.error, EOFError, struct.error, OSError, ValueError, OverflowError,
    NotImplementedError, RuntimeError, KeyError, IndexError, UnicodeDecodeError, MemoryError,
)


class ZipLimitError(ValueError):
    """The archive is refused; ``reason`` says why in one line."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def human_bytes(n: int) -> str:
    """``n`` bytes for a message: 512 B, 3.9 MB, 3.0 GiB."""
    if n >= 1 << 30:
        return f"{n / (1 << 30):.1f} GiB"
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f} MiB"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.1f} KiB"
    return f"{n} B"


def declared_entries(path: str | os.PathLike[str]) -> int | None:
    """The member count the archive's end record declares (read from the file's
    tail, before :mod:`zipfile` parses the central directory), or None when
    there is no end record (then it is not a zip file)."""
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        tail_len = min(size, _EOCD_SIZE + _MAX_COMMENT)
        fh.seek(size - tail_len)
        tail = fh.read(tail_len)
    pos = tail.rfind(_EOCD)
    if pos < 0 or len(tail) - pos < _EOCD_SIZE:
        return None
    _sig, _disk, _cd_disk, _here, total, _cd_size, _cd_offset, _comment = struct.unpack(
        "<4s4H2LH", tail[pos:pos + _EOCD_SIZE])
    return int(total)


def _check_name(name: str) -> None:
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or ".." in parts or "\x00" in name or (len(name) > 1 and name[1] == ":"):
        raise ZipLimitError(f"holds a member with a suspicious name ({name[:80]!r})")


def open_zip(path: str | os.PathLike[str], max_members: int = MAX_MEMBERS) -> zipfile.ZipFile:
    """Open ``path`` as a zip file after checking its declared member count;
    refuses archives with duplicate or path-like member names (nothing is
    ever extracted, but two ``manifest.json`` entries could show one reader
    another manifest than the next). Raises ``ZipLimitError``, or
    ``zipfile.BadZipFile`` when it is not a zip file at all."""
    p = Path(path)
    count = declared_entries(p)
    if count is None:
        raise zipfile.BadZipFile("no end-of-archive record")
    if count > max_members:
        raise ZipLimitError(f"declares {count} members; a bundle holds at most {max_members}")
    zf = zipfile.ZipFile(p)
    try:
        infos = zf.infolist()
        if len(infos) > max_members:
            raise ZipLimitError(f"holds {len(infos)} members; a bundle holds at most {max_members}")
        names = [i.filename for i in infos]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ZipLimitError(f"holds the member {dup[0]!r} twice")
        for name in names:
            _check_name(name)
    except BaseException:
        zf.close()
        raise
    return zf


def member_size(zf: zipfile.ZipFile, name: str) -> int:
    """The declared unpacked size of ``name`` (KeyError when missing)."""
    return int(zf.getinfo(name).file_size)


def read_member(zf: zipfile.ZipFile, name: str, limit: int) -> bytes:
    """The bytes of member ``name``, refused before unpacking when it declares
    more than ``limit`` bytes, is encrypted, or uses another compression."""
    info = zf.getinfo(name)
    if info.file_size > limit:
        raise ZipLimitError(f"{name} unpacks to {human_bytes(info.file_size)}, more than the "
                            f"{human_bytes(limit)} it may hold")
    if info.flag_bits & 0x1:
        raise ZipLimitError(f"{name} is encrypted")
    if info.compress_type not in ALLOWED_COMPRESSION:
        raise ZipLimitError(f"{name} uses an unsupported compression (method {info.compress_type})")
    with zf.open(info) as fh:
        data = fh.read(info.file_size)  # zipfile never yields more than file_size, and checks the CRC
    if len(data) != info.file_size:
        raise zipfile.BadZipFile(f"{name} is shorter than declared")
    return data


__all__ = ["ALLOWED_COMPRESSION", "MAX_MEMBERS", "READ_ERRORS", "ZipLimitError", "declared_entries", "human_bytes",
           "member_size", "open_zip", "read_member"]
