"""``inspector history`` and ``inspector predict --record postgresql://…`` on a real server."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from _cli import run_cli
from _postgres import ENGINEER, OWNER, STATIONS, LineDB, PgServer

from inspection_core.history import open_history
from inspection_core.history.pg_schema import SCHEMA_VERSION


def test_init_add_login_migrate_status_approve(pg_server: PgServer, tmp_path: Path, capsys, tiny_bundle: Path):
    with psycopg.connect(pg_server.dsn(OWNER), autocommit=True) as conn:
        conn.execute("CREATE DATABASE cli_line")
    owner = pg_server.dsn(OWNER, "cli_line")
    rc, out, err = run_cli(capsys, "history", "migrate", "--db", owner)
    assert rc == 2 and "inspector history init" in err
    rc, out, err = run_cli(capsys, "history", "init", "--db", owner)
    assert rc == 0 and f"schema 0 -> {SCHEMA_VERSION}" in out, err
    rc, out, err = run_cli(capsys, "history", "init", "--db", owner)
    assert rc == 0 and "up to date" in out
    rc, out, err = run_cli(capsys, "history", "add-login", "--db", owner, "--role", "station", "cli station 'ü'")
    assert rc == 0 and "created" in out, err
    rc, out, err = run_cli(capsys, "history", "add-login", "--db", owner, "--role", "engineer", "cli_quality")
    assert rc == 0
    rc, out, err = run_cli(capsys, "history", "add-login", "--db", pg_server.dsn("cli_quality", "cli_line"),
                           "--role", "station", "sneaky")
    assert rc == 2 and "owner" in err  # an engineer cannot make logins
    station = pg_server.dsn("cli station 'ü'".replace(" ", "%20").replace("'", "%27"), "cli_line")
    with open_history(station) as db:
        assert db.role == "station"
        db.record(score=1.0, verdict="FAIL", threshold_high=0.5, station="S1", bundle="other", bundle_id="x")
    engineer = pg_server.dsn("cli_quality", "cli_line")
    rc, out, err = run_cli(capsys, "history", "approve", "--db", station, str(tiny_bundle))
    assert rc == 2 and "engineer" in err
    rc, out, err = run_cli(capsys, "history", "approve", "--db", engineer, str(tiny_bundle), "--by", "Q. Engineer")
    assert rc == 0 and "sha256" in out, err
    rc, out, err = run_cli(capsys, "history", "status", "--db", engineer)
    assert rc == 0 and "S1: 1 verdicts" in out and "NOT THE APPROVED BUNDLE" in out and "by Q. Engineer" in out


@pytest.mark.fault("cli", "history --db or predict --record with a password in the connection string",
                   "exit 2 before connecting: passwords go in ~/.pgpass, never on a command line or in settings")
def test_a_password_on_the_command_line_is_refused(capsys, tiny_bundle: Path, demo_data: Path):
    rc, out, err = run_cli(capsys, "history", "status", "--db", "postgresql://u:hunter2@localhost/line")
    assert rc == 2 and ".pgpass" in err and "hunter2" not in err
    rc, out, err = run_cli(capsys, "predict", "--bundle", str(tiny_bundle), str(demo_data / "test" / "good"),
                           "--record", "host=localhost password=hunter2", "--device", "cpu")
    assert rc == 2 and ".pgpass" in err and "hunter2" not in err and out == ""


def test_predict_records_to_the_line_server(line_db: LineDB, tiny_bundle: Path, demo_data: Path, capsys,
                                            tmp_path, monkeypatch):
    monkeypatch.setenv("INSPECTOR_DATA_DIR", str(tmp_path / "data"))
    rc, out, err = run_cli(capsys, "predict", "--bundle", str(tiny_bundle), str(demo_data / "test" / "good"),
                           "--record", line_db.dsn(STATIONS[0]), "--station", "Station 1", "--device", "cpu")
    assert rc == 0, err
    printed = sorted(line.split("\t")[0] for line in out.splitlines())
    with open_history(line_db.dsn(ENGINEER)) as eng:
        rows = eng.query(limit=100)
    assert sorted(r.image_ref for r in rows) == printed and {r.station for r in rows} == {"Station 1"}
    rc, out, err = run_cli(capsys, "predict", "--bundle", str(tiny_bundle), str(demo_data / "test" / "good"),
                           "--record", line_db.dsn(OWNER), "--device", "cpu")
    assert rc == 2 and "login of its own" in err and out == ""


@pytest.mark.fault("cli", "predict --record postgresql://… while the line's server is down",
                   "verdicts printed and kept in the station's spool with one warning; the next predict --record "
                   "writes them in, each once")
def test_predict_spools_while_the_server_is_down(pg_server: PgServer, tiny_bundle: Path, demo_data: Path, capsys,
                                                 tmp_path, monkeypatch):
    from _postgres import make_line_db

    monkeypatch.setenv("INSPECTOR_DATA_DIR", str(tmp_path / "data"))
    db = make_line_db(pg_server)
    good = demo_data / "test" / "good"
    pg_server.stop("immediate")
    try:
        rc, out, err = run_cli(capsys, "predict", "--bundle", str(tiny_bundle), str(good), "--record",
                               db.dsn(STATIONS[0]), "--record-wait", "0", "--device", "cpu")
    finally:
        pg_server.start()
    assert rc == 0, err
    first = sorted(line.split("\t")[0] for line in out.splitlines())
    assert err.count("cannot be reached") == 1 and "not in the history yet" in err
    defects = sorted(p for p in (demo_data / "test").iterdir() if p.name != "good")[0]
    rc, out, err = run_cli(capsys, "predict", "--bundle", str(tiny_bundle), str(defects), "--record",
                           db.dsn(STATIONS[0]), "--device", "cpu")
    assert rc == 0 and f"{len(first)} spooled verdict(s) written" in err, err
    second = sorted(line.split("\t")[0] for line in out.splitlines())
    with open_history(db.dsn(ENGINEER)) as eng:
        refs = sorted(r.image_ref for r in eng.query(limit=1000))
    assert refs == sorted(first + second)
