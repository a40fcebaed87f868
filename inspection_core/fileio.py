"""Atomic file writes: the one helper every writer of the project uses
(bytes, text, and the JSON and CSV the CLI and reports write).

A bundle, a settings file, a report, a CSV export or a kept image is written
to a hidden temporary file in the same folder, flushed and fsync'ed, given
its final permissions, and renamed over the target (``os.replace``, atomic
on POSIX and Windows); the folder is fsync'ed too where the platform allows,
so the rename survives a power cut. A crash, a full disk or a killed process
leaves the old file (or none), never half a file under the real name, and
the temporary file is removed on every error path that runs Python.

Permissions: ``mkstemp`` creates files readable by their owner only; shared
data (bundles, reports, images, CSV) gets what a plain ``open()`` would give
(``0o666`` minus the umask), ``private=True`` keeps owner-only (settings hold
the PIN hash).
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def _read_umask() -> int:
    """The process umask, read once at import (``os.umask`` can only be read by
    setting it, which would race with threads creating files later)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()
SHARED_MODE = 0o666 & ~_UMASK
PRIVATE_MODE = 0o600


def temp_pattern(path: str | os.PathLike[str]) -> str:
    """Glob pattern (in ``path``'s folder) of the temporary files a write of
    ``path`` uses; a process killed mid-write leaves one behind."""
    return f".{Path(path).name}.*.tmp"


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":  # Windows cannot open a folder for fsync; NTFS journals the rename
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb", *, encoding: str | None = None,
                newline: str | None = None, private: bool = False, fsync: bool = True) -> Iterator[IO[Any]]:
    """A file object to write ``path``'s new content to; the content replaces
    ``path`` only when the ``with`` block ends without an exception. The
    parent folder is created when missing."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode must be 'w' or 'wb', got {mode!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, mode, encoding=encoding if "b" not in mode else None,
                       newline=newline if "b" not in mode else None) as fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.chmod(tmp, PRIVATE_MODE if private else SHARED_MODE)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if fsync:
        _fsync_dir(target.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, private: bool = False,
                       fsync: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_open(path, "wb", private=private, fsync=fsync) as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, private: bool = False,
                      fsync: bool = True) -> Path:
    """Write ``text`` as UTF-8 to ``path`` atomically (line endings as given); returns the path."""
    with atomic_open(path, "w", encoding="utf-8", newline="", private=private, fsync=fsync) as fh:
        fh.write(text)
    return Path(path)


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):  # numpy arrays and scalars
        return o.tolist()
    return str(o)  # paths, enums


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """``obj`` as indented JSON (numpy values as lists/numbers, paths as text)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default))


def atomic_write_csv(path: str | os.PathLike[str], header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """A CSV file with ``header`` and ``rows``, streamed into the temporary file."""
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return Path(path)


__all__ = ["PRIVATE_MODE", "SHARED_MODE", "atomic_open", "atomic_write_bytes", "atomic_write_csv", "atomic_write_json",
           "atomic_write_text", "temp_pattern"]
