"""Folder sources: every image of a folder, or each new image dropped into one.

A file that cannot be decoded never stops the stream: it is logged with its
name and the reason, and listed in ``skipped``.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..data.images import ImageReadError, is_image_file, list_images, read_image
from .base import Frame, ImageSource, SourceError

log = logging.getLogger(__name__)


class FolderSource(ImageSource):
    """The images of a folder, in sorted path order; ends after the last one."""

    def __init__(self, path: str | os.PathLike[str], recursive: bool = False) -> None:
        self.path = Path(path)
        super().__init__(self.path.name or str(self.path))
        self.recursive = recursive
        self.skipped: list[tuple[Path, str]] = []
        self._files: list[Path] = []
        self._pos = 0

    @property
    def total(self) -> int:
        """How many image files the folder held when it was opened."""
        return len(self._files)

    def _open(self) -> None:
        if not self.path.is_dir():
            what = "not found" if not self.path.exists() else "not a folder"
            raise SourceError(f"image folder '{self.path}': {what}")
        self._files = list_images(self.path, recursive=self.recursive)
        self._pos = 0
        self.skipped = []
        self.state = "running" if self._files else "ended"

    def _close(self) -> None:
        self._files = []

    def _poll(self, timeout: float) -> Frame | None:
        while self._pos < len(self._files) and not self.closed:
            path = self._files[self._pos]
            self._pos += 1
            try:
                image = read_image(path)
            except ImageReadError as exc:
                log.warning("skipping %s", exc)
                self.skipped.append((path, exc.reason))
                self.last_error = str(exc)
                continue
            return Frame(image, self._next_index(), time.time(), str(path))
        self.state = "ended"
        return None


@dataclass
class _Seen:
    signature: tuple[int, int]  # (size, mtime_ns)
    since: float  # monotonic time when this signature was first observed
    done: bool = False  # delivered, or given up on, with this signature


class WatchedFolderSource(ImageSource):
    """Each new image file that appears in a folder (a line's camera software drops them).

    A file is read only after its size and modification time have stayed the
    same for ``settle_time`` seconds, so a file still being written is not read
    half-way. A file that is rewritten later (same name, new content) counts as
    new. Files present at ``open()`` are ignored unless ``process_existing``.
    Plain polling with ``os.scandir`` every ``poll_interval`` seconds: it works on
    network shares where change notifications do not. Hidden files (``.name``)
    and non-image extensions (``.tmp``, ``.part``) are ignored, so writers that
    rename a temp file into place are picked up at once.
    """

    is_live = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        poll_interval: float = 0.2,
        settle_time: float = 0.3,
        process_existing: bool = False,
    ) -> None:
        self.path = Path(path)
        super().__init__(f"watch:{self.path.name or self.path}")
        self.poll_interval = float(poll_interval)
        self.settle_time = float(settle_time)
        self.process_existing = process_existing
        self.skipped: list[tuple[Path, str]] = []
        self._seen: dict[str, _Seen] = {}
        self._pending: list[str] = []
        self._last_scan = 0.0

    def _open(self) -> None:
        if not self.path.is_dir():
            what = "not found" if not self.path.exists() else "not a folder"
            raise SourceError(f"watched folder '{self.path}': {what}")
        self._seen = {}
        self._pending = []
        self.skipped = []
        if not self.process_existing:
            now = time.monotonic()
            for name, sig in self._scan().items():
                self._seen[name] = _Seen(sig, now, done=True)
        self._last_scan = 0.0
        self.state = "running"

    def _close(self) -> None:
        pass  # nothing held between scans; a blocked read() wakes on the closed event

    def _scan(self) -> dict[str, tuple[int, int]]:
        """Image files in the folder -> (size, mtime_ns)."""
        out: dict[str, tuple[int, int]] = {}
        try:
            with os.scandir(self.path) as it:
                for entry in it:
                    if not is_image_file(entry.name):
                        continue
                    try:
                        if entry.is_file():
                            st = entry.stat()
                        elif entry.is_symlink() and not os.path.exists(entry.path):
                            st = entry.stat(follow_symlinks=False)  # a broken link: read, skipped, counted
                        else:
                            continue
                    except OSError:
                        continue  # vanished between listing and stat
                    out[entry.name] = (st.st_size, st.st_mtime_ns)
        except OSError as exc:
            # The folder went away (network share dropped): keep trying, say so.
            if self.state != "reconnecting":
                log.warning("watched folder '%s' unavailable: %s", self.path, exc)
            self.state = "reconnecting"
            self.last_error = f"watched folder '{self.path}' unavailable: {exc.strerror or exc}"
            return {}
        if self.state == "reconnecting":
            self.state = "running"
        return out

    def _ready_files(self) -> list[str]:
        """Update the bookkeeping from one scan; names that have settled, oldest first."""
        now = time.monotonic()
        current = self._scan()
        if self.state == "reconnecting":
            return []
        for name in list(self._seen):
            if name not in current:
                del self._seen[name]  # deleted or renamed away
        ready: list[tuple[int, str]] = []
        for name, sig in current.items():
            seen = self._seen.get(name)
            if seen is None or seen.signature != sig:
                self._seen[name] = _Seen(sig, now)
                continue  # new or still changing: wait for it to settle
            if not seen.done and sig[0] > 0 and now - seen.since >= self.settle_time:
                ready.append((sig[1], name))
        return [name for _, name in sorted(ready)]

    def _try_read(self, name: str) -> Frame | None:
        seen = self._seen[name]
        seen.done = True
        path = self.path / name
        try:
            image = read_image(path)
        except ImageReadError as exc:
            # Not decodable although it stopped changing: report it; if the
            # writer touches it again its signature changes and it is retried.
            log.warning("skipping %s", exc)
            self.skipped.append((path, exc.reason))
            self.last_error = str(exc)
            return None
        self.skipped = [(p, r) for p, r in self.skipped if p != path]
        return Frame(image, self._next_index(), time.time(), str(path))

    def _poll(self, timeout: float) -> Frame | None:
        deadline = time.monotonic() + timeout
        while self._pending and not self.closed:  # settled files found by the last scan
            name = self._pending.pop(0)
            if name in self._seen and not self._seen[name].done:
                frame = self._try_read(name)
                if frame is not None:
                    return frame
        while not self.closed:
            wait = self._last_scan + self.poll_interval - time.monotonic()
            if wait > 0:
                if time.monotonic() + wait > deadline:
                    self._closed.wait(max(0.0, deadline - time.monotonic()))
                    return None
                if self._closed.wait(wait):
                    return None
            self._last_scan = time.monotonic()
            self._pending = self._ready_files()
            while self._pending and not self.closed:
                frame = self._try_read(self._pending.pop(0))
                if frame is not None:
                    return frame
            if time.monotonic() >= deadline:
                return None
        return None
