"""What a line's engineer asks of the line history: counts and yield per
station and per shift, the FAIL-rate trend of each station, which bundle each
station runs and the bundle the engineer approved. A mixin of
:class:`~inspection_core.history.pg.PgHistory` (it runs ``self._select``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .pg_sql import DEFAULT_SHIFTS, Shift, pg_where, shift_sql
from .records import VERDICTS


@dataclass(frozen=True)
class Counts:
    """Verdict counts of one group (a station, or a station's shift)."""

    station: str
    shift: str = ""
    by_verdict: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.by_verdict.values())

    @property
    def parts(self) -> int:
        """Frames with a part in them (INVALID ones are not in the yield)."""
        return self.total - self.by_verdict.get("INVALID", 0)

    @property
    def yield_pct(self) -> float | None:
        """PASS share of the parts, in percent (None without parts): the History view's yield."""
        return 100.0 * self.by_verdict.get("PASS", 0) / self.parts if self.parts else None


@dataclass(frozen=True)
class StationBundle:
    """The bundle a station ran last (``sha256``: where the line knows it from an approval)."""

    station: str
    bundle: str
    bundle_id: str
    sha256: str
    last_time: str
    approved: bool | None  # None: no approval recorded on this line


@dataclass(frozen=True)
class Approval:
    bundle: str
    bundle_id: str
    sha256: str
    approved_by: str
    approved_at: str


def _counts(rows: Iterable[tuple[Any, ...]], with_shift: bool) -> list[Counts]:
    groups: dict[tuple[str, str], dict[str, int]] = {}
    for row in rows:
        key = (str(row[0]), str(row[1] or "") if with_shift else "")
        groups.setdefault(key, dict.fromkeys(VERDICTS, 0))[str(row[-2])] = int(row[-1])
    return [Counts(st, sh, by) for (st, sh), by in sorted(groups.items())]


class LineQueries:
    """Line-wide reads and the bundle approval (see the module docstring)."""

    shifts: tuple[Shift, ...] = DEFAULT_SHIFTS

    def _select(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:  # pragma: no cover - PgHistory's
        raise NotImplementedError

    def _execute(self, sql: str, params: list[Any]) -> int:  # pragma: no cover - PgHistory's
        raise NotImplementedError

    def stations(self) -> list[str]:
        """Names of the stations that recorded (that this login may read), sorted."""
        return [r[0] for r in self._select("SELECT DISTINCT station FROM inspections ORDER BY station", [])]

    def counts_by_station(self, **filters: Any) -> list[Counts]:
        """Verdict counts per station for ``PgHistory.query``'s filters."""
        where, params = pg_where(**filters, shifts=self.shifts)
        sql = f"SELECT i.station, i.verdict, COUNT(*) FROM inspections i{where} GROUP BY 1, 2"
        return _counts(self._select(sql, params), with_shift=False)

    def counts_by_shift(self, offset_s: float | None = None, **filters: Any) -> list[Counts]:
        """Verdict counts per station and shift (a verdict outside every shift has shift '')."""
        expr, expr_params = shift_sql(self.shifts, offset_s)
        where, params = pg_where(**filters, shifts=self.shifts, offset_s=offset_s)
        sql = f"SELECT i.station, {expr}, i.verdict, COUNT(*) FROM inspections i{where} GROUP BY 1, 2, 3"
        return _counts(self._select(sql, expr_params + params), with_shift=True)

    def fail_trend(self, bucket_s: float = 3600.0, **filters: Any) -> dict[str, list[tuple[float, int, int]]]:
        """Per station, (bucket start epoch, verdicts, FAILs) for buckets of ``bucket_s`` seconds, oldest first."""
        bucket = max(1.0, float(bucket_s))
        where, params = pg_where(**filters, shifts=self.shifts)
        sql = (f"SELECT i.station, floor(i.epoch / %s) * %s AS b, COUNT(*), COUNT(*) FILTER (WHERE i.verdict = 'FAIL')"
               f" FROM inspections i{where} GROUP BY 1, 2 ORDER BY 1, 2")
        out: dict[str, list[tuple[float, int, int]]] = {}
        for st, b, n, fails in self._select(sql, [bucket, bucket] + params):
            out.setdefault(str(st), []).append((float(b), int(n), int(fails)))
        return out

    def approved_bundle(self) -> Approval | None:
        """The bundle the line's engineer approved last, or None."""
        rows = self._select(
            "SELECT bundle, bundle_id, sha256, approved_by,"
            " to_char(approved_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
            " FROM bundle_approvals ORDER BY id DESC LIMIT 1", [])
        return Approval(*rows[0]) if rows else None

    def approve_bundle(self, bundle: str, bundle_id: str, sha256: str, approved_by: str) -> None:
        """Record that ``approved_by`` approved this bundle for the line (an engineer's login)."""
        self._execute("INSERT INTO bundle_approvals (bundle, bundle_id, sha256, approved_by) VALUES (%s, %s, %s, %s)",
                      [bundle, bundle_id, sha256, approved_by])

    def station_bundles(self, **filters: Any) -> list[StationBundle]:
        """The bundle each station recorded with last, and whether it is the approved one."""
        where, params = pg_where(**filters, shifts=self.shifts)
        rows = self._select(
            "SELECT s.station, s.bundle, s.bundle_id, COALESCE(a.sha256, ''), s.time FROM"
            f" (SELECT DISTINCT ON (i.station) i.station, i.bundle, i.bundle_id, i.time FROM inspections i{where}"
            "  ORDER BY i.station, i.epoch DESC, i.id DESC) s"
            " LEFT JOIN LATERAL (SELECT sha256 FROM bundle_approvals b WHERE b.bundle_id = s.bundle_id"
            "  ORDER BY b.id DESC LIMIT 1) a ON true ORDER BY s.station", params)
        approved = self.approved_bundle()
        return [StationBundle(str(st), str(b), str(bid), str(sha), str(t),
                              None if approved is None else bid == approved.bundle_id)
                for st, b, bid, sha, t in rows]


__all__ = ["Approval", "Counts", "LineQueries", "StationBundle"]
