"""The history of a line of stations on a PostgreSQL server (psycopg 3).

``PgHistory`` answers what ``HistoryDB`` answers (record, record_many,
attach_image, set_override, query, get, count, counts_by_verdict, bundles,
defect_types, image_path, export_csv, close), so the Recorder, the live line, ``inspector
predict --record`` and the History view work on either; the line's own
questions are :class:`~inspection_core.history.pg_line.LineQueries`.

- Each verdict carries a station-generated ``uid``; the insert is ``ON
  CONFLICT (uid) DO NOTHING``, so a verdict whose commit was not acknowledged
  (the server died in between) and is then replayed from the spool is
  recorded once.
- One connection guarded by a lock (as ``HistoryDB``), opened again on the
  next call after the server went away. A lost connection raises
  :class:`ServerHistoryError` with ``transient=True``: the Recorder spools.
- A station records with its own login (row-level security: it reads its own
  rows only, and cannot update or delete); this class refuses to record as the
  database's owner or a superuser.
- Kept images: a file under ``image_dir`` (the line's shared folder, the same
  ``YYYY-MM-DD/<id>_<verdict>.png`` names as the SQLite history; ids are the
  server's, so stations never collide), its path in ``kept_images``.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import psycopg
from psycopg import errors as pg_errors

from ..fileio import atomic_open
from .targets import display_target, new_uid
from .kept_images import kept_image_name, save_kept_image
from .pg_line import LineQueries
from .pg_schema import SCHEMA_VERSION, current_version
from .pg_sql import FROM, INSERT_SQL, SELECT_COLUMNS, pg_where
from .records import (COLUMNS, VERDICTS, HistoryReads, HistoryError, HistoryRecord, iso_utc, opt_float, to_datetime, utc_now,
                      verdict_str)

log = logging.getLogger(__name__)
_T = TypeVar("_T")


class ServerHistoryError(HistoryError):
    """The line history cannot be used; ``transient``: the server could not be
    reached (waiting can help), else it refused (a right, the schema)."""

    def __init__(self, target: str, reason: str, kind: str = "other", transient: bool = False) -> None:
        super().__init__(target, reason, kind)
        self.target = target
        self.transient = transient
        self.args = (f"inspection history server '{target}': {reason}",)


class PgHistory(LineQueries, HistoryReads):
    """See the module docstring. ``dsn``: a ``postgresql://`` URL or libpq
    keywords (``service=line``); passwords come from libpq (.pgpass, service
    file, PGPASSWORD). ``busy_timeout``: seconds to wait for the server
    (connect, TCP) before a call fails and the verdict is spooled."""

    def __init__(self, dsn: str, image_dir: str | os.PathLike[str] | None = None,
                 keep_images_for: Iterable[str] = ("FAIL", "REVIEW"), busy_timeout: float = 10.0) -> None:
        self.dsn = dsn
        #: the server as shown to people (no password), also what ``HistoryError.path`` holds
        self.path = display_target(dsn)
        self.image_dir = Path(image_dir) if image_dir is not None else None
        self.keep_images_for = frozenset(verdict_str(v) for v in keep_images_for)
        self._busy_timeout = float(busy_timeout)
        self._lock = threading.RLock()
        self._conn: psycopg.Connection[Any] | None = None
        self._closed = False
        conn = self._db()
        try:
            version = current_version(conn)
            if version == 0:
                raise self._error("has no Inspector schema: run 'inspector history init --db URL' as its owner")
            if version > SCHEMA_VERSION:
                raise self._error(f"written by a newer Inspector (schema {version}, this one knows {SCHEMA_VERSION})",
                                  "newer")
            if version < SCHEMA_VERSION:
                raise self._error(f"its schema ({version}) is older than this Inspector's ({SCHEMA_VERSION}): run "
                                  "'inspector history migrate --db URL' as its owner")
            self.login, self.role = self._whoami(conn)
        except psycopg.Error as exc:
            self.close()
            raise self._wrap(exc) from exc
        except HistoryError:
            self.close()
            raise

    # ---------------------------------------------------------------- plumbing
    def _error(self, reason: str, kind: str = "other", transient: bool = False) -> ServerHistoryError:
        return ServerHistoryError(self.path, reason, kind, transient)

    def _connect(self) -> psycopg.Connection[Any]:
        wait = max(1, math.ceil(self._busy_timeout))
        try:
            return psycopg.connect(self.dsn, autocommit=True, connect_timeout=wait, application_name="inspector",
                                   keepalives=1, keepalives_idle=5, keepalives_interval=2, keepalives_count=2,
                                   tcp_user_timeout=wait * 1000)
        except psycopg.Error as exc:
            raise self._wrap(exc) from exc

    def _db(self) -> psycopg.Connection[Any]:
        if self._closed:
            raise self._error("the database is closed", "closed")
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._drop()
            self._conn = self._connect()
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass
            self._conn = None

    def _wrap(self, exc: BaseException) -> ServerHistoryError:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)) and not isinstance(
                exc, pg_errors.DiskFull):
            self._drop()
            return self._error(f"the server cannot be reached ({text})", "other", transient=True)
        if self._conn is not None and self._conn.broken:
            self._drop()
            return self._error(f"the connection was lost ({text})", "other", transient=True)
        if isinstance(exc, pg_errors.InsufficientPrivilege):
            return self._error(f"this login may not do that ({text})", "readonly")
        if isinstance(exc, pg_errors.DiskFull):
            return self._error(f"the server's disk is full ({text})", "full")
        return self._error(text)

    @staticmethod
    def _whoami(conn: psycopg.Connection[Any]) -> tuple[str, str]:
        row = conn.execute(
            "SELECT current_user, r.rolsuper, pg_get_userbyid(c.relowner) = current_user,"
            " pg_has_role(current_user, 'inspector_engineer', 'USAGE'),"
            " pg_has_role(current_user, 'inspector_station', 'USAGE')"
            " FROM pg_roles r, pg_class c WHERE r.rolname = current_user AND c.oid = 'inspections'::regclass"
        ).fetchone()
        assert row is not None  # current_user is a role and the schema was checked
        user, superuser, owner, engineer, station = row
        role = "owner" if superuser or owner else "engineer" if engineer else "station" if station else "none"
        return str(user), role

    @property
    def busy_timeout(self) -> float:
        """Seconds a call waits for the server before failing (connect and TCP timeouts)."""
        return self._busy_timeout

    @busy_timeout.setter
    def busy_timeout(self, seconds: float) -> None:
        self._busy_timeout = max(0.0, float(seconds))

    def recording_refused(self) -> str | None:
        """Why this login may not record verdicts (None: it may)."""
        if self.role == "owner":
            return (f"connected as '{self.login}', the database's owner or a superuser: a station records with a "
                    "login of its own ('inspector history add-login --role station NAME')")
        if self.role == "none":
            return (f"the login '{self.login}' is neither a station's nor an engineer's "
                    "('inspector history add-login --role station NAME')")
        return None

    # ---------------------------------------------------------------- writing
    @staticmethod
    def _row_values(kw: Mapping[str, Any]) -> tuple[list[Any], str]:
        when = to_datetime(kw["time"]) if kw.get("time") is not None else utc_now()
        verdict = verdict_str(kw["verdict"])
        values = [
            str(kw.get("uid") or new_uid()), iso_utc(when), when.timestamp(), str(kw.get("station", "")),
            str(kw.get("source", "")), str(kw.get("image_ref", "")), str(kw.get("bundle", "")),
            str(kw.get("bundle_id", "")), opt_float(kw.get("score")), opt_float(kw.get("threshold_high")),
            opt_float(kw.get("threshold_low")), verdict, opt_float(kw.get("latency_ms")), str(kw.get("note", "")),
            None if kw.get("defect_type") is None else str(kw["defect_type"]),
        ]  # fmt: skip
        return values, verdict

    def record(self, *, score: float | None, verdict: Any, threshold_high: float | None,
               threshold_low: float | None = None, source: str = "", image_ref: str = "", bundle: str = "",
               bundle_id: str = "", station: str = "", latency_ms: float | None = None,
               image: np.ndarray | None = None, time: Any = None, note: str = "", uid: str | None = None,
               defect_type: str | None = None) -> int:
        """Record one inspection (``HistoryDB.record``'s arguments, plus ``uid``:
        the verdict's station-generated id, new when None); returns its id once
        committed. A ``uid`` already recorded returns the row it names."""
        kw = dict(score=score, verdict=verdict, threshold_high=threshold_high, threshold_low=threshold_low,
                  source=source, image_ref=image_ref, bundle=bundle, bundle_id=bundle_id, station=station,
                  latency_ms=latency_ms, image=image, time=time, note=note, uid=uid, defect_type=defect_type)
        return self.record_many([kw])[0]

    def record_many(self, rows: Iterable[Mapping[str, Any]], *, skip_recorded: bool = True) -> list[int]:
        """Record many inspections in one transaction; returns their ids. A row
        whose ``uid`` is already recorded is not recorded again (always:
        ``skip_recorded`` is there for ``HistoryDB``'s callers)."""
        if (refused := self.recording_refused()) is not None:
            raise self._error(refused, "readonly")
        prepared = [(kw, *self._row_values(kw)) for kw in rows]

        def insert(conn: psycopg.Connection[Any]) -> list[int]:
            ids: list[int] = []
            with conn.transaction():
                for kw, values, verdict in prepared:
                    found = conn.execute(INSERT_SQL, values).fetchone()
                    if found is None:  # recorded before (a replay): the row that uid names
                        found = conn.execute("SELECT id FROM inspections WHERE uid = %s", (values[0],)).fetchone()
                        if found is None:  # another login's uid: 128 random bits make this a forged one
                            raise self._error(f"verdict id {values[0]!r} is taken by another station", "readonly")
                        ids.append(int(found[0]))
                        continue
                    ids.append(int(found[0]))
                    if kw.get("image") is not None and self.keeps_image_for(verdict):
                        rel = kept_image_name(values[1], ids[-1], verdict)
                        if self._save_image(rel, kw["image"]):
                            conn.execute("INSERT INTO kept_images (inspection_id, path) VALUES (%s, %s)",
                                         (ids[-1], rel.as_posix()))
            return ids

        return self._with_conn(insert)

    def _save_image(self, rel: Path, image: np.ndarray) -> bool:
        assert self.image_dir is not None
        return save_kept_image(self.image_dir / rel, image)

    def keeps_image_for(self, verdict: Any) -> bool:
        """Whether a part with this verdict has its image kept."""
        return self.image_dir is not None and verdict_str(verdict) in self.keep_images_for

    def attach_image(self, record_id: int, image: np.ndarray) -> Path | None:
        """Keep ``image`` for a committed row (as ``HistoryDB.attach_image``): the
        file is written first, its path inserted after (a station never updates)."""
        if self.image_dir is None:
            return None
        rec = self.get(record_id)
        if rec is None:
            raise self._error(f"no inspection with id {record_id} to attach an image to")
        rel = kept_image_name(rec.time, rec.id, rec.verdict)
        if not self._save_image(rel, image):
            return None
        self._execute("INSERT INTO kept_images (inspection_id, path) VALUES (%s, %s)"
                      " ON CONFLICT (inspection_id) DO NOTHING", [rec.id, rel.as_posix()])
        return self.image_dir / rel

    def set_override(self, record_id: int, verdict: Any, operator: str) -> None:
        """Record a decision on an inspection (``verdict=None`` clears it): a new
        row of ``overrides`` with who (``operator`` and the login) and when (the
        server's clock). A station overrides its own verdicts, an engineer any."""
        value = None if verdict is None else verdict_str(verdict)

        def add(conn: psycopg.Connection[Any]) -> bool:
            with conn.transaction():
                if conn.execute("SELECT 1 FROM inspections WHERE id = %s", (int(record_id),)).fetchone() is None:
                    return False
                conn.execute("INSERT INTO overrides (inspection_id, verdict, operator) VALUES (%s, %s, %s)",
                             (int(record_id), value, operator if value is not None else ""))
            return True

        if not self._with_conn(add):
            raise KeyError(f"no inspection with id {record_id} in '{self.path}'")

    def _with_conn(self, fn: Callable[[psycopg.Connection[Any]], _T]) -> _T:
        """``fn(connection)`` under the lock. A connection that was open before
        and turns out lost (the server restarted meanwhile) is opened again and
        ``fn`` run once more: a write is safe to repeat, its uid records it once."""
        with self._lock:
            reused = self._conn is not None and not self._conn.closed and not self._conn.broken
            conn = self._db()
            try:
                return fn(conn)
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                if not reused or isinstance(exc, (pg_errors.DiskFull, pg_errors.QueryCanceled)):
                    raise self._wrap(exc) from exc
                log.info("history server '%s': connection lost (%s); connecting again", self.path, exc)
                self._drop()
            except psycopg.Error as exc:
                raise self._wrap(exc) from exc
            try:
                return fn(self._db())
            except psycopg.Error as exc:
                raise self._wrap(exc) from exc

    def _execute(self, sql: str, params: list[Any]) -> int:
        return self._with_conn(lambda conn: conn.execute(sql, params).rowcount)

    # ---------------------------------------------------------------- reading
    def _select(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        return self._with_conn(lambda conn: conn.execute(sql, params).fetchall())

    def query(self, verdict: str | Iterable[str] | None = None, since: Any = None, until: Any = None,
              bundle: str | None = None, source_contains: str | None = None, limit: int = 200, offset: int = 0,
              newest_first: bool = True, station: str | Iterable[str] | None = None,
              shift: str | None = None, defect_type: str | None = None,
              overridden: bool | None = None) -> list[HistoryRecord]:
        """One page of records matching the filters (``HistoryDB.query``'s, plus station and shift)."""
        where, params = pg_where(verdict, since, until, bundle, source_contains, station, shift, self.shifts,
                                 defect_type=defect_type, overridden=overridden)
        order = "DESC" if newest_first else "ASC"
        sql = f"SELECT {SELECT_COLUMNS}{FROM}{where} ORDER BY i.epoch {order}, i.id {order} LIMIT %s OFFSET %s"
        return [HistoryRecord(*row) for row in self._select(sql, params + [int(limit), int(offset)])]

    def get(self, record_id: int) -> HistoryRecord | None:
        """The record with this id (that this login may read), or None."""
        rows = self._select(f"SELECT {SELECT_COLUMNS}{FROM} WHERE i.id = %s", [int(record_id)])
        return HistoryRecord(*rows[0]) if rows else None

    def count(self, verdict: str | Iterable[str] | None = None, since: Any = None, until: Any = None,
              bundle: str | None = None, source_contains: str | None = None,
              station: str | Iterable[str] | None = None, shift: str | None = None,
              defect_type: str | None = None, overridden: bool | None = None) -> int:
        """How many records match the filters."""
        where, params = pg_where(verdict, since, until, bundle, source_contains, station, shift, self.shifts,
                                 defect_type=defect_type, overridden=overridden)
        return int(self._select(f"SELECT COUNT(*) FROM inspections i{where}", params)[0][0])

    def counts_by_verdict(self, verdict: str | Iterable[str] | None = None, since: Any = None, until: Any = None,
                          bundle: str | None = None, source_contains: str | None = None,
                          station: str | Iterable[str] | None = None, shift: str | None = None,
                          defect_type: str | None = None, overridden: bool | None = None) -> dict[str, int]:
        """Model verdict -> number of matching records; every verdict is present (0 if none)."""
        where, params = pg_where(verdict, since, until, bundle, source_contains, station, shift, self.shifts,
                                 defect_type=defect_type, overridden=overridden)
        rows = self._select(f"SELECT i.verdict, COUNT(*) FROM inspections i{where} GROUP BY i.verdict", params)
        out = dict.fromkeys(VERDICTS, 0)
        out.update({str(v): int(n) for v, n in rows})
        return out

    def export_csv(self, path: str | os.PathLike[str], verdict: str | Iterable[str] | None = None, since: Any = None,
                   until: Any = None, bundle: str | None = None, source_contains: str | None = None,
                   newest_first: bool = False, station: str | Iterable[str] | None = None,
                   shift: str | None = None, defect_type: str | None = None,
                   overridden: bool | None = None) -> int:
        """Write the matching records to a CSV file (atomically, streamed through a
        connection of its own); returns the row count. Columns as ``HistoryDB``'s."""
        target = Path(path)
        where, params = pg_where(verdict, since, until, bundle, source_contains, station, shift, self.shifts,
                                 defect_type=defect_type, overridden=overridden)
        order = "DESC" if newest_first else "ASC"
        sql = f"SELECT {SELECT_COLUMNS}{FROM}{where} ORDER BY i.epoch {order}, i.id {order}"
        n = 0
        conn = self._connect()
        try:
            conn.autocommit = False
            with atomic_open(target, "w", encoding="utf-8", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(COLUMNS)
                with conn.cursor(name="inspector_export") as cur:
                    cur.execute(sql, params)
                    while batch := cur.fetchmany(2000):
                        writer.writerows(batch)
                        n += len(batch)
        except psycopg.Error as exc:
            raise self._wrap(exc) from exc
        except OSError as exc:
            raise self._error(f"cannot export to '{target}' ({exc.strerror or exc})") from exc
        finally:
            conn.close()
        return n

    # ---------------------------------------------------------------- lifetime
    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            self._closed = True
            self._drop()

    def __enter__(self) -> "PgHistory":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["PgHistory", "ServerHistoryError", "new_uid"]
