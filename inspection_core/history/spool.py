"""The spool: verdicts the history database could not take yet, kept on disk.

When the database refuses a verdict (another program holds its lock, the disk
is full, the file is read-only or cannot be opened at all), the verdict goes
here before anyone is told it: one JSON line appended to ``<database>.spool``
(or, when that folder cannot be written either, to a file in the data
folder's ``spool/``), flushed and fsync'ed. A FAIL or REVIEW image to keep is
written beside it as a PNG. :class:`~inspection_core.history.recorder.Recorder`
writes the spool into the database as soon as it takes writes again, each
verdict once (``HistoryDB.record_many(skip_recorded=True)``), and then empties
it, under an exclusive lock of the file, so two processes (the app and
``inspector predict``) can share a spool.

A line cut short by a crash is the only thing ever dropped; it is logged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..fileio import WriteError, describe_os_error
from ..paths import data_dir

log = logging.getLogger(__name__)

SPOOL_SUFFIX = ".spool"
_FORMAT = 1
#: keyword arguments of ``HistoryDB.record`` a spooled verdict keeps
FIELDS = ("score", "verdict", "threshold_high", "threshold_low", "source", "image_ref", "bundle", "bundle_id",
          "station", "latency_ms", "time", "note", "uid", "defect_type")


class SpoolError(OSError):
    """Neither spool file could be written; the message names both."""


@dataclass(frozen=True)
class SpoolEntry:
    """One spooled verdict: ``row`` (``HistoryDB.record`` arguments) and the
    kept image's PNG file, when there is one."""

    uid: str
    row: dict[str, Any]
    image_file: Path | None
    spool_file: Path


def _lock(fh: IO[Any]) -> None:
    try:
        import fcntl

        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
    except (ImportError, OSError):  # Windows, or a file system without locks: one process at a time
        pass


@contextmanager
def _locked(path: Path, mode: str) -> Iterator[IO[Any]]:
    """``path`` opened and exclusively locked; a file that a drain emptied and
    removed while this process waited for its lock is opened again."""
    for _ in range(100):
        fh = open(path, mode, encoding="utf-8")
        try:
            _lock(fh)
            try:
                same = os.stat(path).st_ino == os.fstat(fh.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if same:
                yield fh
                return
        finally:
            fh.close()
    raise OSError(f"spool '{path}' keeps being replaced")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "value"):  # Verdict
        return value.value
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


class VerdictSpool:
    """The spool files of one history database (see the module docstring)."""

    def __init__(self, db_path: str | os.PathLike[str], fallback_dir: str | os.PathLike[str] | None = None) -> None:
        self.db_path = Path(db_path)
        tag = hashlib.sha256(str(self.db_path.expanduser().resolve()).encode("utf-8")).hexdigest()[:12]
        fallback = Path(fallback_dir) if fallback_dir is not None else data_dir() / "spool"
        self.files: tuple[Path, ...] = (self.db_path.with_name(self.db_path.name + SPOOL_SUFFIX),
                                        fallback / f"{self.db_path.name}-{tag}{SPOOL_SUFFIX}")

    @classmethod
    def for_server(cls, name: str, folder: str | os.PathLike[str] | None = None) -> "VerdictSpool":
        """The spool of a history on a server: one local file ``<name>.spool``
        in ``folder`` (default: the data folder's ``spool/``)."""
        spool = cls.__new__(cls)
        spool.db_path = Path(name)
        spool.files = ((Path(folder) if folder is not None else data_dir() / "spool") / f"{name}{SPOOL_SUFFIX}",)
        return spool

    @staticmethod
    def _image_dir(spool_file: Path) -> Path:
        return spool_file.with_name(spool_file.name + ".images")

    # ---------------------------------------------------------------- writing
    def append(self, row: dict[str, Any], image: np.ndarray | None = None) -> Path:
        """Spool one verdict durably (fsync'ed) and return the file it went to;
        ``SpoolError`` when no spool file can be written."""
        # a server's verdict carries its station-generated uid: the spool keeps it, so a replay records it once
        entry: dict[str, Any] = {"v": _FORMAT, "uid": str(row.get("uid") or uuid.uuid4().hex),
                                 "row": {k: _jsonable(row.get(k)) for k in FIELDS if k in row}}
        errors = []
        for path in self.files:
            try:
                entry["image"] = self._keep_image(path, entry["uid"], image) if image is not None else None
                self._append_line(path, json.dumps(entry, allow_nan=True) + "\n")
                return path
            except OSError as exc:
                errors.append(f"'{path}': {describe_os_error(exc)}")
        raise SpoolError(f"the spool cannot be written either ({'; '.join(errors)})")

    def _keep_image(self, spool_file: Path, uid: str, image: np.ndarray) -> str | None:
        from .kept_images import save_kept_image

        target = self._image_dir(spool_file) / f"{uid}.png"
        if not save_kept_image(target, image):
            return None  # the verdict still goes to the spool; its image is noted as lost in the log
        return target.name

    @staticmethod
    def _append_line(path: Path, line: str) -> None:
        new = not path.exists()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with _locked(path, "a") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise WriteError(exc.errno, exc.strerror, str(path)) from exc
        if new:
            from ..fileio import _fsync_dir

            _fsync_dir(path.parent)

    # ---------------------------------------------------------------- reading
    def _read(self, path: Path, fh: IO[str]) -> list[SpoolEntry]:
        out = []
        fh.seek(0)
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                row = dict(d["row"])
                image = self._image_dir(path) / d["image"] if d.get("image") else None
                out.append(SpoolEntry(str(d["uid"]), row, image, path))
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("spool '%s' line %d is unreadable (%s): dropped (a crash cut it short)", path, n, exc)
        return out

    def entries(self) -> list[SpoolEntry]:
        """Every spooled verdict, oldest first within each file."""
        out: list[SpoolEntry] = []
        for path in self.files:
            if path.is_file():
                try:
                    with _locked(path, "r") as fh:
                        out.extend(self._read(path, fh))
                except OSError as exc:
                    log.warning("spool '%s' cannot be read: %s", path, describe_os_error(exc))
        return out

    def pending(self) -> int:
        """How many verdicts wait in the spool."""
        return len(self.entries())

    def drain(self, write: Any) -> int:
        """Hand each file's entries to ``write(entries)`` (which records them,
        raising when it cannot) and empty the file afterwards, holding its lock
        throughout so no verdict appended meanwhile is lost; returns how many
        were written."""
        written = 0
        for path in self.files:
            if not path.is_file():
                continue
            with _locked(path, "r+") as fh:
                entries = self._read(path, fh)
                if entries:
                    write(entries)
                    written += len(entries)
                path.unlink()  # under the lock: a writer waiting for it opens a new file (see _locked)
            for e in entries:
                if e.image_file is not None:
                    e.image_file.unlink(missing_ok=True)
            images = self._image_dir(path)
            try:
                if images.is_dir() and not any(images.iterdir()):
                    images.rmdir()
            except OSError:
                pass
        return written

    def __repr__(self) -> str:
        return f"VerdictSpool({str(self.files[0])!r})"


__all__ = ["FIELDS", "SPOOL_SUFFIX", "SpoolEntry", "SpoolError", "VerdictSpool"]
