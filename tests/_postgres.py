"""A real PostgreSQL server for the tests: ``initdb`` and ``pg_ctl`` in a
temporary folder, on a free loopback port, its unix socket in that folder.
Started once per session (about 2 s); each test gets a database of its own
(``line_db``) with the Inspector schema, two station logins and an engineer.

The server binaries come from Debian's ``postgresql`` package
(``/usr/lib/postgresql/*/bin``, not on PATH) or from PATH; without them the
tests that need a server are skipped with that reason (``.ci/run`` installs the
package, so in CI they run). As root, the server runs as the ``postgres`` user
(``initdb`` refuses root).
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

STATIONS = ("station_a", "station_b")
ENGINEER = "engineer_1"
OWNER = "inspector_owner"


def server_bin() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl``, newest version first, or None."""
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True):
        if (Path(d) / "initdb").is_file():
            return Path(d)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """One throw-away PostgreSQL cluster (see the module docstring)."""

    def __init__(self, bindir: Path, fsync: bool = False) -> None:
        self.bindir = bindir
        self.fsync = fsync  # off for the tests (a killed process loses nothing; a machine crash is not tried)
        self.root = Path(tempfile.mkdtemp(prefix="inspector-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = _free_port()
        self._as: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chmod(self.root, 0o755)
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.data), "-U", OWNER, "--auth=trust", "-E", "UTF8", "--no-locale",
                  "--no-sync")
        self.start()

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self._as, str(self.bindir / tool), *args], capture_output=True, text=True,
                              check=check, timeout=60)

    def start(self) -> None:
        opts = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync={'on' if self.fsync else 'off'}"
                " -c max_connections=60 -c shared_buffers=32MB")
        out = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o", opts, "start",
                        check=False)
        if out.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {out.stdout}{out.stderr}\n{self.log.read_text()[-3000:]}")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def kill9(self) -> None:
        """SIGKILL the postmaster and every backend (a crash of the whole server)."""
        pid_file = self.data / "postmaster.pid"
        pid = int(pid_file.read_text().split()[0])
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:  # the parent's pid: a backend or a helper of the postmaster
                children.append(int(stat.parent.name))
        for p in [pid, *children]:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{p}").exists() for p in [pid, *children]):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server's processes {[pid, *children]} outlived SIGKILL")
            time.sleep(0.05)

    def dsn(self, user: str = OWNER, dbname: str = "postgres", tcp: bool = True) -> str:
        host = "127.0.0.1" if tcp else str(self.root)
        return f"postgresql://{user}@{host}:{self.port}/{dbname}" if tcp else \
            f"host={host} port={self.port} user={user} dbname={dbname}"

    def cleanup(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class LineDB:
    """A database with the Inspector schema on the session's server."""

    server: PgServer
    name: str

    def dsn(self, user: str = STATIONS[0]) -> str:
        return self.server.dsn(user, self.name)

    def owner(self):  # -> psycopg.Connection
        import psycopg

        return psycopg.connect(self.dsn(OWNER), autocommit=True)


_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def pg_server() -> PgServer:
    bindir = server_bin()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (initdb) under /usr/lib/postgresql/*/bin or on PATH; "
                    "install Debian's 'postgresql' package (.ci/run does)")
    server = PgServer(bindir)
    yield server
    server.cleanup()


def make_line_db(server: PgServer, prefix: str = "line") -> LineDB:
    """A new database on ``server``, migrated, with the station and engineer logins."""
    import psycopg
    from psycopg import sql

    from inspection_core.history.pg_schema import add_login, migrate

    name = f"{prefix}_{os.getpid()}_{next(_numbers)}"
    with psycopg.connect(server.dsn(OWNER), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(server.dsn(OWNER, name), autocommit=True) as conn:
        migrate(conn)
        for st in STATIONS:
            add_login(conn, st, "station")
        add_login(conn, ENGINEER, "engineer")
    return LineDB(server, name)


@pytest.fixture
def line_db(pg_server: PgServer) -> LineDB:
    return make_line_db(pg_server)


def main(argv: list[str]) -> int:
    """``python tests/_postgres.py CMD ...``: run CMD with a throw-away line
    server in ``INSPECTOR_SELFTEST_SERVER`` (a station's login); CI runs the
    frozen application's self-test so, to prove its PostgreSQL client works."""
    import sys

    bindir = server_bin()
    if bindir is None or not argv:
        print("usage: _postgres.py CMD ... (needs PostgreSQL's server binaries)", file=sys.stderr)
        return 2
    server = PgServer(bindir)
    try:
        db = make_line_db(server, "selftest")
        env = dict(os.environ, INSPECTOR_SELFTEST_SERVER=db.dsn(STATIONS[0]))
        return subprocess.run(argv, env=env).returncode
    finally:
        server.cleanup()


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    raise SystemExit(main(sys.argv[1:]))
