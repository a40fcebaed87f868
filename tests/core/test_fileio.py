"""The one atomic-write helper: all or nothing, usual permissions, no litter."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
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


# --------------------------------------------------------------------------- killed writers, full disks (issue 13)

_SLOW_WRITER = """
import sys, time
from inspection_core.fileio import atomic_open
with atomic_open(sys.argv[1], "wb") as fh:
    fh.write(b"x" * 100_000)
    fh.flush()
    print("writing", flush=True)
    time.sleep(60)
"""


def _writer_in_progress(target: Path) -> subprocess.Popen[str]:

    proc = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(target)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
    return proc


@pytest.mark.fault("files", "kill -9 during a bundle save (NAME.inspector temp file left behind)",
                   "the next write into that folder removes it; a live writer's temp file is kept")
def test_a_killed_writers_temp_file_is_removed_by_the_next_write(tmp_path: Path) -> None:
    import signal

    from inspection_core.fileio import remove_stale_temps

    target = tmp_path / "part.inspector"
    target.write_bytes(b"old bundle")
    killed = _writer_in_progress(target)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    left = list(tmp_path.glob(temp_pattern(target)))
    assert len(left) == 1 and left[0].stat().st_size == 100_000
    alive = _writer_in_progress(tmp_path / "other.inspector")
    try:
        atomic_write_bytes(target, b"new bundle")  # the next save of that bundle
        assert list(tmp_path.glob(temp_pattern(target))) == [] and target.read_bytes() == b"new bundle"
        assert len(list(tmp_path.glob(temp_pattern(tmp_path / "other.inspector")))) == 1  # still being written
        killed = _writer_in_progress(tmp_path / "third.inspector")
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        assert [p.name for p in remove_stale_temps(tmp_path)][0].startswith(".third.inspector.")  # any other file's
    finally:
        alive.kill()
        alive.wait()


@pytest.mark.fault("files", "full disk while writing a file",
                   "WriteError naming the file: \"cannot write '…': no space left on the disk\"; old file kept")
def test_a_full_disk_names_the_file_and_keeps_the_old_one(tmp_path: Path) -> None:
    import errno

    from _disk import fill, small_disk
    from inspection_core.fileio import WriteError

    with small_disk(tmp_path / "disk") as disk:
        target = disk / "scores.csv"
        atomic_write_text(target, "old\n")
        fill(disk)
        with pytest.raises(WriteError) as info:
            atomic_write_bytes(target, b"y" * 200_000)
        assert info.value.errno == errno.ENOSPC and isinstance(info.value, OSError)
        assert str(info.value) == f"cannot write '{target}': no space left on the disk (free some space and try again)"
        assert target.read_text() == "old\n" and list(disk.glob(temp_pattern(target))) == []
