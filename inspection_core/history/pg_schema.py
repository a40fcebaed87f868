"""The line history's schema on PostgreSQL: plain numbered SQL files in
``sql/`` (``NNNN_name.sql``), applied in order, each in a transaction of its
own, and recorded in ``inspector_schema`` (docs/adr/0018 says why not Alembic).

Run by the database's owner (``inspector history init|migrate``), never by a
station. A concurrent second migration waits on an advisory lock and then
finds nothing left to do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
#: pg_advisory_xact_lock key of a migration (any constant; "insp" in ASCII)
_LOCK_KEY = 0x696E7370
GROUP_ROLES = {"station": "inspector_station", "engineer": "inspector_engineer"}

_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS inspector_schema (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """The numbered SQL files shipped with Inspector, oldest first."""
    found = []
    for entry in resources.files(__package__).joinpath("sql").iterdir():
        m = _FILE.match(entry.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda mig: mig.version)
    for n, mig in enumerate(found, 1):
        if mig.version != n:
            raise RuntimeError(f"history migrations: {n:04d}_*.sql is missing (found {mig.version:04d}_{mig.name}.sql)")
    return found


#: the schema version this Inspector writes and reads (the highest numbered file)
SCHEMA_VERSION = len(migrations())


def current_version(conn: Any) -> int:
    """The schema version of the database ``conn`` is connected to (0: none)."""
    row = conn.execute("SELECT to_regclass('inspector_schema') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return 0
    return int(conn.execute("SELECT COALESCE(MAX(version), 0) FROM inspector_schema").fetchone()[0])


def migrate(conn: Any, target: int | None = None) -> tuple[int, int]:
    """Bring the database to :data:`SCHEMA_VERSION` (or ``target``); returns (version before, after).

    ``conn``: a psycopg connection of the database's owner (not in a transaction).
    Raises RuntimeError when the database is newer than this Inspector.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        before = current_version(conn)
    if before > SCHEMA_VERSION:
        raise RuntimeError(f"written by a newer Inspector (schema {before}, this one knows {SCHEMA_VERSION})")
    for mig in migrations():
        if target is not None and mig.version > target:
            break
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            conn.execute(_VERSION_TABLE)
            if current_version(conn) >= mig.version:
                continue
            conn.execute(mig.sql)
            conn.execute("INSERT INTO inspector_schema (version, name) VALUES (%s, %s)", (mig.version, mig.name))
    return before, current_version(conn)


def add_login(conn: Any, name: str, role: str, password: str | None = None) -> bool:
    """Create the login ``name`` as a member of the station or engineer group
    role (or add an existing role to it); returns True when it was created.

    ``password``: None for a login that authenticates otherwise (a client
    certificate, peer or a .pgpass on the station that the server checks by
    SCRAM: then give it here once, it is not kept anywhere by Inspector).
    """
    from psycopg import sql

    if role not in GROUP_ROLES:
        raise ValueError(f"role must be one of {', '.join(GROUP_ROLES)}, got {role!r}")
    ident = sql.Identifier(name)
    group = sql.Identifier(GROUP_ROLES[role])
    with conn.transaction():
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone() is not None
        if not exists:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT").format(ident))
        conn.execute(sql.SQL("GRANT {} TO {}").format(group, ident))
        if password is not None:
            # utility statements take no bind parameters: the literal is quoted by the client library
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(ident, sql.Literal(password)))
    return not exists
