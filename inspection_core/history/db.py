"""The history database: one SQLite file, recorded to by a worker thread and
read by the GUI thread (see the package docstring for the design). Whether the
file is ours, writable and still reached by what is recorded is looked at by
:mod:`.file_health`."""

from __future__ import annotations

import csv
import logging
import os
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..fileio import atomic_open
from .file_health import (APPLICATION_ID, WAL_ALARM_BYTES, WAL_AUTOCHECKPOINT_PAGES, WAL_SIZE_LIMIT, FileGuard,
                          check_owner, check_writable, wal_path_of)
from .kept_images import kept_image_name, save_kept_image
from .records import (COLUMNS, INSERT_SQL, MIGRATIONS, SCHEMA_V1, SCHEMA_VERSION, VERDICTS, HistoryError, HistoryReads,
                      HistoryRecord, build_where, error_kind, explain, iso_utc, opt_float, to_datetime, utc_now, verdict_str)

log = logging.getLogger(__name__)

__all__ = ["APPLICATION_ID", "WAL_ALARM_BYTES", "WAL_AUTOCHECKPOINT_PAGES", "WAL_SIZE_LIMIT", "HistoryDB"]


class HistoryDB(HistoryReads):
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
        self.keep_images_for = frozenset(verdict_str(v) for v in keep_images_for)
        self._busy_timeout = busy_timeout
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HistoryError(self.path, f"cannot create its folder ({exc.strerror or exc})") from exc
        self._conn = self._connect()
        #: whether what is recorded still reaches the file opened (looked at now, right after opening it)
        self._guard = FileGuard(self.path)
        try:
            check_owner(self._conn, self.path)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
            self._conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
            self._migrate()
            check_writable(self._conn, self.path, self._busy_timeout)
        except HistoryError:
            self._conn.close()
            self._conn = None
            raise
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            self._conn = None
            kind = error_kind(exc)
            if kind in ("readonly", "locked", "full"):
                raise HistoryError(self.path, f"cannot be opened for recording: {explain(exc)}", kind) from exc
            raise HistoryError(
                self.path, f"not a usable history database ({exc}); move the file away to start a new history",
                "corrupt",
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
            raise HistoryError(self.path, "the database is closed", "closed")
        return self._conn

    @property
    def wal_path(self) -> Path:
        return wal_path_of(self.path)

    @property
    def busy_timeout(self) -> float:
        """Seconds a write waits for another writer's lock before failing."""
        return self._busy_timeout

    @busy_timeout.setter
    def busy_timeout(self, seconds: float) -> None:
        with self._lock:
            self._busy_timeout = max(0.0, float(seconds))
            if self._conn is not None:
                self._conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout * 1000)}")

    def _migrate(self) -> None:
        conn = self._db()
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise HistoryError(
                self.path, f"written by a newer Inspector (schema {version}, this one knows {SCHEMA_VERSION})",
                "newer",
            )
        if version == SCHEMA_VERSION:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            if version == 0:
                conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
                # Statement by statement: executescript() would commit on its own.
                for stmt in filter(str.strip, SCHEMA_V1.split(";")):
                    conn.execute(stmt)
                version = 1
            while version < SCHEMA_VERSION:
                MIGRATIONS[version](conn)
                version += 1
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _wrap(self, exc: sqlite3.Error) -> HistoryError:
        return HistoryError(self.path, explain(exc), error_kind(exc))

    # ---------------------------------------------------------------- writing

    def _row_values(self, kw: Mapping[str, Any]) -> tuple[list[Any], str]:
        when = to_datetime(kw["time"]) if kw.get("time") is not None else utc_now()
        verdict = verdict_str(kw["verdict"])
        values = [
            iso_utc(when), when.timestamp(), str(kw.get("station", "")), str(kw.get("source", "")),
            str(kw.get("image_ref", "")), str(kw.get("bundle", "")), str(kw.get("bundle_id", "")),
            opt_float(kw.get("score")), opt_float(kw.get("threshold_high")),
            opt_float(kw.get("threshold_low")), verdict, opt_float(kw.get("latency_ms")),
            str(kw.get("note", "")), None if kw.get("defect_type") is None else str(kw["defect_type"]),
        ]  # fmt: skip
        return values, verdict

    def _keeps_image(self, kw: Mapping[str, Any], verdict: str) -> bool:
        return kw.get("image") is not None and self.image_dir is not None and verdict in self.keep_images_for

    def _insert_with_image(
        self, conn: sqlite3.Connection, values: list[Any], image: np.ndarray
    ) -> tuple[int, Path | None]:
        """Insert one row, then keep its image (the file name needs the row id)."""
        row_id = conn.execute(INSERT_SQL, values).lastrowid
        assert row_id is not None  # an INSERT always sets it
        verdict = values[10]
        rel = kept_image_name(values[0], row_id, verdict)
        if not self._save_image(rel, image):
            return row_id, None
        conn.execute("UPDATE inspections SET stored_image=? WHERE id=?", (rel.as_posix(), row_id))
        return row_id, self.image_dir / rel if self.image_dir is not None else None

    def _save_image(self, rel: Path, image: np.ndarray) -> bool:
        assert self.image_dir is not None
        return save_kept_image(self.image_dir / rel, image)

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
        defect_type: str | None = None,
    ) -> int:
        """Record one inspection; returns its id once it is committed to disk.

        ``time``: datetime / epoch seconds / ISO string, default now. ``image`` is
        kept (PNG) when ``verdict`` is in ``keep_images_for`` and ``image_dir`` is set.
        """
        kw = dict(
            score=score, verdict=verdict, threshold_high=threshold_high, threshold_low=threshold_low,
            source=source, image_ref=image_ref, bundle=bundle, bundle_id=bundle_id, station=station,
            latency_ms=latency_ms, image=image, time=time, note=note, defect_type=defect_type,
        )  # fmt: skip
        return self.record_many([kw])[0]

    def record_many(self, rows: Iterable[Mapping[str, Any]], *, skip_recorded: bool = False) -> list[int]:
        """Record many inspections in one transaction (batch CLI use); returns their ids.

        Each row is a mapping with ``record``'s keyword arguments.
        ``skip_recorded``: a row already in the database (same time, image
        reference, station, verdict and score) is not recorded again and its
        id is returned (writing a spool twice records each verdict once).
        """
        ids: list[int] = []
        written: list[Path] = []
        batch: list[list[Any]] = []

        def flush() -> None:
            # One executemany for rows without images. The ids are consecutive:
            # this connection holds the write lock and AUTOINCREMENT only grows.
            if batch:
                conn.executemany(INSERT_SQL, batch)
                last = int(conn.execute("SELECT MAX(id) FROM inspections").fetchone()[0])
                ids.extend(range(last - len(batch) + 1, last + 1))
                batch.clear()

        with self._lock:
            conn = self._db()
            self._guard.before_write(conn)
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for kw in rows:
                        values, verdict = self._row_values(kw)
                        if skip_recorded:
                            flush()
                            found = conn.execute(
                                "SELECT id FROM inspections WHERE epoch=? AND image_ref=? AND station=? AND verdict=?"
                                " AND score IS ? LIMIT 1", (values[1], values[4], values[2], verdict, values[7]),
                            ).fetchone()
                            if found is not None:
                                ids.append(int(found[0]))
                                continue
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
            self._guard.after_commit(conn)
        return ids

    def keeps_image_for(self, verdict: Any) -> bool:
        """Whether a part with this verdict has its image kept."""
        return self.image_dir is not None and verdict_str(verdict) in self.keep_images_for

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
        rel = kept_image_name(rec.time, rec.id, rec.verdict)
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
        value = None if verdict is None else verdict_str(verdict)
        with self._lock:
            try:
                cur = self._db().execute(
                    "UPDATE inspections SET override_verdict=?, override_operator=?, override_time=?"
                    " WHERE id=?",
                    (value, None if value is None else operator, None if value is None else iso_utc(utc_now()),
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
        defect_type: str | None = None,
        overridden: bool | None = None,
        offset: int = 0,
        newest_first: bool = True,
    ) -> list[HistoryRecord]:
        """One page of records matching the filters (see ``build_where``)."""
        where, params = build_where(verdict, since, until, bundle, source_contains, defect_type, overridden)
        order = "DESC" if newest_first else "ASC"
        sql = (
            f"SELECT {', '.join(COLUMNS)} FROM inspections{where}"
            f" ORDER BY epoch {order}, id {order} LIMIT ? OFFSET ?"
        )
        rows = self._select(sql, params + [int(limit), int(offset)])
        return [HistoryRecord(*row) for row in rows]

    def get(self, record_id: int) -> HistoryRecord | None:
        """The record with this id, or None."""
        rows = self._select(f"SELECT {', '.join(COLUMNS)} FROM inspections WHERE id=?", [int(record_id)])
        return HistoryRecord(*rows[0]) if rows else None

    def count(
        self,
        verdict: str | Iterable[str] | None = None,
        since: Any = None,
        until: Any = None,
        bundle: str | None = None,
        source_contains: str | None = None,
        defect_type: str | None = None,
        overridden: bool | None = None,
    ) -> int:
        """How many records match the filters."""
        where, params = build_where(verdict, since, until, bundle, source_contains, defect_type, overridden)
        return int(self._select(f"SELECT COUNT(*) FROM inspections{where}", params)[0][0])

    def counts_by_verdict(
        self,
        verdict: str | Iterable[str] | None = None,
        since: Any = None,
        until: Any = None,
        bundle: str | None = None,
        source_contains: str | None = None,
        defect_type: str | None = None,
        overridden: bool | None = None,
    ) -> dict[str, int]:
        """Model verdict -> number of matching records; every verdict is present (0 if none)."""
        where, params = build_where(verdict, since, until, bundle, source_contains, defect_type, overridden)
        rows = self._select(f"SELECT verdict, COUNT(*) FROM inspections{where} GROUP BY verdict", params)
        out = {v: 0 for v in VERDICTS}
        out.update({str(v): int(n) for v, n in rows})
        return out

    def export_csv(
        self,
        path: str | os.PathLike[str],
        verdict: str | Iterable[str] | None = None,
        since: Any = None,
        until: Any = None,
        bundle: str | None = None,
        source_contains: str | None = None,
        newest_first: bool = False,
        defect_type: str | None = None,
        overridden: bool | None = None,
    ) -> int:
        """Write the matching records to a CSV file (atomically, streamed); returns the row count.

        Reads through its own connection so that recording goes on meanwhile.
        """
        target = Path(path)
        where, params = build_where(verdict, since, until, bundle, source_contains, defect_type, overridden)
        order = "DESC" if newest_first else "ASC"
        sql = f"SELECT {', '.join(COLUMNS)} FROM inspections{where} ORDER BY epoch {order}, id {order}"
        n = 0
        conn = self._connect()
        try:
            with atomic_open(target, "w", encoding="utf-8", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(COLUMNS)
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
        """Close the database (idempotent); the WAL is folded back first, so
        it does not linger beside the file."""
        with self._lock:
            if self._conn is not None:
                try:
                    try:
                        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
                    except sqlite3.Error as exc:
                        if error_kind(exc) != "locked":  # another connection's lock: SQLite checkpoints later
                            log.warning("history '%s': its WAL '%s' cannot be written into the database file (%s); "
                                        "keep it beside the database: it holds recorded verdicts", self.path,
                                        self.wal_path, explain(exc))
                    self._conn.close()
                finally:
                    self._conn = None

    def __enter__(self) -> "HistoryDB":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
