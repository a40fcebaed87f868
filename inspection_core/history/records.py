"""The history's rows and SQL: the schema, the row type and the filters
shared by every query (no connection here; see :mod:`.db`)."""

from __future__ import annotations

import datetime as _dt
import os
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 2
VERDICTS = ("PASS", "REVIEW", "FAIL", "INVALID")
COLUMNS = (
    "id", "time", "epoch", "station", "source", "image_ref", "bundle", "bundle_id",
    "score", "threshold_high", "threshold_low", "verdict", "override_verdict",
    "override_operator", "override_time", "stored_image", "latency_ms", "note", "defect_type",
)  # fmt: skip

SCHEMA_V1 = """
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

INSERT_SQL = (
    "INSERT INTO inspections (time, epoch, station, source, image_ref, bundle, bundle_id, score,"
    " threshold_high, threshold_low, verdict, latency_ms, note, defect_type) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


def _add_defect_type(conn: sqlite3.Connection) -> None:
    """Schema 2: a FAIL's defect type by the bundle's classifier (NULL: none named; ADR 0020)."""
    conn.execute("ALTER TABLE inspections ADD COLUMN defect_type TEXT")
    conn.execute("CREATE INDEX IF NOT EXISTS ix_inspections_type ON inspections(defect_type, epoch)")


# version -> function that migrates a database at that version to version + 1.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _add_defect_type}


#: what kind of trouble a HistoryError is (the spool and the views say it in words)
ERROR_KINDS = ("locked", "full", "readonly", "foreign", "corrupt", "newer", "closed", "other")


class HistoryError(RuntimeError):
    """The history database cannot be used; ``path`` names the file, ``kind``
    (one of ``ERROR_KINDS``) says whether waiting can help (``locked``)."""

    def __init__(self, path: str | os.PathLike[str], reason: str, kind: str = "other") -> None:
        self.path = Path(path)
        self.reason = reason
        self.kind = kind if kind in ERROR_KINDS else "other"
        super().__init__(f"inspection history '{self.path}': {reason}")


def error_kind(exc: BaseException) -> str:
    """The ``ERROR_KINDS`` entry of an sqlite3 or OS error."""
    text = str(exc).lower()
    if "locked" in text or "busy" in text:
        return "locked"
    if "full" in text or "no space" in text or getattr(exc, "errno", None) == 28:
        return "full"
    if "readonly" in text or "read-only" in text or "permission" in text:
        return "readonly"
    if "not a database" in text or "malformed" in text:
        return "corrupt"
    return "other"


def explain(exc: BaseException) -> str:
    """An sqlite3 error in words, for a station's operator."""
    kind = error_kind(exc)
    return {
        "locked": f"another program holds the database's lock ({exc})",
        "full": f"the disk is full ({exc})",
        "readonly": f"the database is read-only ({exc})",
        "corrupt": f"the file is damaged ({exc})",
    }.get(kind, str(exc))


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
    #: the defect type the bundle's classifier named ("scratch", "unknown"), None when none was named
    defect_type: str | None = None

    @property
    def effective_verdict(self) -> str:
        """The operator's override when there is one, else the model's verdict."""
        return self.override_verdict or self.verdict

    @property
    def datetime(self) -> _dt.datetime:
        """The inspection time as an aware UTC datetime."""
        return _dt.datetime.fromtimestamp(self.epoch, tz=_dt.timezone.utc)


# --------------------------------------------------------------------------- helpers


def utc_now() -> _dt.datetime:
    return _dt.datetime.now(tz=_dt.timezone.utc)


def to_datetime(value: Any) -> _dt.datetime:
    """datetime (naive = local time), epoch seconds or ISO string -> aware UTC datetime."""
    if isinstance(value, _dt.datetime):
        dt = value if value.tzinfo else value.astimezone()
        return dt.astimezone(_dt.timezone.utc)
    if isinstance(value, _dt.date):
        return to_datetime(_dt.datetime(value.year, value.month, value.day))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _dt.datetime.fromtimestamp(float(value), tz=_dt.timezone.utc)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        return to_datetime(_dt.datetime.fromisoformat(text))
    raise TypeError(f"cannot interpret {value!r} as a time")


def iso_utc(dt: _dt.datetime) -> str:
    d = dt.astimezone(_dt.timezone.utc)
    return (
        f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:{d.second:02d}"
        f".{d.microsecond // 1000:03d}Z"
    )


def verdict_str(value: Any) -> str:
    text = str(getattr(value, "value", value)).upper()
    if text not in VERDICTS:
        raise ValueError(f"unknown verdict {value!r}; expected one of {', '.join(VERDICTS)}")
    return text


def opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def build_where(
    verdict: str | Iterable[str] | None = None,
    since: Any = None,
    until: Any = None,
    bundle: str | None = None,
    source_contains: str | None = None,
    defect_type: str | None = None,
    overridden: bool | None = None,
) -> tuple[str, list[Any]]:
    """SQL WHERE clause + parameters for the common filters.

    ``verdict``: the model's verdict (one or several); ``since`` inclusive,
    ``until`` exclusive; ``source_contains`` matches the source or the image
    reference, case-insensitively; ``defect_type`` the type the classifier named;
    ``overridden`` True keeps the rows an operator overrode (False: the others).
    """
    clauses: list[str] = []
    params: list[Any] = []
    if verdict is not None:
        verdicts = [verdict] if isinstance(verdict, str) or hasattr(verdict, "value") else list(verdict)
        names = sorted({verdict_str(v) for v in verdicts})
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
        params.append(to_datetime(since).timestamp())
    if until is not None:
        clauses.append("epoch < ?")
        params.append(to_datetime(until).timestamp())
    if bundle is not None:
        clauses.append("bundle = ?")
        params.append(bundle)
    if source_contains:
        pattern = "%" + source_contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        clauses.append("(source LIKE ? ESCAPE '\\' OR image_ref LIKE ? ESCAPE '\\')")
        params.extend([pattern, pattern])
    if defect_type is not None:
        clauses.append("defect_type = ?")
        params.append(defect_type)
    if overridden is not None:
        clauses.append("override_verdict IS NOT NULL" if overridden else "override_verdict IS NULL")
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


class HistoryReads:
    """The reads both history backends (SQLite, PostgreSQL) answer with the
    same SQL: a backend gives ``_select(sql, params)`` and ``image_dir``."""

    image_dir: Path | None

    def _select(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def bundles(self) -> list[str]:
        """Names of the bundles that appear in the history, sorted."""
        return [r[0] for r in self._select("SELECT DISTINCT bundle FROM inspections ORDER BY bundle", [])]

    def defect_types(self) -> list[str]:
        """The defect types named in the history (that this login may read), sorted."""
        rows = self._select("SELECT DISTINCT defect_type FROM inspections WHERE defect_type IS NOT NULL"
                            " ORDER BY defect_type", [])
        return [r[0] for r in rows]

    def image_path(self, record: HistoryRecord) -> Path | None:
        """The kept image of a record, or None when none was kept or it cannot be found."""
        if not record.stored_image or self.image_dir is None:
            return None
        p = self.image_dir / record.stored_image
        return p if p.is_file() else None
