"""Inspection history: every verdict recorded in an SQLite database.

Used by the desktop app (a worker thread records, the GUI thread reads) and by
the CLI's ``predict``. Design choices:

- WAL journal with ``synchronous=FULL``: ``record`` commits before it returns,
  so a verdict counted by the app survives a crash of the app or of the machine.
- Thread safety: ONE connection opened with ``check_same_thread=False`` and
  guarded by a re-entrant lock. Every statement is short (a page query on
  100,000 rows takes a few ms), so serialising them costs nothing noticeable and
  keeps ``close()`` simple. ``export_csv`` streams through its own short-lived
  connection (a WAL snapshot) so that a long export never blocks recording.
- Other processes (the CLI while the app runs) may use the same file: WAL lets
  readers and one writer work at once; writers wait up to ``busy_timeout``.
- Schema versioned with ``PRAGMA user_version``; ``_MIGRATIONS`` maps an old
  version to the function that brings it one step forward.
- FAIL and REVIEW images (``keep_images_for``) are kept as PNG files under
  ``image_dir/YYYY-MM-DD/<id>_<verdict>.png``; the row stores the path relative
  to ``image_dir`` so the whole folder can be moved.
"""

from __future__ import annotations

import csv
import datetime as _dt
import logging
import os
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .fileio import atomic_open, atomic_write_bytes

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
VERDICTS = ("PASS", "REVIEW", "FAIL")
HISTORY_FILENAME = "history.sqlite3"

_COLUMNS = (
    "id", "time", "epoch", "station", "source", "image_ref", "bundle", "bundle_id",
    "score", "threshold_high", "threshold_low", "verdict", "override_verdict",
    "override_operator", "override_time", "stored_image", "latency_ms", "note",
)  # fmt: skip

