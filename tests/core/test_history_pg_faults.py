"""Four station processes record to the line's server while it is stopped,
killed or away, and while the stations themselves are killed: afterwards every
printed verdict is in the database exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
from _postgres import OWNER, LineDB, PgServer, make_line_db

from inspection_core.history.pg_schema import add_login

STATION_SCRIPT = Path(__file__).resolve().parents[1] / "_pg_station.py"
ROOT = Path(__file__).resolve().parents[2]


class Station:
    """One station process; its printed lines are read on a thread of their own."""

    def __init__(self, db: LineDB, login: str, run: str, n: int, rate: float, data_dir: Path,
                 wait_s: float = 60.0) -> None:
        env = dict(os.environ, INSPECTOR_DATA_DIR=str(data_dir), OMP_NUM_THREADS="1",
                   PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        self.proc = subprocess.Popen([sys.executable, str(STATION_SCRIPT), db.dsn(login), login, run, str(n),
                                      str(rate), str(wait_s)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def printed(self) -> list[str]:
        """image_ref of every verdict printed (recorded) so far."""
        return [ln.split("\t")[1] for ln in list(self.lines) if "\t" in ln]

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._reader.join(5)

    def finish(self, timeout: float = 120) -> str:
        self.proc.wait(timeout)
        self._reader.join(5)
        assert self.proc.stderr is not None
        err = self.proc.stderr.read()
        assert self.proc.returncode == 0, err
        return self.lines[-1] if self.lines else ""


def _logins(db: LineDB, n: int) -> list[str]:
    names = [f"fault_station_{k}" for k in range(n)]
    with db.owner() as conn:
        for name in names:
            add_login(conn, name, "station")
    return names


def _recorded(db: LineDB) -> dict[str, int]:
    with psycopg.connect(db.dsn(OWNER), autocommit=True) as conn:
        return {ref: int(n) for ref, n in conn.execute("SELECT image_ref, COUNT(*) FROM inspections GROUP BY 1")}


def _wait_until(cond, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _check_exactly_once(db: LineDB, stations: list[Station]) -> tuple[int, int]:
    recorded = _recorded(db)
    printed = [ref for st in stations for ref in st.printed]
    missing = [ref for ref in printed if ref not in recorded]
    doubled = {ref: n for ref, n in recorded.items() if n > 1}
    assert not missing, f"{len(missing)} printed verdicts are not in the database, e.g. {missing[:3]}"
    assert not doubled, f"verdicts recorded more than once: {list(doubled.items())[:3]}"
    spooled = sum(1 for st in stations for ln in st.lines if ln.endswith("\tspooled"))
    print(f"\n{len(stations)} station runs: printed {len(printed)}, recorded {sum(recorded.values())}, missing "
          f"{len(missing)}, recorded twice {len(doubled)}, spooled {spooled}")  # the figures of docs/line.md (-s)
    return len(printed), spooled


@pytest.fixture
def fresh_server(pg_server: PgServer):
    yield pg_server
    if not (pg_server.data / "postmaster.pid").exists():  # a test that failed half-way: the next one needs it up
        pg_server.start()


@pytest.mark.fault("history", "the line's server stopped (pg_ctl stop -m immediate), started, then killed with "
                   "SIGKILL, while four station processes record",
                   "every printed verdict in the database exactly once; the stations never stop")
def test_four_stations_ride_out_an_immediate_stop_and_a_kill(fresh_server: PgServer, tmp_path: Path):
    db = make_line_db(fresh_server, "faults")
    logins = _logins(db, 4)
    stations = [Station(db, login, "r1", n=160, rate=40, data_dir=tmp_path / login) for login in logins]
    _wait_until(lambda: all(len(st.printed) >= 10 for st in stations))
    fresh_server.stop("immediate")
    time.sleep(1.0)
    fresh_server.start()
    _wait_until(lambda: all(len(st.printed) >= 80 for st in stations))
    fresh_server.kill9()
    time.sleep(1.0)
    fresh_server.start()
    ends = [st.finish() for st in stations]
    assert ends == ["done pending=0"] * 4
    printed, spooled = _check_exactly_once(db, stations)
    assert printed == 4 * 160 and spooled > 0  # the outages were felt, and nothing was lost or doubled


@pytest.mark.slow
@pytest.mark.fault("history", "the line's server away for 30 s (network loss) while four stations record",
                   "verdicts spooled at each station meanwhile, then written in: each printed verdict once")
def test_thirty_seconds_without_the_server(fresh_server: PgServer, tmp_path: Path):
    db = make_line_db(fresh_server, "away")
    logins = _logins(db, 4)
    stations = [Station(db, login, "r1", n=400, rate=10, data_dir=tmp_path / login) for login in logins]
    _wait_until(lambda: all(len(st.printed) >= 20 for st in stations))
    fresh_server.stop("immediate")
    time.sleep(30.0)
    fresh_server.start()
    ends = [st.finish(timeout=180) for st in stations]
    assert ends == ["done pending=0"] * 4
    printed, spooled = _check_exactly_once(db, stations)
    assert printed == 4 * 400 and spooled >= 4 * 250  # 30 s at 10 verdicts/s per station went to the spools


@pytest.mark.slow
@pytest.mark.fault("history", "each station process killed with SIGKILL mid-run (server away, then back while the "
                   "spools are written in)", "the next run of each station writes its spool: each printed verdict once")
def test_stations_killed_mid_run_lose_and_double_nothing(fresh_server: PgServer, tmp_path: Path):
    db = make_line_db(fresh_server, "killed")
    logins = _logins(db, 4)
    first = [Station(db, login, "r1", n=10_000, rate=50, data_dir=tmp_path / login) for login in logins]
    _wait_until(lambda: all(len(st.printed) >= 25 for st in first))
    first[0].kill()  # killed while the server takes verdicts
    fresh_server.stop("immediate")
    _wait_until(lambda: all(len(st.printed) >= 150 for st in first[1:]))
    first[1].kill()  # killed with verdicts in its spool
    fresh_server.start()
    time.sleep(0.35)  # the others are writing their spools in now
    for st in first[2:]:
        st.kill()
    second = [Station(db, login, "r2", n=40, rate=50, data_dir=tmp_path / login) for login in logins]
    ends = [st.finish() for st in second]
    assert ends == ["done pending=0"] * 4
    printed, _spooled = _check_exactly_once(db, first + second)
    assert printed > 4 * 40 + 25 * 4
