"""The one atomic-write helper: all or nothing, usual permissions, no litter."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from inspection_core.fileio import SHARED_MODE, atomic_open, atomic_write_bytes, atomic_write_text, temp_pattern


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "report.csv"
    atomic_write_text(target, "old\n")
    with pytest.raises(RuntimeError):
        with atomic_open(target, "w", encoding="utf-8") as fh:
            fh.write("half of the new")
            raise RuntimeError("disk full")
    assert target.read_text() == "old\n"
    assert list(tmp_path.glob(temp_pattern(target))) == []


def test_permissions_shared_or_private(tmp_path: Path) -> None:
    shared = atomic_write_bytes(tmp_path / "sub" / "a.bin", b"x")  # the folder is created
    private = atomic_write_text(tmp_path / "settings.json", "{}", private=True)
    if os.name == "posix":
        assert stat.S_IMODE(shared.stat().st_mode) == SHARED_MODE
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert shared.read_bytes() == b"x"


def test_only_whole_file_modes() -> None:
    with pytest.raises(ValueError, match="whole files"):
        with atomic_open("x", "a"):
            pass
