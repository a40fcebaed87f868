"""A line under load: N station processes record verdicts to one PostgreSQL
server on loopback while the Line view's queries run in a loop; prints
whether anything was lost or doubled, the record latency each station saw
(p50, p99, max) and the Line view's read time.

    python benchmarks/line_load.py                       # 8 stations x 30 verdicts/s x 60 s
    python benchmarks/line_load.py --stations 2 --rate 5 --seconds 5   # a quick look

The server is a throw-away cluster (tests/_postgres.py: initdb and pg_ctl in a
temporary folder) with fsync on, as a real one; each station is
tests/_pg_station.py (a Recorder, the app's and predict's path) with a login
of its own; the query loop reads what the Line view shows
(app/views/line_data.load_snapshot, an engineer's login, the last 24 hours)
once a second. Every verdict a station printed must be in the database once.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from _postgres import ENGINEER, OWNER, PgServer, make_line_db, server_bin  # noqa: E402

from inspection_core.history.pg_schema import add_login  # noqa: E402

STATION = ROOT / "tests" / "_pg_station.py"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100.0 * (len(ordered) - 1))))] if ordered else float("nan")


def _query_loop(dsn: str, stop: threading.Event, interval: float, times: list[float], errors: list[str]) -> None:
    from app.views.line_data import LineFilters, load_snapshot

    while not stop.is_set():
        t0 = time.perf_counter()
        try:
            load_snapshot(dsn, LineFilters(since=time.time() - 24 * 3600))
            times.append((time.perf_counter() - t0) * 1000)
        except Exception as exc:  # noqa: BLE001 - counted and printed, the load goes on
            errors.append(str(exc))
        stop.wait(interval)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stations", type=int, default=8)
    p.add_argument("--rate", type=float, default=30.0, help="verdicts per second per station")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--query-interval", type=float, default=1.0, help="seconds between Line view reads")
    args = p.parse_args(argv)
    bindir = server_bin()
    if bindir is None:
        print("no PostgreSQL server binaries (initdb): install Debian's 'postgresql' package", file=sys.stderr)
        return 2
    n = int(args.rate * args.seconds)
    server = PgServer(bindir, fsync=True)
    spools = Path(tempfile.mkdtemp(prefix="inspector-line-load-"))
    try:
        db = make_line_db(server, "load")
        logins = [f"load_station_{k}" for k in range(args.stations)]
        with db.owner() as conn:
            for name in logins:
                add_login(conn, name, "station")
        stop = threading.Event()
        q_times: list[float] = []
        q_errors: list[str] = []
        loop = threading.Thread(target=_query_loop, args=(db.dsn(ENGINEER), stop, args.query_interval, q_times,
                                                          q_errors), daemon=True)
        loop.start()
        t0 = time.monotonic()
        procs = []
        for name in logins:
            env = dict(os.environ, INSPECTOR_DATA_DIR=str(spools / name), OMP_NUM_THREADS="1",
                       PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
            procs.append(subprocess.Popen([sys.executable, str(STATION), db.dsn(name), name, "load", str(n),
                                           str(args.rate), "120"], stdout=subprocess.PIPE, text=True, env=env))
        outputs = [proc.communicate()[0] for proc in procs]
        wall = time.monotonic() - t0
        stop.set()
        loop.join(30)
        lines = [ln.split("\t") for out in outputs for ln in out.splitlines() if "\t" in ln]
        latencies = [float(parts[2]) for parts in lines]
        spooled = sum(1 for parts in lines if parts[3] == "spooled")
        printed = [parts[1] for parts in lines]
        import psycopg

        with psycopg.connect(db.dsn(OWNER), autocommit=True) as conn:
            recorded = dict(conn.execute("SELECT image_ref, COUNT(*) FROM inspections GROUP BY 1").fetchall())
        lost = [ref for ref in printed if ref not in recorded]
        doubled = [ref for ref, k in recorded.items() if k > 1]
        ends = [out.splitlines()[-1] if out.strip() else "(no output)" for out in outputs]
    finally:
        server.cleanup()
    load = os.getloadavg()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, PostgreSQL "
          f"{bindir.parent.name}, loopback; load average at the end {load[0]:.2f}")
    print(f"stations: {args.stations} x {args.rate:g} verdicts/s x {args.seconds:g} s = {args.stations * n} verdicts "
          f"asked; wall time {wall:.1f} s; achieved {len(printed) / wall:.0f} verdicts/s in all")
    print(f"printed {len(printed)}, recorded {sum(recorded.values())}, lost {len(lost)}, recorded twice "
          f"{len(doubled)}, spooled {spooled}; stations ended: {sorted(set(ends))}")
    print(f"record latency (ms): p50 {_pct(latencies, 50):.2f}, p99 {_pct(latencies, 99):.2f}, "
          f"max {max(latencies):.2f}, mean {statistics.fmean(latencies):.2f}")
    if q_times:
        print(f"line view read (ms, {len(q_times)} reads, {len(q_errors)} failed): p50 {_pct(q_times, 50):.1f}, "
              f"p99 {_pct(q_times, 99):.1f}, max {max(q_times):.1f}")
    ok = not lost and not doubled and len(printed) == args.stations * n and not q_errors
    print("OK: nothing lost" if ok else "FAILED: see above")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
