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

A process killed mid-write (kill -9, power cut) cannot remove its temporary
file; the name says which host and process wrote it
(``.NAME.<host>-<pid>.XXXXXXXX.tmp``), and the first write into that folder
by a later process removes it once that process is gone (or, from another
host, after an hour).
A write that fails raises :class:`WriteError`, an ``OSError`` whose message
names the file ("cannot write '/models/a.inspector': no space left on the disk").
"""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
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
SHARED_DIR_MODE = 0o777 & ~_UMASK
PRIVATE_MODE = 0o600


#: a temporary file of another host is stale after this long (no write takes an hour)
STALE_TEMP_AGE_S = 3600.0
_HOST = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname() or "host")[:32] or "host"
_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9_]{1,32})-(?P<pid>\d+)\.[^.]+\.tmp$")
_swept: set[str] = set()
_swept_lock = threading.Lock()


class WriteError(OSError):
    """A file could not be written; the message names it and says why in words."""

    def __str__(self) -> str:
        return f"cannot write '{self.filename}': {describe_os_error(self)}"


def describe_os_error(exc: OSError) -> str:
    """What an OSError means, in words (no "[Errno 28]")."""
    code = exc.errno
    if code == errno.ENOSPC:
        return "no space left on the disk (free some space and try again)"
    if code == getattr(errno, "EDQUOT", -1):
        return "the disk quota is used up"
    if code in (errno.EACCES, errno.EPERM):
        return "permission denied (the file or its folder is read-only or owned by someone else)"
    if code == errno.EROFS:
        return "the disk is mounted read-only"
    if code == errno.EFBIG:
        return "the file is larger than this disk or account allows"
    return (exc.strerror or str(exc)).strip()


def temp_pattern(path: str | os.PathLike[str]) -> str:
    """Glob pattern (in ``path``'s folder) of the temporary files a write of
    ``path`` uses; a process killed mid-write leaves one behind."""
    return f".{Path(path).name}.*.tmp"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # exists (another user's) or cannot tell: keep
    return True


def is_stale_temp(path: Path, now: float | None = None) -> bool:
    """Whether ``path`` is a temporary file of an atomic write whose process
    is gone (this host) or that is older than ``STALE_TEMP_AGE_S``."""
    m = _TEMP_RE.match(path.name)
    try:
        age = (time.time() if now is None else now) - path.stat().st_mtime
    except OSError:
        return False
    if m is None:
        return path.name.endswith(".tmp") and age > STALE_TEMP_AGE_S  # written before the name said who
    if m["host"] == _HOST and int(m["pid"]) != os.getpid():
        return not _pid_alive(int(m["pid"]))
    return m["host"] != _HOST and age > STALE_TEMP_AGE_S


def remove_stale_temps(folder: str | os.PathLike[str], name: str | None = None) -> list[Path]:
    """Remove what killed writes left in ``folder`` (only ``name``'s temporary
    files when given); returns what was removed."""
    root = Path(folder)
    pattern = temp_pattern(root / name) if name else ".*.tmp"
    removed: list[Path] = []
    try:
        candidates = list(root.glob(pattern))
    except OSError:
        return removed
    for p in candidates:
        if (name or _TEMP_RE.match(p.name)) and is_stale_temp(p):
            try:
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)  # a folder written by atomic_folder
                else:
                    p.unlink()
                removed.append(p)
            except OSError:
                pass
    return removed


def _sweep_once(folder: Path, name: str) -> None:
    """What killed writers left in ``folder``, once per process and folder (a
    folder of kept images is written thousands of times a day: it is not
    listed on every write)."""
    key = str(folder)
    with _swept_lock:
        if key in _swept:
            return
        _swept.add(key)
    remove_stale_temps(folder)


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
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _sweep_once(target.parent, target.name)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{_HOST}-{os.getpid()}.", suffix=".tmp", dir=target.parent)
    except WriteError:
        raise
    except OSError as exc:
        raise WriteError(exc.errno, exc.strerror, str(target)) from exc
    try:
        with os.fdopen(fd, mode, encoding=encoding if "b" not in mode else None,
                       newline=newline if "b" not in mode else None) as fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.chmod(tmp, PRIVATE_MODE if private else SHARED_MODE)
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError) and not isinstance(exc, WriteError) and exc.errno is not None:
            raise WriteError(exc.errno, exc.strerror, str(target)) from exc
        raise
    if fsync:
        _fsync_dir(target.parent)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, getattr(errno, "EOPNOTSUPP", errno.ENOTSUP)):
        return False  # a file system that cannot exchange
    raise OSError(code, os.strerror(code), str(b))


def _replace_folder(new: Path, target: Path) -> None:
    """``new`` becomes ``target``; the old ``target`` (if any) is removed."""
    if not target.exists():
        os.rename(new, target)
        return
    if _exchange(new, target):
        shutil.rmtree(new, ignore_errors=True)  # ``new`` now holds the old folder
        return
    old = target.with_name(f".{target.name}.{_HOST}-{os.getpid()}.old.tmp")
    os.rename(target, old)
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_folder(path: str | os.PathLike[str], *, may_replace: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """A hidden folder to write ``path``'s new content into; when the block
    ends without an exception its files are fsync'ed and it replaces ``path``
    in one step (a swap on Linux), so a reader sees the old folder or the new
    one, never a mix, and a full disk leaves the old one whole. An existing
    ``path`` is replaced only when ``may_replace(path)`` says so (default:
    when it is empty), so a folder of other files is never thrown away."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _sweep_once(target.parent, target.name)
        if target.exists() and not target.is_dir():
            raise FileExistsError(errno.EEXIST, "exists and is not a folder", str(target))
        if target.is_dir() and not (may_replace or (lambda p: not any(p.iterdir())))(target):
            raise FileExistsError(errno.EEXIST, "exists and holds other files (choose a new or empty folder)",
                                  str(target))
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.{_HOST}-{os.getpid()}.", suffix=".tmp",
                                        dir=target.parent))
    except WriteError:
        raise
    except OSError as exc:
        raise WriteError(exc.errno, exc.strerror, str(target)) from exc
    try:
        yield staging
        for f in staging.rglob("*"):
            if f.is_file():
                fd = os.open(f, os.O_RDONLY)
                try:
                    os.fsync(fd)  # a full disk shows here, before the old folder is given up
                finally:
                    os.close(fd)
        os.chmod(staging, SHARED_DIR_MODE)
        _fsync_dir(staging)
        _replace_folder(staging, target)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError) and exc.errno is not None:  # named by the folder, not by its hidden stand-in
            raise WriteError(exc.errno, exc.strerror, str(target)) from exc
        raise
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


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file's bytes, read in 1 MiB pieces (weights files are large)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write_csv(path: str | os.PathLike[str], header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """A CSV file with ``header`` and ``rows``, streamed into the temporary file."""
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return Path(path)


__all__ = ["PRIVATE_MODE", "SHARED_DIR_MODE", "SHARED_MODE", "STALE_TEMP_AGE_S", "WriteError", "atomic_folder",
           "file_sha256",
           "atomic_open", "describe_os_error",
           "is_stale_temp", "remove_stale_temps", "atomic_write_bytes", "atomic_write_csv", "atomic_write_json",
           "atomic_write_text", "temp_pattern"]