_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS inspections (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    time              TEXT    NOT NULL,   -- UTC ISO 8601 with ms, e.g. 2024-05-01T12:00:00.123Z
    epoch             REAL    NOT NULL,   -- same instant, seconds since 1970 (fast range filters)
    station           TEXT    NOT NULL DEFAULT '',
    source            TEXT    NOT NULL DEFAULT '',
    image_ref         TEXT    NOT NULL DEFAULT '',
    bundle            TEXT    NOT NULL DEFAULT '',
    bundle_id         TEXT    NOT NULL DEFAULT '',
    score             REAL,
    threshold_high    REAL,
    threshold_low     REAL,
    verdict           TEXT    NOT NULL,
    override_verdict  TEXT,
    override_operator TEXT,
    override_time     TEXT,
    stored_image      TEXT,
    latency_ms        REAL,
    note              TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS ix_inspections_epoch   ON inspections(epoch);
CREATE INDEX IF NOT EXISTS ix_inspections_verdict ON inspections(verdict, epoch);
CREATE INDEX IF NOT EXISTS ix_inspections_bundle  ON inspections(bundle, epoch);
"""

_INSERT = (
    "INSERT INTO inspections (time, epoch, station, source, image_ref, bundle, bundle_id, score,"
    " threshold_high, threshold_low, verdict, latency_ms, note) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
)

# version -> function that migrates a database at that version to version + 1.
_MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {}


class HistoryError(RuntimeError):
    """The history database cannot be used; ``path`` names the file."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"inspection history '{self.path}': {reason}")


@dataclass(frozen=True)
class HistoryRecord:
    """One recorded inspection (a row of the database)."""

    id: int
    time: str
    epoch: float
    station: str
    source: str
    image_ref: str
    bundle: str
    bundle_id: str
    score: float | None
    threshold_high: float | None
    threshold_low: float | None
    verdict: str
    override_verdict: str | None
    override_operator: str | None
    override_time: str | None
    stored_image: str | None
    latency_ms: float | None
    note: str

    @property
    def effective_verdict(self) -> str:
        """The operator's override when there is one, else the model's verdict."""
        return self.override_verdict or self.verdict

    @property
    def datetime(self) -> _dt.datetime:
        """The inspection time as an aware UTC datetime."""
        return _dt.datetime.fromtimestamp(self.epoch, tz=_dt.timezone.utc)


# --------------------------------------------------------------------------- paths


def _kept_image_name(time_iso: str, record_id: int, verdict: str) -> Path:
    """Where a kept image lives under ``image_dir``: ``YYYY-MM-DD/<id>_<verdict>.png``."""
    return Path(time_iso[:10]) / f"{record_id}_{verdict}.png"


def default_data_dir() -> Path:
    """The user's data folder for Inspector (history, kept images, user models).

    ``INSPECTOR_DATA_DIR`` overrides it; otherwise %LOCALAPPDATA%\\Inspector on
    Windows, ~/Library/Application Support/Inspector on macOS and
    $XDG_DATA_HOME/inspector (default ~/.local/share/inspector) elsewhere.
    """
    env = os.environ.get("INSPECTOR_DATA_DIR")
    if env:
        return Path(env).expanduser()
    if sys.platform.startswith("win"):
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "Inspector"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "Inspector"
    xdg = os.environ.get("XDG_DATA_HOME")
    base_dir = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base_dir / "inspector"


def default_history_path() -> Path:
    """Where the history database lives by default (the folder is not created)."""
    return default_data_dir() / HISTORY_FILENAME


def default_image_dir(history_path: str | os.PathLike[str] | None = None) -> Path:
    """The folder for kept FAIL/REVIEW images: ``images/`` beside the database."""
    return Path(history_path or default_history_path()).parent / "images"


# --------------------------------------------------------------------------- helpers


def _utc_now() -> _dt.datetime:
    return _dt.datetime.now(tz=_dt.timezone.utc)


def _to_datetime(value: Any) -> _dt.datetime:
    """datetime (naive = local time), epoch seconds or ISO string -> aware UTC datetime."""
    if isinstance(value, _dt.datetime):
        dt = value if value.tzinfo else value.astimezone()
        return dt.astimezone(_dt.timezone.utc)
    if isinstance(value, _dt.date):
        return _to_datetime(_dt.datetime(value.year, value.month, value.day))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _dt.datetime.fromtimestamp(float(value), tz=_dt.timezone.utc)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        return _to_datetime(_dt.datetime.fromisoformat(text))
    raise TypeError(f"cannot interpret {value!r} as a time")


def _iso(dt: _dt.datetime) -> str:
    d = dt.astimezone(_dt.timezone.utc)
    return (
        f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:{d.second:02d}"
        f".{d.microsecond // 1000:03d}Z"
    )


def _verdict_str(value: Any) -> str:
    text = str(getattr(value, "value", value)).upper()
    if text not in VERDICTS:
        raise ValueError(f"unknown verdict {value!r}; expected one of {', '.join(VERDICTS)}")
    return text


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _build_where(
    verdict: str | Iterable[str] | None = None,
    since: Any = None,
    until: Any = None,
    bundle: str | None = None,
    source_contains: str | None = None,
) -> tuple[str, list[Any]]:
    """SQL WHERE clause + parameters for the common filters.

    ``verdict``: the model's verdict (one or several); ``since`` inclusive,
    ``until`` exclusive; ``source_contains`` matches the source or the image
    reference, case-insensitively.
    """
    clauses: list[str] = []
    params: list[Any] = []
    if verdict is not None:
        verdicts = [verdict] if isinstance(verdict, str) or hasattr(verdict, "value") else list(verdict)
        names = sorted({_verdict_str(v) for v in verdicts})
        if not names:
            clauses.append("0")
        elif len(names) == 1:
            clauses.append("verdict = ?")
            params.append(names[0])
        else:
            clauses.append(f"verdict IN ({','.join('?' * len(names))})")
            params.extend(names)
    if since is not None:
        clauses.append("epoch >= ?")
        params.append(_to_datetime(since).timestamp())
    if until is not None:
        clauses.append("epoch < ?")
        params.append(_to_datetime(until).timestamp())
    if bundle is not None:
        clauses.append("bundle = ?")
        params.append(bundle)
    if source_contains:
        pattern = "%" + source_contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        clauses.append("(source LIKE ? ESCAPE '\\' OR image_ref LIKE ? ESCAPE '\\')")
        params.extend([pattern, pattern])
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


# --------------------------------------------------------------------------- database


class HistoryDB:
    """The inspection history database (see the module docstring for the design)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        image_dir: str | os.PathLike[str] | None = None,
        keep_images_for: Iterable[str] = ("FAIL", "REVIEW"),
        busy_timeout: float = 10.0,
    ) -> None:
        self.path = Path(path)
        self.image_dir = Path(image_dir) if image_dir is not None else None
        self.keep_images_for = frozenset(_verdict_str(v) for v in keep_images_for)
        self._busy_timeout = busy_timeout
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HistoryError(self.path, f"cannot create its folder ({exc.strerror or exc})") from exc
        self._conn = self._connect()
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            self._conn = None
            raise HistoryError(
                self.path, f"not a usable history database ({exc}); move the file away to start a new history"
            ) from exc

    # ---------------------------------------------------------------- plumbing

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(
                str(self.path), timeout=self._busy_timeout, check_same_thread=False, isolation_level=None
            )
            conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:
            if conn is not None:
                conn.close()
            if isinstance(exc, sqlite3.OperationalError):
                raise HistoryError(self.path, f"cannot open ({exc})") from exc
            raise HistoryError(
                self.path, f"not a usable history database ({exc}); move the file away to start a new history"
            ) from exc
        return conn

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise HistoryError(self.path, "the database is closed")
        return self._conn

    def _migrate(self) -> None:
        conn = self._db()
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise HistoryError(
                self.path, f"written by a newer Inspector (schema {version}, this one knows {SCHEMA_VERSION})"
            )
        if version == SCHEMA_VERSION:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            if version == 0:
                # Statement by statement: executescript() would commit on its own.
                for stmt in filter(str.strip, _SCHEMA_V1.split(";")):
                    conn.execute(stmt)
                version = 1
            while version < SCHEMA_VERSION:
                _MIGRATIONS[version](conn)
                version += 1
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _wrap(self, exc: sqlite3.Error) -> HistoryError:
        return HistoryError(self.path, str(exc))

    # ---------------------------------------------------------------- writing

    def _row_values(self, kw: Mapping[str, Any]) -> tuple[list[Any], str]:
        when = _to_datetime(kw["time"]) if kw.get("time") is not None else _utc_now()
        verdict = _verdict_str(kw["verdict"])
        values = [
            _iso(when), when.timestamp(), str(kw.get("station", "")), str(kw.get("source", "")),
            str(kw.get("image_ref", "")), str(kw.get("bundle", "")), str(kw.get("bundle_id", "")),
            _opt_float(kw.get("score")), _opt_float(kw.get("threshold_high")),
            _opt_float(kw.get("threshold_low")), verdict, _opt_float(kw.get("latency_ms")),
            str(kw.get("note", "")),
        ]  # fmt: skip
        return values, verdict

    def _keeps_image(self, kw: Mapping[str, Any], verdict: str) -> bool:
        return kw.get("image") is not None and self.image_dir is not None and verdict in self.keep_images_for

    def _insert_with_image(
        self, conn: sqlite3.Connection, values: list[Any], image: np.ndarray
    ) -> tuple[int, Path | None]:
        """Insert one row, then keep its image (the file name needs the row id)."""
        row_id = int(conn.execute(_INSERT, values).lastrowid)
        verdict = values[10]
        rel = _kept_image_name(values[0], row_id, verdict)
        if not self._save_image(rel, image):
            return row_id, None
        conn.execute("UPDATE inspections SET stored_image=? WHERE id=?", (rel.as_posix(), row_id))
        return row_id, self.image_dir / rel if self.image_dir is not None else None

    def _save_image(self, rel: Path, image: np.ndarray) -> bool:
        """Write a kept image atomically; a failure is logged, never fatal to recording."""
        assert self.image_dir is not None
        target = self.image_dir / rel
        try:
            ok, buf = cv2.imencode(".png", np.ascontiguousarray(image))
            if not ok:
                raise ValueError(f"cannot encode a {image.dtype} array of shape {image.shape} as PNG")
            atomic_write_bytes(target, buf.tobytes())
            return True
        except (OSError, ValueError, cv2.error) as exc:
            log.warning("history: could not keep image '%s': %s", target, exc)
            return False

    def record(
        self,
        *,
        score: float | None,
        verdict: Any,
        threshold_high: float | None,
        threshold_low: float | None = None,
        source: str = "",
        image_ref: str = "",
        bundle: str = "",
        bundle_id: str = "",
        station: str = "",
        latency_ms: float | None = None,
        image: np.ndarray | None = None,
        time: Any = None,
        note: str = "",
    ) -> int:
        """Record one inspection; returns its id once it is committed to disk.

        ``time``: datetime / epoch seconds / ISO string, default now. ``image`` is
        kept (PNG) when ``verdict`` is in ``keep_images_for`` and ``image_dir`` is set.
        """
        kw = dict(
            score=score, verdict=verdict, threshold_high=threshold_high, threshold_low=threshold_low,
            source=source, image_ref=image_ref, bundle=bundle, bundle_id=bundle_id, station=station,
            latency_ms=latency_ms, image=image, time=time, note=note,
        )  # fmt: skip
        return self.record_many([kw])[0]

    def record_many(self, rows: Iterable[Mapping[str, Any]]) -> list[int]:
        """Record many inspections in one transaction (batch CLI use); returns their ids.

        Each row is a mapping with ``record``'s keyword arguments.
        """
        ids: list[int] = []
        written: list[Path] = []
        batch: list[list[Any]] = []

        def flush() -> None:
            # One executemany for rows without images. The ids are consecutive:
            # this connection holds the write lock and AUTOINCREMENT only grows.
            if batch:
                conn.executemany(_INSERT, batch)
                last = int(conn.execute("SELECT MAX(id) FROM inspections").fetchone()[0])
                ids.extend(range(last - len(batch) + 1, last + 1))
                batch.clear()

        with self._lock:
            conn = self._db()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for kw in rows:
                        values, verdict = self._row_values(kw)
                        if not self._keeps_image(kw, verdict):
                            batch.append(values)
                            continue
                        flush()
                        row_id, img = self._insert_with_image(conn, values, kw["image"])
                        ids.append(row_id)
                        if img is not None:
                            written.append(img)
                    flush()
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    for img in written:  # their rows are gone: do not leave orphans
                        img.unlink(missing_ok=True)
                    raise
            except sqlite3.Error as exc:
                raise self._wrap(exc) from exc
        return ids

    def keeps_image_for(self, verdict: Any) -> bool:
        """Whether a part with this verdict has its image kept."""
        return self.image_dir is not None and _verdict_str(verdict) in self.keep_images_for

    def attach_image(self, record_id: int, image: np.ndarray) -> Path | None:
        """Keep ``image`` for a row that is already committed; returns its path (None if it could not be written).

        The live view records the row on its scoring thread and hands the image
        to a background writer that calls this, so encoding a camera-sized PNG
        (150-220 ms at 5 MP) never holds up the next part. A crash in between
        leaves the committed row without an image, never an image without a row.
        """
        if self.image_dir is None:
            return None
        rec = self.get(record_id)
        if rec is None:
            raise HistoryError(self.path, f"no inspection with id {record_id} to attach an image to")
        rel = _kept_image_name(rec.time, rec.id, rec.verdict)
        if not self._save_image(rel, image):  # encoded and written outside the database lock
            return None
        with self._lock:
            try:
                self._db().execute("UPDATE inspections SET stored_image=? WHERE id=?", (rel.as_posix(), rec.id))
            except sqlite3.Error as exc:
                (self.image_dir / rel).unlink(missing_ok=True)
                raise self._wrap(exc) from exc
        return self.image_dir / rel

    def set_override(self, record_id: int, verdict: Any, operator: str) -> None:
        """Record an operator's decision on an inspection (``verdict=None`` clears it)."""
        value = None if verdict is None else _verdict_str(verdict)
        with self._lock:
            try:
                cur = self._db().execute(
                    "UPDATE inspections SET override_verdict=?, override_operator=?, override_time=?"
                    " WHERE id=?",
                    (value, None if value is None else operator, None if value is None else _iso(_utc_now()),
                     int(record_id)),
                )  # fmt: skip
            except sqlite3.Error as exc:
                raise self._wrap(exc) from exc
        if cur.rowcount == 0:
            raise KeyError(f"no inspection with id {record_id} in '{self.path}'")

    # ---------------------------------------------------------------- reading

    def _select(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db().execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise self._wrap(exc) from exc

    def query(
        self,
        verdict: str | Iterable[str] | None = None,
        since: Any = None,
        until: Any = None,
        bundle: str | None = None,
        source_contains: str | None = None,
        limit: int = 200,
        offset: int = 0,
        newest_first: bool = True,
    ) -> list[HistoryRecord]:
        """One page of records matching the filters (see ``_build_where``)."""
        where, params = _build_where(verdict, since, until, bundle, source_contains)
        order = "DESC" if newest_first else "ASC"
        sql = (
            f"SELECT {', '.join(_COLUMNS)} FROM inspections{where}"
            f" ORDER BY epoch {order}, id {order} LIMIT ? OFFSET ?"
        )
        rows = self._select(sql, params + [int(limit), int(offset)])
        return [HistoryRecord(*row) for row in rows]

    def get(self, record_id: int) -> HistoryRecord | None:
        """The record with this id, or None."""
        rows = self._select(f"SELECT {', '.join(_COLUMNS)} FROM inspections WHERE id=?", [int(record_id)])
        return HistoryRecord(*rows[0]) if rows else None

    def count(
        self,
        verdict: str | Iterable[str] | None = None,
        since: Any = None,
        until: Any = None,
        bundle: str | None = None,
        source_contains: str | None = None,
    ) -> int:
        """How many records match the filters."""
        where, params = _build_where(verdict, since, until, bundle, source_contains)
        return int(self._select(f"SELECT COUNT(*) FROM inspections{where}", params)[0][0])

    def counts_by_verdict(
        self,
        verdict: str | Iterable[str] | None = None,
        since: Any = None,
        until: Any = None,
        bundle: str | None = None,
        source_contains: str | None = None,
    ) -> dict[str, int]:
        """Model verdict -> number of matching records; every verdict is present (0 if none)."""
        where, params = _build_where(verdict, since, until, bundle, source_contains)
        rows = self._select(f"SELECT verdict, COUNT(*) FROM inspections{where} GROUP BY verdict", params)
        out = {v: 0 for v in VERDICTS}
        out.update({str(v): int(n) for v, n in rows})
        return out

    def bundles(self) -> list[str]:
        """Names of the bundles that appear in the history, sorted."""
        return [r[0] for r in self._select("SELECT DISTINCT bundle FROM inspections ORDER BY bundle", [])]

    def image_path(self, record: HistoryRecord) -> Path | None:
        """The kept image of a record, or None when none was kept or it has been deleted."""
        if not record.stored_image or self.image_dir is None:
            return None
        p = self.image_dir / record.stored_image
        return p if p.is_file() else None

    def export_csv(
        self,
        path: str | os.PathLike[str],
        verdict: str | Iterable[str] | None = None,
        since: Any = None,
        until: Any = None,
        bundle: str | None = None,
        source_contains: str | None = None,
        newest_first: bool = False,
    ) -> int:
        """Write the matching records to a CSV file (atomically, streamed); returns the row count.

        Reads through its own connection so that recording goes on meanwhile.
        """
        target = Path(path)
        where, params = _build_where(verdict, since, until, bundle, source_contains)
        order = "DESC" if newest_first else "ASC"
        sql = f"SELECT {', '.join(_COLUMNS)} FROM inspections{where} ORDER BY epoch {order}, id {order}"
        n = 0
        conn = self._connect()
        try:
            with atomic_open(target, "w", encoding="utf-8", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(_COLUMNS)
                cur = conn.execute(sql, params)
                while batch := cur.fetchmany(2000):
                    writer.writerows(batch)
                    n += len(batch)
        except sqlite3.Error as exc:
            raise self._wrap(exc) from exc
        except OSError as exc:
            raise HistoryError(self.path, f"cannot export to '{target}' ({exc.strerror or exc})") from exc
        finally:
            conn.close()
        return n

    # ---------------------------------------------------------------- lifetime

    def close(self) -> None:
        """Close the database (idempotent)."""
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                finally:
                    self._conn = None

    def __enter__(self) -> "HistoryDB":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "HistoryDB",
    "HistoryError",
    "HistoryRecord",
    "SCHEMA_VERSION",
    "default_data_dir",
    "default_history_path",
    "default_image_dir",
]
