"""``inspector history``: set up and look after a line's shared history on a
PostgreSQL server (one server, N stations).

    inspector history init --db postgresql://owner@server/line      # schema, roles (the owner runs it)
    inspector history add-login --db ... --role station station1     # one login per station
    inspector history add-login --db ... --role engineer quality     # and per engineer
    inspector history migrate --db ...                               # after an Inspector upgrade
    inspector history approve --db postgresql://quality@server/line BUNDLE
    inspector history status --db ...

Passwords never go on the command line: libpq reads them from ~/.pgpass, a
service file or PGPASSWORD; ``add-login --password-stdin`` reads a new
login's password from standard input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .common import CliError, printable

ACTIONS = ("init", "migrate", "add-login", "approve", "status")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "history",
        help="set up a line's shared history on a PostgreSQL server (schema, logins, approved bundle)",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    db_help = ("the server: postgresql://user@host/dbname, 'service=NAME' (a libpq service file) or 'postgresql://' "
               "with the PG* environment variables; no password here (~/.pgpass)")
    helps = {
        "init": "create the schema and the roles inspector_station and inspector_engineer (as the database's owner)",
        "migrate": "bring the schema up to this Inspector's (as the database's owner)",
        "add-login": "create a station's or an engineer's login (as the database's owner)",
        "approve": "record the bundle the line's engineer approved (an engineer's login)",
        "status": "schema, stations, their counts and bundles",
    }
    for action in ACTIONS:
        a = actions.add_parser(action, help=helps[action], description=helps[action])
        a.add_argument("--db", required=True, metavar="URL", help=db_help)
        if action == "add-login":
            a.add_argument("name", help="the new login's name (a station's logins read only their own verdicts)")
            a.add_argument("--role", choices=("station", "engineer"), required=True,
                           help="station (records its own verdicts, reads its own) or engineer (reads all, overrides, "
                                "approves)")
            a.add_argument("--password-stdin", action="store_true",
                           help="read the new login's password from standard input (one line)")
        if action == "approve":
            a.add_argument("name", metavar="BUNDLE", help="the bundle file (.inspector) the line is to run")
            a.add_argument("--by", default=None, help="who approves (default: the login)")
        a.set_defaults(func=run)


def _connect(dsn: str) -> Any:
    import psycopg

    from ..history import display_target

    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=10, application_name="inspector history")
    except psycopg.Error as exc:
        raise CliError(f"cannot reach the line's server '{display_target(dsn)}': {str(exc).strip()}") from None


def _owner_error(dsn: str, exc: BaseException) -> CliError:
    from ..history import display_target

    return CliError(f"'{display_target(dsn)}': {str(exc).strip().splitlines()[0]} (init, migrate and add-login run "
                    "as the database's owner)")


def _init_or_migrate(args: argparse.Namespace) -> int:
    import psycopg

    from ..history import display_target
    from ..history.pg_schema import SCHEMA_VERSION, current_version, migrate

    with _connect(args.db) as conn:
        try:
            if args.action == "migrate" and current_version(conn) == 0:
                raise CliError(f"'{display_target(args.db)}' has no Inspector schema yet: run 'inspector history "
                               "init' first")
            before, after = migrate(conn)
        except psycopg.Error as exc:
            raise _owner_error(args.db, exc) from None
        except RuntimeError as exc:
            raise CliError(f"'{display_target(args.db)}': {exc}") from None
    if before == after:
        print(f"line history '{display_target(args.db)}': schema {after}, up to date")
    else:
        print(f"line history '{display_target(args.db)}': schema {before} -> {after}"
              + (" (created, with the roles inspector_station and inspector_engineer)" if before == 0 else ""))
    assert after == SCHEMA_VERSION
    return 0


def _add_login(args: argparse.Namespace) -> int:
    import psycopg

    from ..history.pg_schema import add_login

    password = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise CliError("--password-stdin: standard input held no password")
    with _connect(args.db) as conn:
        try:
            created = add_login(conn, args.name, args.role, password)
        except psycopg.Error as exc:
            raise _owner_error(args.db, exc) from None
    print(f"login '{printable(args.name)}' {'created' if created else 'already there'}: {args.role}"
          + ("" if password else "; give it a password in the station's ~/.pgpass once one is set "
             "(--password-stdin) or authenticate it by certificate"))
    return 0


def _open(dsn: str) -> Any:
    from ..history import HistoryError
    from ..history.pg import PgHistory

    try:
        return PgHistory(dsn)
    except HistoryError as exc:
        raise CliError(str(exc)) from None


def _approve(args: argparse.Namespace) -> int:
    from ..bundle import load_manifest
    from ..history import HistoryError

    try:
        m = load_manifest(Path(args.name))
    except (OSError, ValueError) as exc:
        raise CliError(f"'{printable(args.name)}': {exc}") from None
    name = m.name or Path(args.name).stem
    with _open(args.db) as db:
        try:
            db.approve_bundle(name, m.bundle_id, m.weights.sha256, args.by or db.login)
        except HistoryError as exc:
            raise CliError(f"{exc} (an engineer's login approves)") from None
    print(f"approved for the line: {name} (id {m.bundle_id}, sha256 {m.weights.sha256})")
    return 0


def _status(args: argparse.Namespace) -> int:
    from ..history import display_target

    with _open(args.db) as db:
        print(f"line history '{display_target(args.db)}': logged in as {db.login} ({db.role})")
        approved = db.approved_bundle()
        print("approved bundle: " + (f"{approved.bundle} (id {approved.bundle_id}) by {approved.approved_by} at "
                                     f"{approved.approved_at}" if approved else "none"))
        bundles = {b.station: b for b in db.station_bundles()}
        for c in db.counts_by_station():
            yld = f"{c.yield_pct:.1f} %" if c.yield_pct is not None else "-"
            b = bundles.get(c.station)
            flag = "" if b is None or b.approved is not False else "  NOT THE APPROVED BUNDLE"
            print(f"  {printable(c.station)}: {c.total} verdicts, yield {yld}, bundle "
                  f"{printable(b.bundle) if b else '-'} ({b.bundle_id if b else '-'}){flag}")
    return 0


def run(args: argparse.Namespace) -> int:
    from ..history import check_target

    try:
        check_target(args.db, "--db")
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if args.action in ("init", "migrate"):
        return _init_or_migrate(args)
    if args.action == "add-login":
        return _add_login(args)
    if args.action == "approve":
        return _approve(args)
    return _status(args)
