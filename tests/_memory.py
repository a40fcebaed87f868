"""Peak memory of a piece of work, measured in this process (Linux).

``/proc/self/clear_refs`` resets the peak resident set size (``VmHWM``) to
the current one, so the peak of a call can be read afterwards without a
subprocess. Elsewhere the measuring tests are skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


def _status_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"no {field} in /proc/self/status")


def can_measure() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        _status_kb("VmHWM")
        return True
    except OSError:
        return False


def peak_growth(fn: Callable[[], T], collect: bool = True) -> tuple[T | BaseException, int]:
    """(what ``fn()`` returned or raised, how many bytes the peak RSS rose above
    the RSS before it); ``collect=False`` skips the garbage collection first
    (for many small measurements, e.g. one per Hypothesis example)."""
    if not can_measure():
        pytest.skip("peak memory cannot be measured here (needs Linux /proc/self/clear_refs)")
    import gc

    if collect:
        gc.collect()
    with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
        fh.write("5")
    before = _status_kb("VmRSS")
    out: Any
    try:
        out = fn()
    except BaseException as exc:  # noqa: BLE001 - returned to the test, which judges it
        out = exc
    return out, (_status_kb("VmHWM") - before) * 1024


MiB = 1 << 20
