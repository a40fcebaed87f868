"""Recording every verdict: in the history database when it takes writes,
else in the durable spool (:mod:`.spool`) until it does.

A verdict shown to an operator is a verdict recorded. :meth:`Recorder.record`
returns only once the verdict is committed to the database or fsync'ed to the
spool; when neither is possible it raises :class:`RecordError` and the caller
must not show the verdict as recorded (the live line then stops). While
verdicts wait in the spool, a background thread retries every ``retry_s``
seconds with a short lock wait and writes them in as soon as the database
takes them; ``on_change(state, message, pending)`` says when the state
changes ("ok" or "spooling"), so a view can say so at once.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .backend import History, display_target, history_target, is_server_target, new_uid, open_history, spool_for
from .records import HistoryError, verdict_str
from .spool import SpoolEntry, SpoolError, VerdictSpool

log = logging.getLogger(__name__)

RecorderListener = Callable[[str, str, int], None]


class RecordError(HistoryError):
    """A verdict could be written neither to the database nor to the spool."""


@dataclass(frozen=True)
class Recorded:
    """Where a verdict went: ``record_id`` in the database, or ``spooled``."""

    record_id: int | None
    spooled: bool = False
    message: str = ""


class Recorder:
    """See the module docstring. ``db``: an open HistoryDB (shared, not closed
    here), or None to open ``path`` (retried while it cannot be opened).
    ``busy_timeout_s``: how long a verdict waits for another writer's lock
    before it is spooled (the line does not stall for the database's 10 s)."""

    def __init__(self, db: History | None = None, *, path: str | os.PathLike[str] | None = None,
                 image_dir: str | os.PathLike[str] | None = None, keep_images_for: Iterable[str] = ("FAIL", "REVIEW"),
                 spool: VerdictSpool | None = None, on_change: RecorderListener | None = None,
                 retry_s: float = 2.0, busy_timeout_s: float | None = 2.0, open_error: BaseException | None = None,
                 start_retrying: bool = True) -> None:
        if db is None and path is None:
            raise ValueError("Recorder needs a HistoryDB or the path of one")
        #: what the history was opened from (a file, or a server's connection string) and how it is shown
        self.target: str | Path = history_target(db) if db is not None else (
            str(path) if is_server_target(path) else Path(path))  # type: ignore[arg-type]
        self.path: str | Path = display_target(self.target) if is_server_target(self.target) else Path(self.target)
        self._image_dir = image_dir if db is None else db.image_dir
        self._keep_for = frozenset(verdict_str(v) for v in (db.keep_images_for if db is not None else keep_images_for))
        self._owns_db = db is None
        self._db = db
        self.spool = spool or spool_for(self.target)
        self._listeners: list[RecorderListener] = [on_change] if on_change is not None else []
        self.retry_s = float(retry_s)
        self.busy_timeout_s = busy_timeout_s
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_try = 0.0
        self.state = "ok"
        self.message = ""
        self.pending = 0
        self.written_from_spool = 0
        if self._db is not None and busy_timeout_s is not None:
            self._db.busy_timeout = busy_timeout_s
        if self._db is None:
            if open_error is not None:
                self._failed(open_error)
            else:
                self._open()
        self.pending = self.spool.pending()
        if self.pending:
            self.flush()
            if self.pending and self.state == "ok":
                self._set("spooling", f"{self.pending} verdict(s) wait in the spool '{self.spool.files[0]}'")
        if self.state != "ok" and start_retrying:
            self._start_retrying()

    # ---------------------------------------------------------------- state
    def add_listener(self, fn: RecorderListener) -> None:
        """Call ``fn(state, message, pending)`` on every change (on the recording or retrying thread)."""
        self._listeners.append(fn)

    def remove_listener(self, fn: RecorderListener) -> None:
        if fn in self._listeners:
            self._listeners.remove(fn)

    def _notify(self) -> None:
        for fn in list(self._listeners):
            try:
                fn(self.state, self.message, self.pending)
            except Exception:  # noqa: BLE001 - a broken listener must not stop recording
                log.exception("recorder: a listener failed")

    def _set(self, state: str, message: str) -> None:
        changed = (state, message) != (self.state, self.message)
        self.state, self.message = state, message
        if changed:
            self._notify()

    def _failed(self, exc: BaseException) -> None:
        self._next_try = time.monotonic() + self.retry_s
        reason = exc.reason if isinstance(exc, HistoryError) else str(exc)
        old = self.message
        self._set("spooling", f"history '{self.path}' cannot be written ({reason}): verdicts are kept in the spool "
                              f"'{self.spool.files[0]}' and written to the history when it can be")
        if self.message != old:
            log.warning("%s", self.message)

    def _open(self) -> History | None:
        if self._db is not None:
            return self._db
        try:
            db = open_history(self.target, image_dir=self._image_dir, keep_images_for=self._keep_for)
        except HistoryError as exc:
            self._failed(exc)
            return None
        if self.busy_timeout_s is not None:
            db.busy_timeout = self.busy_timeout_s
        self._db = db
        return db

    @property
    def db(self) -> History | None:
        return self._db

    def keeps_image_for(self, verdict: Any) -> bool:
        return self._image_dir is not None and verdict_str(verdict) in self._keep_for

    # ---------------------------------------------------------------- recording
    def record(self, image_to_keep: np.ndarray | None = None, **row: Any) -> Recorded:
        """Record one verdict (``HistoryDB.record``'s keyword arguments, no
        ``image``): committed to the database, or spooled with
        ``image_to_keep`` (which, for a database row, the caller attaches
        later with :meth:`attach_image`). Raises :class:`RecordError` when
        neither is possible."""
        row.pop("image", None)
        if is_server_target(self.target):  # its id before the first try: a commit whose answer is lost is replayed once
            row.setdefault("uid", new_uid())
        with self._lock:
            if self.pending and time.monotonic() >= self._next_try:
                self._flush_locked(self.busy_timeout_s)
            if not self.pending and (self._db is not None or time.monotonic() >= self._next_try):
                db = self._open()
                if db is not None:
                    try:
                        rid = db.record(**row)
                    except HistoryError as exc:
                        self._failed(exc)
                    else:
                        if self.state != "ok":
                            self._set("ok", "")
                        return Recorded(rid)
            keep = image_to_keep if image_to_keep is not None and self.keeps_image_for(row["verdict"]) else None
            try:
                where = self.spool.append(row, keep)
            except SpoolError as exc:
                raise RecordError(self.path, f"{self.message or 'cannot be written'}; {exc}", "other") from exc
            self.pending += 1
            if self.state == "ok":
                self._set("spooling", f"verdicts are kept in the spool '{where}'")
            else:
                self._notify()
            self._start_retrying()
            return Recorded(None, True, self.message)

    def attach_image(self, record_id: int, image: np.ndarray) -> Path | None:
        db = self._db
        return None if db is None else db.attach_image(record_id, image)

    # ---------------------------------------------------------------- the spool
    def _write_entries(self, db: History, entries: list[SpoolEntry]) -> None:
        ids = db.record_many([e.row for e in entries], skip_recorded=True)
        for e, rid in zip(entries, ids):
            if e.image_file is not None and e.image_file.is_file() and db.image_dir is not None:
                import cv2

                image = cv2.imdecode(np.fromfile(e.image_file, np.uint8), cv2.IMREAD_UNCHANGED)
                rec = db.get(rid)
                if image is not None and rec is not None and not rec.stored_image:
                    db.attach_image(rid, image)

    def _flush_locked(self, wait_s: float | None) -> bool:
        db = self._open()
        if db is None:
            return False
        before = db.busy_timeout
        if wait_s is not None:
            db.busy_timeout = wait_s
        try:
            n = self.spool.drain(lambda entries: self._write_entries(db, entries))
        except (HistoryError, OSError) as exc:
            self._failed(exc)
            return False
        finally:
            db.busy_timeout = before
        self.written_from_spool += n
        self.pending = self.spool.pending()
        if n:
            log.info("history '%s': %d spooled verdict(s) written", self.path, n)
        if not self.pending:
            self._set("ok", f"{n} spooled verdict(s) written to the history" if n else "")
        return not self.pending

    def flush(self, wait_s: float | None = 0.2) -> bool:
        """Write the spool into the database now, waiting at most ``wait_s``
        for another writer's lock; True when nothing is left in the spool."""
        with self._lock:
            if not self.pending and not self.spool.pending():
                self.pending = 0
                return True
            return self._flush_locked(wait_s)

    def flush_until(self, timeout_s: float) -> bool:
        """Retry :meth:`flush` until the spool is empty or ``timeout_s`` passed."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if self.flush(wait_s=max(0.05, min(2.0, left))):
                return True
            if left <= 0 or self._stop.wait(min(self.retry_s, max(0.0, left))):
                return self.pending == 0

    def _start_retrying(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._retry_loop, name="history retry", daemon=True)
        self._thread.start()

    def _retry_loop(self) -> None:
        while not self._stop.wait(self.retry_s):
            if self.flush(wait_s=0.2):
                return

    def close(self) -> None:
        """Stop retrying (one last attempt to write the spool) and close the
        database when this recorder opened it; what stays in the spool is
        written by the next Recorder of this database."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        try:
            self.flush(wait_s=0.5)
        except Exception:  # noqa: BLE001 - closing must not fail; the spool keeps the verdicts
            log.exception("recorder: last spool flush failed")
        if self._owns_db and self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["RecordError", "Recorded", "Recorder", "RecorderListener"]
