"""The history file's health: that the file is ours and writable, and that
what is recorded still reaches it.

SQLite keeps writing through the file it opened and checkpoints its WAL
without a word when that fails; these checks make such a loss an error that
recording sees (and spools around, :mod:`.recorder`). Used by
:class:`~.db.HistoryDB`: :func:`check_owner` and :func:`check_writable` at
open, :class:`FileGuard` before each write and after each commit.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

from .records import HistoryError, error_kind, explain

# the database's logger: what is said here is said about the database
log = logging.getLogger(__package__ + ".db")

#: ``PRAGMA application_id`` of an Inspector history ("INSP"): another program's SQLite file is never written to
APPLICATION_ID = 0x494E5350
#: the WAL is checkpointed every this many pages and cut back to WAL_SIZE_LIMIT (it grew to 4 MB)
WAL_AUTOCHECKPOINT_PAGES = 128
WAL_SIZE_LIMIT = 1 << 20
#: a WAL this large means that checkpoints do not reach the database file (or
#: a reader holds them back): one is tried by hand to find out which
WAL_ALARM_BYTES = 4 * WAL_SIZE_LIMIT


def _may_write(path: Path) -> bool:
    """Whether this process may write ``path`` now: False for a file made
    immutable (``chattr +i``; also for root) or read-only (for root a
    read-only mode is no obstacle, and access() says so)."""
    return os.access(path, os.W_OK)


def file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file at ``path``, or None where it cannot be looked at."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if st.st_ino else None


def wal_path_of(path: Path) -> Path:
    """The WAL file beside the database file ``path``."""
    return path.with_name(path.name + "-wal")


def check_owner(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse an SQLite file of another program: it is never written to
    (``--record other.db`` added a table to it without a word)."""
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    tables = {r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")}
    if app_id not in (0, APPLICATION_ID) or (tables and "inspections" not in tables):
        shown = ", ".join(sorted(tables)[:5]) or "none"
        raise HistoryError(path, f"is an SQLite database of another program (tables: {shown}); "
                                 "choose another file for the inspection history", "foreign")


def check_writable(conn: sqlite3.Connection, path: Path, busy_timeout: float) -> None:
    """Find out at open, not at the first part, that the file cannot be
    written (read-only file or folder, immutable file); a lock held by
    another writer is no reason to refuse (recording waits or spools).
    ``busy_timeout``: the connection's wait in seconds, set back afterwards."""
    conn.execute("PRAGMA busy_timeout=200")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(f"PRAGMA user_version={int(version)}")  # a write that changes nothing
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
    except sqlite3.OperationalError as exc:
        if error_kind(exc) != "locked":
            raise HistoryError(path, f"cannot be written: {explain(exc)}", error_kind(exc)) from exc
    finally:
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")


class FileGuard:
    """Whether what is recorded through a connection still reaches the file at ``path``.

    Looks at the file when made (right after the connection opened it):
    :meth:`before_write` refuses a write once the file was moved, replaced or
    made read-only, or once a checkpoint failed; :meth:`after_commit` finds
    out about a failing checkpoint.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        #: (device, inode) of the file opened: a file put in its place is not the one written to
        self.identity = file_identity(path)
        #: why what is recorded no longer reaches the database file (a checkpoint failed), or None
        self.unreached: str | None = None
        self.wal_alarm = WAL_ALARM_BYTES

    @property
    def wal_path(self) -> Path:
        return wal_path_of(self.path)

    def before_write(self, conn: sqlite3.Connection) -> None:
        """Before a write: refuse one that could not reach the database file.
        The connection keeps writing through the file it opened, so a file
        made read-only or immutable, or moved or replaced, while recording
        would take rows into its WAL (that can never be written back, and
        grows without bound) or into a file nobody reads, without an error.
        A checkpoint that failed (:meth:`after_commit`) is tried again here."""
        if self.identity is not None:  # a file (not ":memory:") that could be looked at when it was opened
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                raise HistoryError(self.path, "the database file was moved or deleted while recording: what is "
                                              "recorded would not reach it", "other") from None
            except OSError:
                st = None  # SQLite says what is wrong
            if st is not None and (st.st_dev, st.st_ino) != self.identity:
                raise HistoryError(self.path, "the database file was replaced by another file while recording: "
                                              "what is recorded would not reach it (start again to use the new file)",
                                   "other")
            if st is not None and not _may_write(self.path):
                raise HistoryError(self.path, "the database file was made read-only or immutable while recording: "
                                              "what is recorded would not reach it", "readonly")
        if self.unreached is not None:
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error:
                raise HistoryError(self.path, self.unreached, "other") from None
            log.info("history '%s': its WAL is written into the database file again", self.path)
            self.unreached = None
            self.wal_alarm = WAL_ALARM_BYTES

    def after_commit(self, conn: sqlite3.Connection) -> None:
        """After a commit: SQLite checkpoints the WAL into the database file
        by itself and says nothing when that fails. A WAL far beyond its
        limit is checkpointed here to find out; a failure is kept and refuses
        the next write (:meth:`before_write`). A reader that holds the WAL back
        is no failure: it is looked at again after another WAL_SIZE_LIMIT."""
        try:
            size = os.stat(self.wal_path).st_size
        except OSError:
            return
        if size <= WAL_ALARM_BYTES:
            self.wal_alarm = WAL_ALARM_BYTES
        if size <= self.wal_alarm:
            return
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:
            if error_kind(exc) == "locked":
                return
            self.unreached = (f"what is recorded no longer reaches the database file ({explain(exc)}); the "
                              f"verdicts taken so far wait in '{self.wal_path}': keep that file beside the database")
            return
        self.wal_alarm = size + WAL_SIZE_LIMIT
