"""What the Line view shows, read from the line's server in one go (no Qt:
run on a worker job, tested alone): counts and yield per station and per
shift, the FAIL-rate trend per station, which bundle each station runs and
the approved one, and the newest verdicts that match the filters."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inspection_core.history.pg_line import Approval, Counts, StationBundle
from inspection_core.history.records import HistoryRecord

#: verdict rows the view lists (the CSV export writes every matching one)
ROW_LIMIT = 500
#: points of the FAIL-rate trend across the period, about
TREND_POINTS = 24


@dataclass(frozen=True)
class LineFilters:
    """The view's filters; None: any."""

    station: str | None = None
    shift: str | None = None
    bundle: str | None = None
    verdict: str | None = None
    since: float | None = None
    until: float | None = None

    def as_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``PgHistory.query``, ``count``, ``export_csv`` and the line queries."""
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class LineSnapshot:
    server: str
    login: str
    role: str
    stations: list[str]
    bundles: list[str]
    shifts: list[str]
    by_station: list[Counts]
    by_shift: list[Counts]
    trend: dict[str, list[tuple[float, int, int]]]
    bucket_s: float
    station_bundles: list[StationBundle]
    approved: Approval | None
    rows: list[HistoryRecord]
    total: int
    loaded_at: float = field(default_factory=lambda: _dt.datetime.now().timestamp())

    @property
    def off_approved(self) -> list[StationBundle]:
        """Stations whose last bundle is not the approved one."""
        return [b for b in self.station_bundles if b.approved is False]


def trend_bucket(since: float | None, until: float | None, now: float | None = None) -> float:
    """Seconds per trend point: the period in about ``TREND_POINTS`` steps,
    rounded to whole minutes (one hour when the period is open)."""
    if since is None:
        return 3600.0
    end = until if until is not None else (now if now is not None else _dt.datetime.now().timestamp())
    return max(60.0, round(max(0.0, end - since) / TREND_POINTS / 60.0) * 60.0)


def load_snapshot(server: str, filters: LineFilters, limit: int = ROW_LIMIT) -> LineSnapshot:
    """Everything the view shows, through a connection of its own (closed after)."""
    from inspection_core.history.pg import PgHistory

    kw = filters.as_kwargs()
    bucket = trend_bucket(filters.since, filters.until)
    with PgHistory(server) as db:
        return LineSnapshot(
            server=db.path, login=db.login, role=db.role, stations=db.stations(), bundles=db.bundles(),
            shifts=[s.name for s in db.shifts], by_station=db.counts_by_station(**kw),
            by_shift=db.counts_by_shift(**kw), trend=db.fail_trend(bucket, **kw), bucket_s=bucket,
            station_bundles=db.station_bundles(**{k: v for k, v in kw.items() if k in ("since", "until")}),
            approved=db.approved_bundle(), rows=db.query(**kw, limit=limit), total=db.count(**kw),
        )  # fmt: skip


def export_csv(server: str, filters: LineFilters, path: str | Path) -> int:
    """Every verdict matching the filters to a CSV file (the History view's columns); returns the count."""
    from inspection_core.history.pg import PgHistory

    with PgHistory(server) as db:
        return db.export_csv(path, **filters.as_kwargs())


def set_override(server: str, record_id: int, verdict: str | None, operator: str) -> None:
    """An engineer's decision on one verdict (None clears it); who and when are recorded by the server."""
    from inspection_core.history.pg import PgHistory

    with PgHistory(server) as db:
        db.set_override(record_id, verdict, operator)


__all__ = ["LineFilters", "LineSnapshot", "ROW_LIMIT", "export_csv", "load_snapshot", "set_override", "trend_bucket"]
