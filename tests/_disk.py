"""A really full disk for the tests that need one: a small tmpfs mounted in
the test's folder (needs root, as in CI's container); skipped elsewhere, where
the fault-injection tests still cover the same code paths."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def small_disk(path: Path, size_kb: int = 256) -> Iterator[Path]:
    """``path`` as the mount point of a ``size_kb`` tmpfs for the block."""
    path.mkdir(parents=True, exist_ok=True)
    if os.name != "posix" or os.geteuid() != 0:
        pytest.skip("a full disk is simulated with a small tmpfs, which needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {r.stderr.strip()}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(folder: Path, leave: int = 0) -> None:
    """Fill the disk under ``folder`` until at most ``leave`` bytes are free."""
    chunk = b"\0" * 4096
    with open(folder / ".filler", "ab") as fh:
        try:
            while os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize > leave:
                fh.write(chunk)
                fh.flush()
        except OSError:
            pass
