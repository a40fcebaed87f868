"""Inspection history: every verdict recorded in an SQLite database.

Used by the desktop app (a worker thread records, the GUI thread reads) and by
the CLI's ``predict``. Three modules: :mod:`.records` (schema, row type, the
SQL filters), :mod:`.db` (``HistoryDB``: the connection, recording, queries,
export) and :mod:`.kept_images` (PNG files of FAIL/REVIEW parts). Where the
database lives by default comes from :mod:`inspection_core.paths`.

Design choices:

- WAL journal with ``synchronous=FULL``: ``record`` commits before it returns,
  so a verdict counted by the app survives a crash of the app or of the machine.
- Thread safety: ONE connection opened with ``check_same_thread=False`` and
  guarded by a re-entrant lock. Every statement is short (a page query on
  100,000 rows takes a few ms), so serialising them costs nothing noticeable and
  keeps ``close()`` simple. ``export_csv`` streams through its own short-lived
  connection (a WAL snapshot) so that a long export never blocks recording.
- Other processes (the CLI while the app runs) may use the same file: WAL lets
  readers and one writer work at once; writers wait up to ``busy_timeout``.
- Schema versioned with ``PRAGMA user_version``; ``MIGRATIONS`` maps an old
  version to the function that brings it one step forward.
- A verdict the database cannot take (locked past the wait, full disk,
  read-only or unopenable file) goes to a durable spool beside it and is
  written in when the database takes writes again (:mod:`.recorder`,
  :mod:`.spool`); an SQLite file of another program is refused, a read-only
  one is found out at open, the WAL is kept under about 1 MB.
- FAIL and REVIEW images (``keep_images_for``) are kept as PNG files under
  ``image_dir/YYYY-MM-DD/<id>_<verdict>.png``; the row stores the path relative
  to ``image_dir`` so the whole folder can be moved.
- A line of stations records to one PostgreSQL server instead (:mod:`.pg`,
  opened by :func:`open_history` from a ``postgresql://`` URL or a
  ``service=`` string; schema in :mod:`.pg_schema`): the same interface, the
  same spool, each verdict once (docs/adr/0018-line-history-on-postgresql.md).
"""


from __future__ import annotations

import os
from pathlib import Path

from ..paths import HISTORY_FILENAME, KEPT_IMAGES_DIRNAME, data_dir
from .backend import check_target, display_target, is_server_target, open_history
from .db import HistoryDB
from .recorder import RecordError, Recorded, Recorder
from .records import SCHEMA_VERSION, VERDICTS, HistoryError, HistoryRecord
from .spool import VerdictSpool


def default_history_path() -> Path:
    """Where the history database lives by default (the folder is not created)."""
    return data_dir() / HISTORY_FILENAME


def default_image_dir(history_path: str | os.PathLike[str] | None = None) -> Path:
    """The folder for kept FAIL/REVIEW images: ``images/`` beside the database."""
    return Path(history_path or default_history_path()).parent / KEPT_IMAGES_DIRNAME


__all__ = [
    "check_target",
    "display_target",
    "is_server_target",
    "open_history",
    "HistoryDB",
    "HistoryError",
    "HistoryRecord",
    "RecordError",
    "Recorded",
    "Recorder",
    "VerdictSpool",
    "SCHEMA_VERSION",
    "VERDICTS",
    "default_history_path",
    "default_image_dir",
]
