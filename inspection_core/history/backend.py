"""Which history a station records to: an SQLite file (the embedded default)
or a PostgreSQL server shared by a line of stations.

A server is named by a ``postgresql://`` URL, by libpq keywords
(``service=line``, ``host=db dbname=line user=station1``) or by ``postgresql://``
alone (libpq's ``PG*`` environment variables). A password never appears in
Inspector's settings or command lines: libpq reads it from ``~/.pgpass``, a
service file (``~/.pg_service.conf``) or ``PGPASSWORD``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Union

from .db import HistoryDB
from .spool import VerdictSpool
from .targets import check_target, display_target, has_password, is_server_target, new_uid

if TYPE_CHECKING:
    from .pg import PgHistory

#: an open history: an SQLite file or a line's server
History = Union[HistoryDB, "PgHistory"]

def history_target(db: Any) -> str | Path:
    """What an open history was opened from: the server's connection string or the file."""
    dsn = getattr(db, "dsn", None)
    return dsn if isinstance(dsn, str) else Path(db.path)


def open_history(target: str | os.PathLike[str], image_dir: str | os.PathLike[str] | None = None,
                 keep_images_for: Iterable[str] = ("FAIL", "REVIEW"), **kw: Any) -> History:
    """The history ``target`` names: a ``PgHistory`` for a server, else a
    ``HistoryDB`` (both raise ``HistoryError`` when it cannot be used)."""
    if is_server_target(target):
        from .pg import PgHistory

        return PgHistory(str(target), image_dir=image_dir, keep_images_for=keep_images_for, **kw)
    return HistoryDB(target, image_dir=image_dir, keep_images_for=keep_images_for, **kw)


def spool_for(target: str | os.PathLike[str], folder: str | os.PathLike[str] | None = None) -> VerdictSpool:
    """The durable local spool of a history: beside an SQLite file, in the
    data folder's ``spool/`` for a server (one file per connection string)."""
    if not is_server_target(target):
        return VerdictSpool(Path(target))
    text = display_target(str(target))
    tag = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
    return VerdictSpool.for_server(f"server-{tag}", folder)


__all__ = ["History", "check_target", "display_target", "has_password", "history_target", "is_server_target",
           "new_uid", "open_history", "spool_for"]
