"""PySide6 6.12.0 frees ``None`` once per call of a method that returns nothing.

Its generated wrappers return ``Py_None`` (and, for some methods, ``True`` or
``False``) without taking a new reference, so every ``painter.fillRect(...)``,
``font.setBold(...)`` or ``pen.setColor(...)`` lowers ``None``'s reference
count by one. A live view paints a few dozen such calls per part: after a long
session the count reaches zero and CPython 3.11 aborts with "Fatal Python
error: none_dealloc: deallocating None", most often while quitting, when many
references to ``None`` are dropped at once. (6.11.3 and earlier are fine; on
CPython 3.12 and later ``None``, ``True`` and ``False`` are immortal.)

``pyproject.toml`` excludes 6.12.0; for an installation that has it anyway,
:func:`neutralise` finds the bug by measuring it and makes the three objects
immortal the way CPython 3.12 does, by giving them a reference count that no
session can use up. Called by :func:`app.gc_guard.install`, hence by every way
of starting the application.
"""

from __future__ import annotations

import logging
import platform
import sys

log = logging.getLogger(__name__)
_PROBE_CALLS = 200
_IMMORTAL = 1 << 40  # references: more than a session at 1000 calls a second for 30 years


def void_call_leaks() -> int:
    """How many references to ``None`` ``_PROBE_CALLS`` calls of a PySide6 void method free (0 when sound)."""
    from PySide6.QtGui import QFont

    font = QFont()
    before = sys.getrefcount(None)
    for _ in range(_PROBE_CALLS):
        font.setBold(True)
    return max(0, before - sys.getrefcount(None))


def neutralise() -> bool:
    """Make ``None``, ``True`` and ``False`` immortal when this PySide6 frees
    them (CPython before 3.12 only); True when the bug was found."""
    if sys.version_info >= (3, 12) or platform.python_implementation() != "CPython":
        return False
    if void_call_leaks() < _PROBE_CALLS // 2:
        return False
    import ctypes

    for obj in (None, True, False):
        ctypes.c_ssize_t.from_address(id(obj)).value += _IMMORTAL
    import PySide6

    log.warning("PySide6 %s frees None on every call of a void method (a crash after a long session); "
                "worked around. Install another version: pip install 'PySide6!=6.12.0'", PySide6.__version__)
    return True


__all__ = ["neutralise", "void_call_leaks"]
