"""The line history's SQL on PostgreSQL: the row select, the insert and the
filters (every value a bind parameter; no text of a row ever becomes SQL).

Shifts: a verdict belongs to the shift its local hour falls in. The local
hour is the epoch shifted by the UTC offset of the machine that asks (its
offset today: a night across a daylight-saving change is off by an hour).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .records import to_datetime, verdict_str


@dataclass(frozen=True)
class Shift:
    """A shift: local hours ``start`` (inclusive) to ``end`` (exclusive); ``end < start`` crosses midnight."""

    name: str
    start: int
    end: int


DEFAULT_SHIFTS = (Shift("early", 6, 14), Shift("late", 14, 22), Shift("night", 22, 6))

#: the columns of ``HistoryRecord``, in its order, from ``inspections i`` joined with ``kept_images k``
SELECT_COLUMNS = (
    "i.id, i.time, i.epoch, i.station, i.source, i.image_ref, i.bundle, i.bundle_id, i.score, i.threshold_high,"
    " i.threshold_low, i.verdict, o.verdict, CASE WHEN o.verdict IS NULL THEN NULL ELSE o.operator END,"
    " CASE WHEN o.verdict IS NULL THEN NULL ELSE to_char(o.at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
    " END, k.path, i.latency_ms, i.note, i.defect_type"
)
#: a row, its kept image and the override in force (the newest; its verdict NULL: cleared)
FROM = (" FROM inspections i LEFT JOIN kept_images k ON k.inspection_id = i.id"
        " LEFT JOIN LATERAL (SELECT verdict, operator, at FROM overrides WHERE inspection_id = i.id"
        " ORDER BY id DESC LIMIT 1) o ON true")

#: the verdict of the override in force on row ``i`` (NULL: none, or cleared)
_OVERRIDE_IN_FORCE = "(SELECT verdict FROM overrides WHERE inspection_id = i.id ORDER BY id DESC LIMIT 1)"

INSERT_SQL = (
    "INSERT INTO inspections (uid, time, epoch, station, source, image_ref, bundle, bundle_id, score,"
    " threshold_high, threshold_low, verdict, latency_ms, note, defect_type)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (uid) DO NOTHING RETURNING id"
)


def utc_offset_s() -> float:
    """This machine's offset from UTC now, in seconds."""
    offset = _dt.datetime.now().astimezone().utcoffset()
    return offset.total_seconds() if offset is not None else 0.0


def shift_sql(shifts: Iterable[Shift] = DEFAULT_SHIFTS, offset_s: float | None = None) -> tuple[str, list[Any]]:
    """A CASE expression naming the shift of row ``i`` (NULL outside every shift) and its parameters."""
    off = utc_offset_s() if offset_s is None else float(offset_s)
    hour = "mod(floor((i.epoch + %s) / 3600)::bigint, 24)"
    parts: list[str] = []
    params: list[Any] = []
    for s in shifts:
        joiner = "AND" if s.start < s.end else "OR"
        parts.append(f"WHEN ({hour} >= %s {joiner} {hour} < %s) THEN %s")
        params += [off, int(s.start), off, int(s.end), s.name]
    return "(CASE " + " ".join(parts) + " END)", params


def _names(value: str | Iterable[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def pg_where(
    verdict: str | Iterable[str] | None = None,
    since: Any = None,
    until: Any = None,
    bundle: str | None = None,
    source_contains: str | None = None,
    station: str | Iterable[str] | None = None,
    shift: str | None = None,
    shifts: Iterable[Shift] = DEFAULT_SHIFTS,
    offset_s: float | None = None,
    defect_type: str | None = None,
    overridden: bool | None = None,
) -> tuple[str, list[Any]]:
    """WHERE clause (over ``inspections i``) and parameters: the SQLite
    history's filters (``records.build_where``) plus ``station`` (one or
    several names) and ``shift`` (a name of ``shifts``). ``overridden``: the
    override in force (the newest row of ``overrides``) has a verdict."""
    clauses: list[str] = []
    params: list[Any] = []
    if verdict is not None:
        verdicts = [verdict] if isinstance(verdict, str) or hasattr(verdict, "value") else list(verdict)
        clauses.append("i.verdict = ANY(%s)")
        params.append(sorted({verdict_str(v) for v in verdicts}))
    if since is not None:
        clauses.append("i.epoch >= %s")
        params.append(to_datetime(since).timestamp())
    if until is not None:
        clauses.append("i.epoch < %s")
        params.append(to_datetime(until).timestamp())
    if bundle is not None:
        clauses.append("i.bundle = %s")
        params.append(bundle)
    if source_contains:
        pattern = "%" + source_contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        clauses.append("(i.source ILIKE %s OR i.image_ref ILIKE %s)")
        params += [pattern, pattern]
    if station is not None:
        clauses.append("i.station = ANY(%s)")
        params.append(_names(station))
    if shift is not None:
        known = [s for s in shifts if s.name == shift]
        if not known:
            raise ValueError(f"unknown shift {shift!r}; the shifts are {', '.join(s.name for s in shifts)}")
        expr, expr_params = shift_sql(known, offset_s)
        clauses.append(f"{expr} IS NOT NULL")
        params += expr_params
    if defect_type is not None:
        clauses.append("i.defect_type = %s")
        params.append(defect_type)
    if overridden is not None:
        clauses.append(f"{_OVERRIDE_IN_FORCE} IS {'NOT ' if overridden else ''}NULL")
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


__all__ = ["DEFAULT_SHIFTS", "FROM", "INSERT_SQL", "SELECT_COLUMNS", "Shift", "pg_where", "shift_sql", "utc_offset_s"]
