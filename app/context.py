"""Application-wide state shared by the views: settings, history database,
the bundle in use, the role, and the jobs that run on worker threads.

Views never talk to each other directly; they listen to this object's signals.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from PySide6.QtCore import QObject, Signal

from app.settings import StationSettings
from app.workers import JobFn, JobHandle, start_job

if TYPE_CHECKING:  # imported lazily: the history module pulls in nothing heavy, but keep startup lean
    from inspection_core.history import HistoryDB, Recorder
    from inspection_core.history.pg import PgHistory

REPO_MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
BUNDLE_SUFFIX = ".inspector"
ROLES = ("operator", "engineer")


class AppContext(QObject):
    """Shared state of one running application window."""

    bundleChanged = Signal(object)   # Path | None: another bundle was chosen
    bundleUpdated = Signal(object)   # Path: the current bundle's threshold was rewritten
    roleChanged = Signal(str)        # "operator" | "engineer"
    jobsChanged = Signal()           # a job started or ended
    recordingChanged = Signal(str, str, int)  # the recorder's state ("ok" | "spooling"), message, spooled verdicts

    def __init__(self, settings: StationSettings | None = None, role: str | None = None,
                 parent: QObject | None = None, station: bool | None = None) -> None:
        super().__init__(parent)
        self.settings: StationSettings = settings if settings is not None else StationSettings.load()
        from app.station import station_mode

        #: an operator station (no torch, or ``--station``): exported models only, no training views
        self.station: bool = station_mode() if station is None else bool(station)
        self.bundle_path: Path | None = None
        self._role = role if role in ROLES else (self.settings.start_role if self.settings.start_role in ROLES else "operator")
        # one history (and recorder) per database, opened on first use: the station's, and the demo's own
        self._histories: dict[Path | str, HistoryDB | PgHistory] = {}  # a file, or a line's server
        self._recorders: dict[Path | str, Recorder] = {}
        self._demo = False  # the bundle in use is a demo bundle (app.demo.is_demo_bundle_file)
        #: the demo's history database (None: app.demo.demo_history_path, under the data folder)
        self.demo_history: Path | None = None
        self._jobs: list[JobHandle] = []

    # ---- history -----------------------------------------------------------------
    def history_db_path(self) -> Path:
        """The history verdicts are recorded in now: the demo's own while a
        demo bundle is in use, the station's otherwise."""
        if self._demo:
            from app.demo import demo_history_path

            return self.demo_history or demo_history_path(self.settings)
        return self.settings.history_db_path()

    def history_target(self) -> Path | str:
        """:meth:`history_db_path`, or the line's server when the settings name
        one (a demo bundle's verdicts stay in the demo's own file)."""
        if self._demo or not self.settings.history_server.strip():
            return self.history_db_path()
        return self.settings.history_server.strip()

    def _image_dir(self) -> Path | None:
        if not self.settings.keep_images:
            return None
        if self._demo:
            from app.demo import demo_image_dir

            return demo_image_dir(self.history_db_path())
        return self.settings.image_dir_path()

    @property
    def history(self) -> "HistoryDB | PgHistory":
        """The history in use (:meth:`history_target`: a file or the line's server), opened on first use."""
        db_path = self.history_target()
        if db_path not in self._histories:
            from inspection_core.history import open_history

            if isinstance(db_path, Path):
                db_path.parent.mkdir(parents=True, exist_ok=True)
            self._histories[db_path] = open_history(db_path, image_dir=self._image_dir())
        return self._histories[db_path]

    @property
    def history_open(self) -> bool:
        return bool(self._histories)

    @property
    def recorder(self) -> "Recorder":
        """What the live line records verdicts through: the history, or its
        durable spool while the history cannot be written (then
        ``recordingChanged`` says so at once and again when it is caught up)."""
        db_path = self.history_target()
        if db_path not in self._recorders:
            from inspection_core.history import Recorder
            from inspection_core.history.backend import spool_for

            emit = self.recordingChanged.emit
            # a server's spool in this station's data folder (a file's lies beside it)
            spool = spool_for(db_path, self.settings.data_path() / "spool") if isinstance(db_path, str) else None
            try:
                db = self.history
            except Exception as exc:  # noqa: BLE001 - a history that cannot be opened is spooled for
                self._recorders[db_path] = Recorder(path=db_path, image_dir=self._image_dir(), spool=spool,
                                                    open_error=exc, on_change=lambda *a: emit(*a))
            else:
                self._recorders[db_path] = Recorder(db, spool=spool, on_change=lambda *a: emit(*a))
        return self._recorders[db_path]

    # ---- role ----------------------------------------------------------------------
    @property
    def role(self) -> str:
        return self._role

    @role.setter
    def role(self, value: str) -> None:
        self.set_role(value)

    def set_role(self, value: str) -> None:
        if value not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {value!r}")
        if value != self._role:
            self._role = value
            self.roleChanged.emit(value)

    @property
    def is_engineer(self) -> bool:
        return self._role == "engineer"

    # ---- bundles -------------------------------------------------------------------
    def resolve_model(self, path: Path | str | None) -> Path | None:
        """The model ``path`` names: a ``.inspector`` bundle (``NAME`` finds
        ``NAME.inspector``, as everywhere) or an exported model's folder,
        checked to exist; a station (:attr:`station`) takes exported models
        only (ValueError: it has no PyTorch to load a bundle)."""
        if not path:
            return None
        from inspection_core.bundle import existing_bundle
        from inspection_core.station import is_export_dir

        p = Path(path).expanduser()
        if is_export_dir(p):
            return p.resolve()
        new = existing_bundle(p).resolve()
        if new.is_dir():
            raise FileNotFoundError(f"{new} is a folder without an exported model's manifest.json")
        if not new.is_file():
            raise FileNotFoundError(f"model bundle {new} does not exist")
        if self.station:
            raise ValueError(f"model bundle '{new}': this station scores exported models only (no PyTorch); on the "
                             f"engineer's workstation run: inspector export --bundle {new.name} --format onnx --out DIR, "
                             "and open DIR here (File ▸ Open exported model)")
        return new

    def set_bundle(self, path: Path | str | None) -> None:
        """Make ``path`` the model in use (:meth:`resolve_model`) and tell the views."""
        new = self.resolve_model(path)
        if new == self.bundle_path:
            return
        from app.demo import is_demo_bundle_file

        self.bundle_path = new
        self._demo = is_demo_bundle_file(new)  # a demo bundle's verdicts go to the demo's own history
        self.bundleChanged.emit(new)

    def notify_bundle_updated(self) -> None:
        """Call after the current bundle file was rewritten (new threshold)."""
        self.bundleUpdated.emit(self.bundle_path)

    def user_models_dir(self) -> Path:
        """The user's model folder (created on demand); trained bundles go here."""
        d = self.settings.models_path()
        d.mkdir(parents=True, exist_ok=True)
        return d

    def list_bundles(self) -> list[Path]:
        """Models in the shipped models folders and the user's model folder:
        ``.inspector`` bundles (not on a station) and exported models' folders,
        newest first, without duplicates."""
        found: dict[Path, float] = {}
        from app.demo import shipped_models_dirs
        from app.station import export_folders

        for folder in (*shipped_models_dirs(), self.settings.models_path()):
            if not folder.is_dir():
                continue
            models = export_folders(folder)
            if not self.station:
                models += [p for p in folder.glob(f"*{BUNDLE_SUFFIX}") if p.is_file()]
            for p in models:
                found[p.resolve()] = p.stat().st_mtime
        if self.bundle_path is not None and self.bundle_path.exists():
            found.setdefault(self.bundle_path, self.bundle_path.stat().st_mtime)
        return sorted(found, key=lambda p: (-found[p], p.name))

    # ---- jobs ------------------------------------------------------------------------
    def start_job(
        self,
        fn: JobFn,
        on_progress: Callable[[Any], None] | None = None,
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        on_cancelled: Callable[[], None] | None = None,
        name: str = "job",
    ) -> JobHandle:
        """Run ``fn(progress_callback, cancel_token)`` on a worker thread.

        The callbacks run in the GUI thread. The context keeps the handle alive
        until the job ends so the window can stop it on close.
        """
        handle = start_job(fn, on_progress, on_done, on_error, on_cancelled, name=name)
        self._jobs.append(handle)
        for sig in (handle.worker.finished, handle.worker.failed, handle.worker.cancelled):
            sig.connect(lambda *_a, h=handle: self._job_ended(h))
        self.jobsChanged.emit()
        return handle

    def _job_ended(self, handle: JobHandle) -> None:
        # No wait here: this runs on the GUI thread, and the worker's QThread
        # keeps itself alive until it has really ended (CallableThread).
        if handle in self._jobs:
            self._jobs.remove(handle)
            self.jobsChanged.emit()

    def running_jobs(self, name: str | None = None) -> list[JobHandle]:
        return [h for h in self._jobs if h.running and (name is None or h.name == name)]

    def shutdown(self, timeout_ms: int = 10000) -> bool:
        """Cancel every job and wait for them; closes the history database.
        True when all threads ended in time."""
        for h in list(self._jobs):
            h.cancel()
        ok = all(h.wait(timeout_ms) for h in list(self._jobs))
        for recorder in self._recorders.values():
            recorder.close()  # a last try to write the spool; what is left is written at the next start
        self._recorders.clear()
        for db in self._histories.values():
            close = getattr(db, "close", None)
            if callable(close):
                close()
        self._histories.clear()
        return ok
