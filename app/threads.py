"""Thread helpers shared by the job bridge and the live pipeline."""

from __future__ import annotations

from typing import Any, Callable

from PySide6.QtCore import QObject, Qt, QThread, Slot

# Workers whose threads did not end within stop()'s wait: destroying a running
# QThread aborts the process, so they are kept here until the process exits.
_LINGERING: list = []


class CallableThread(QThread):
    """A QThread that runs one Python callable (no event loop needed)."""

    def __init__(self, target: Callable[[], None], name: str = "worker", parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._target = target
        self._keepalive: CallableThread | None = None
        self.setObjectName(name)
        # Queued to this object's (the GUI) thread, so it runs after the thread has ended.
        self.finished.connect(self._release, Qt.ConnectionType.QueuedConnection)

    def start(self, *args: Any) -> None:
        # Destroying a running QThread aborts the process: hold a reference to
        # ourselves until the thread has ended, whoever drops theirs first.
        self._keepalive = self
        super().start(*args)

    @Slot()
    def _release(self) -> None:
        self._keepalive = None

    def run(self) -> None:  # noqa: D401 - Qt override
        self._target()
