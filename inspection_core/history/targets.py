"""Connection strings of a line's history server: telling one from an
SQLite file's path, and keeping its password out of sight (no imports of
either backend, so both may use it)."""

from __future__ import annotations

import os
import re
import uuid
from typing import Any

_KEYWORDS = re.compile(r"^\s*(service|host|hostaddr|port|dbname|user|sslmode|application_name|options)\s*=", re.I)
_URL = re.compile(r"^\s*postgres(ql)?://", re.I)
_URL_PASSWORD = re.compile(r"^(\s*postgres(?:ql)?://[^/@:]*):[^/@]*@", re.I)
_KW_PASSWORD = re.compile(r"\bpassword\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", re.I)
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&]*", re.I)


def is_server_target(target: Any) -> bool:
    """Whether ``target`` names a PostgreSQL server rather than an SQLite file."""
    return isinstance(target, str) and bool(_URL.match(target) or _KEYWORDS.match(target))


def has_password(target: str) -> bool:
    """Whether a connection string carries a password in plain text."""
    return bool(_URL_PASSWORD.match(target) or _KW_PASSWORD.search(target) or _QUERY_PASSWORD.search(target))


def display_target(target: str | os.PathLike[str]) -> str:
    """``target`` as shown to people and logs: a server's without any password."""
    text = os.fspath(target)
    if not is_server_target(text):
        return text
    text = _URL_PASSWORD.sub(r"\1@", text)
    text = _KW_PASSWORD.sub("password=***", text)
    return _QUERY_PASSWORD.sub(r"\1***", text)


def check_target(target: str | os.PathLike[str], where: str) -> None:
    """Refuse a server connection string with a password in it (``where`` says whose)."""
    text = os.fspath(target)
    if is_server_target(text) and has_password(text):
        raise ValueError(
            f"{where}: the connection string '{display_target(text)}' holds a password; keep passwords out of "
            "settings and command lines: put it in ~/.pgpass (or a service file, or PGPASSWORD) and leave it "
            "out here")


def new_uid() -> str:
    """A station-generated verdict id (random 128 bits: stations need no coordination)."""
    return uuid.uuid4().hex


__all__ = ["check_target", "display_target", "has_password", "is_server_target", "new_uid"]
