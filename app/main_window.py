"""The main window: composes the views, menus and status bar; no business logic.

Operator mode shows Inspect and History; engineer mode adds Calibrate,
Train and Line. An operator station (``ctx.station``: no torch, or
``--station``) scores exported models only and has no Calibrate or Train.
Window geometry and recent paths persist in QSettings; station settings
live in the readable settings file (``app.settings``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import QRect, QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QGuiApplication, QIcon
from PySide6.QtWidgets import (
    QApplication, QFileDialog, QInputDialog, QLabel, QLineEdit, QMainWindow, QMessageBox, QTabWidget, QVBoxLayout,
    QWidget,
)  # fmt: skip

from app.context import AppContext
from app.manifest import describe_light, read_manifest_light
from app.views.history import HistoryView
from app.views.inspect import InspectView

MAX_RECENT = 8
#: the first window's size where the screen has room for it; otherwise
#: SCREEN_SHARE of the screen's available area (a 1366 x 768 laptop)
DEFAULT_SIZE = (1360, 820)
SCREEN_SHARE = 0.9


def app_icon() -> QIcon:
    from importlib.resources import files

    try:
        return QIcon(str(files("resources") / "icon.svg"))
    except (ModuleNotFoundError, FileNotFoundError):
        return QIcon()


def fit_to_screen(want: QRect, available: QRect, minimum: tuple[int, int] = (0, 0), centre: bool = False) -> QRect:
    """``want`` moved, and shrunk where it does not fit, into ``available``:
    a window too large for the screen gets SCREEN_SHARE of it (never less
    than ``minimum`` while the screen has room for that); centred when
    ``centre``."""
    w, h = want.width(), want.height()
    if w > available.width() or h > available.height():
        w = min(w, max(minimum[0], int(available.width() * SCREEN_SHARE)), available.width())
        h = min(h, max(minimum[1], int(available.height() * SCREEN_SHARE)), available.height())
    if centre:
        x = available.x() + (available.width() - w) // 2
        y = available.y() + (available.height() - h) // 2
    else:
        x = min(max(want.x(), available.x()), available.x() + available.width() - w)
        y = min(max(want.y(), available.y()), available.y() + available.height() - h)
    return QRect(x, y, w, h)


class _Placeholder(QWidget):
    """Stands in for a view that could not be built (its error is shown)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        lay = QVBoxLayout(self)
        lab = QLabel(text)
        lab.setWordWrap(True)
        lab.setAlignment(Qt.AlignmentFlag.AlignCenter)
        lay.addWidget(lab)


class MainWindow(QMainWindow):
    """Tabs for the views, File/View/Help menus, a status bar with the bundle in use."""

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setWindowTitle("Inspector Station" if ctx.station else "Inspector")
        self.setWindowIcon(app_icon())
        from app.widgets.wheel_guard import install_wheel_guard

        install_wheel_guard(QApplication.instance())  # the wheel scrolls panels, never a value it passes over
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.setCentralWidget(self.tabs)

        self.inspect_view = InspectView(ctx)
        self.history_view = HistoryView(ctx)
        # Engineer views are built on first use: they pull in torch and pyqtgraph,
        # which an operator station does not need to start.
        self._lazy: dict[str, tuple[str, str, QWidget]] = {}
        self._built: dict[str, QWidget] = {}
        self.tabs.addTab(self.inspect_view, "Inspect")
        self.tabs.addTab(self.history_view, "History")
        lazy = (("Calibrate", "app.views.calibrate", "CalibrateView"), ("Train", "app.views.train", "TrainView"),
                ("Line", "app.views.line", "LineView"))
        for title, module, cls in lazy[2:] if ctx.station else lazy:  # a station neither trains nor calibrates
            holder = QWidget()
            QVBoxLayout(holder).setContentsMargins(0, 0, 0, 0)
            self._lazy[title] = (module, cls, holder)
            self.tabs.addTab(holder, title)
        self._engineer_tabs = tuple(h for _m, _c, h in self._lazy.values())
        self.tabs.currentChanged.connect(self._on_tab_changed)

        self._build_menus()
        self._build_status()
        ctx.bundleChanged.connect(self._on_bundle_changed)
        ctx.bundleUpdated.connect(self._on_bundle_changed)
        ctx.roleChanged.connect(self._apply_role)
        self._demo_job: Any = None
        self._fitted = False
        self._apply_role(ctx.role)
        self._on_bundle_changed(ctx.bundle_path)
        self._restore_geometry()
        self._setup_screenshot()

    def engineer_view(self, title: str) -> QWidget:
        """The Calibrate or Train view, built now if it was not yet."""
        if title in self._built:
            return self._built[title]
        module, cls, holder = self._lazy[title]
        try:
            import importlib

            view: QWidget = getattr(importlib.import_module(module), cls)(self.ctx)
        except Exception as exc:  # noqa: BLE001 - a broken engineer view must not stop inspection
            view = _Placeholder(f"The {title} view is not available:\n{type(exc).__name__}: {exc}")
        holder.layout().addWidget(view)
        self._built[title] = view
        return view

    @property
    def calibrate_view(self) -> QWidget:
        return self.engineer_view("Calibrate")

    @property
    def train_view(self) -> QWidget:
        return self.engineer_view("Train")

    def _on_tab_changed(self, index: int) -> None:
        w = self.tabs.widget(index)
        for title, (_m, _c, holder) in self._lazy.items():
            if holder is w:
                self.engineer_view(title)

    # ------------------------------------------------------------------ menus
    def _build_menus(self) -> None:
        mb = self.menuBar()
        file_menu = mb.addMenu("&File")
        self.open_bundle_action = file_menu.addAction("Open model &bundle…", self.open_bundle_dialog)
        self.open_export_action = file_menu.addAction("Open &exported model…", self.open_export_dialog)
        (self.open_export_action if self.ctx.station else self.open_bundle_action).setShortcut("Ctrl+O")
        self.open_bundle_action.setVisible(not self.ctx.station)  # a station has no PyTorch to load a bundle
        self.recent_menu = file_menu.addMenu("Recent models")
        src = file_menu.addMenu("Open &source")
        from inspection_core.sources import source_kinds

        for kind in source_kinds():  # every registered kind, browsed as it declares
            src.addAction(f"{kind.label}…", lambda _=False, k=kind.name: self._open_source_dialog(k))
        src.addSeparator()
        src.addAction("Demo parts", self.start_demo)
        file_menu.addSeparator()
        quit_action = file_menu.addAction("&Quit", self.close)
        quit_action.setShortcut("Ctrl+Q")

        view_menu = mb.addMenu("&View")
        group = QActionGroup(self)
        group.setExclusive(True)
        self.operator_action = QAction("&Operator mode", self, checkable=True)
        self.engineer_action = QAction("&Engineer mode", self, checkable=True)
        for a in (self.operator_action, self.engineer_action):
            group.addAction(a)
            view_menu.addAction(a)
        self.operator_action.triggered.connect(lambda: self.request_role("operator"))
        self.engineer_action.triggered.connect(lambda: self.request_role("engineer"))
        view_menu.addSeparator()
        self.pin_action = view_menu.addAction("Set engineer &PIN…", self._set_pin_dialog)

        help_menu = mb.addMenu("&Help")
        help_menu.addAction("&About Inspector", self._about)
        self._fill_recent()

    def _build_status(self) -> None:
        self.bundle_status = QLabel("")
        self.role_status = QLabel("")
        self.statusBar().addPermanentWidget(self.bundle_status, 1)
        self.statusBar().addPermanentWidget(self.role_status)

    # ------------------------------------------------------------------ role
    def request_role(self, role: str, pin: str | None = None) -> bool:
        """Switch role; engineer mode asks for the PIN when one is set."""
        if role == "engineer" and self.ctx.settings.has_pin and not self.ctx.is_engineer:
            if pin is None:
                pin, ok = QInputDialog.getText(self, "Engineer mode", "Engineer PIN:", QLineEdit.EchoMode.Password)
                if not ok:
                    self._apply_role(self.ctx.role)
                    return False
            if not self.ctx.settings.check_pin(pin):
                QMessageBox.warning(self, "Engineer mode", "Wrong PIN.")
                self._apply_role(self.ctx.role)
                return False
        self.ctx.set_role(role)
        self._apply_role(role)
        return True

    def _apply_role(self, role: str) -> None:
        engineer = role == "engineer"
        if not engineer and self.tabs.currentWidget() in self._engineer_tabs:
            self.tabs.setCurrentWidget(self.inspect_view)
        for w in self._engineer_tabs:
            self.tabs.setTabVisible(self.tabs.indexOf(w), engineer)
        self.operator_action.setChecked(not engineer)
        self.engineer_action.setChecked(engineer)
        self.pin_action.setEnabled(engineer)
        self.role_status.setText("Engineer" if engineer else "Operator")

    def visible_tab_titles(self) -> list[str]:
        return [self.tabs.tabText(i) for i in range(self.tabs.count()) if self.tabs.isTabVisible(i)]

    def _set_pin_dialog(self) -> None:
        pin, ok = QInputDialog.getText(self, "Engineer PIN", "New PIN (empty: no PIN):", QLineEdit.EchoMode.Password)
        if not ok:
            return
        if pin:
            again, ok = QInputDialog.getText(self, "Engineer PIN", "Repeat the PIN:", QLineEdit.EchoMode.Password)
            if not ok or again != pin:
                QMessageBox.warning(self, "Engineer PIN", "The PINs differ; nothing changed.")
                return
        self.ctx.settings.set_pin(pin or None)
        self.ctx.settings.save()
        self.statusBar().showMessage("Engineer PIN " + ("set" if pin else "removed"), 4000)

    # ------------------------------------------------------------------ bundles & sources
    def _on_bundle_changed(self, _path: object = None) -> None:
        p = self.ctx.bundle_path
        if p is None:
            self.bundle_status.setText("No model — File ▸ Open exported model" if self.ctx.station
                                       else "No model bundle — File ▸ Open model bundle")
            return
        text = f"Bundle: {p.name}"
        try:
            text = f"Bundle: {describe_light(read_manifest_light(p))}   ({p})"
        except Exception as exc:  # noqa: BLE001
            text += f"  (unreadable: {exc})"
        self.bundle_status.setText(text)
        self._remember_recent(p)

    def _remember_recent(self, path: Path) -> None:
        qs = QSettings()
        items = [str(path)] + [x for x in (qs.value("recent/bundles", []) or []) if x != str(path)]
        qs.setValue("recent/bundles", items[:MAX_RECENT])
        self._fill_recent()

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        items = QSettings().value("recent/bundles", []) or []
        if isinstance(items, str):
            items = [items]
        from app.station import is_export_folder

        for p in items:
            if is_export_folder(p) or (Path(p).is_file() and not self.ctx.station):
                self.recent_menu.addAction(Path(p).name, lambda p=p: self.open_bundle(Path(p)))
        self.recent_menu.setEnabled(not self.recent_menu.isEmpty())

    def open_bundle(self, path: Path) -> bool:
        """Use the model at ``path`` (a bundle, or an exported model's folder); a
        message box says why not."""
        try:
            new = self.ctx.resolve_model(path)
            read_manifest_light(new or path)  # a damaged model is refused before the views switch to it
            self.ctx.set_bundle(new)
        except Exception as exc:  # noqa: BLE001
            QMessageBox.critical(self, "Cannot open model", str(exc))
            return False
        return True

    def open_export_dialog(self) -> None:
        """File ▸ Open exported model: a folder made by ``inspector export``."""
        start = str(self.ctx.user_models_dir())
        path = QFileDialog.getExistingDirectory(self, "Open exported model (a folder made by 'inspector export')", start)
        if path:
            self.open_bundle(Path(path))

    def open_bundle_dialog(self) -> None:
        start = str(self.ctx.user_models_dir())
        path, _ = QFileDialog.getOpenFileName(self, "Open model bundle", start, "Model bundles (*.inspector)")
        if path:
            self.open_bundle(Path(path))

    def _open_source_dialog(self, kind: str) -> None:
        from app.views.inspect_source import pick_target
        from inspection_core.sources import source_kind

        spec = pick_target(self, source_kind(kind), typed=True)
        if spec:
            self.tabs.setCurrentWidget(self.inspect_view)
            self.inspect_view.start_source(kind, spec)

    def start_source(self, spec: str) -> bool:
        """Inspect ``spec`` (``--source``, the settings' default source): the
        core's one parser decides what it is; a spec it refuses is shown."""
        from inspection_core.sources import SourceError, parse_source

        try:
            parsed = parse_source(spec)
        except SourceError as exc:
            self.inspect_view._show_state("error", str(exc))
            return False
        return self.inspect_view.start_source(parsed.kind, parsed.target)

    # ------------------------------------------------------------------ demo
    def start_demo(self) -> None:
        """Run the demo: reuse the cached demo bundle, or build it first with a
        progress bar; a station runs its exported demo model (never trains)."""
        from app.demo import _bundle_ok, demo_bundle_path, demo_line_path, ensure_demo_bundle
        from app.station import demo_export_path, ensure_station_demo

        s = self.ctx.settings
        ready = demo_export_path(s) if self.ctx.station else demo_bundle_path(s) if _bundle_ok(demo_bundle_path(s)) else None
        if ready is not None and demo_line_path(s).is_dir():
            self.ctx.set_bundle(ready)
            self.inspect_view.start_demo()
            return
        prepare = ensure_station_demo if self.ctx.station else ensure_demo_bundle
        if self._demo_job is not None:
            return
        iv = self.inspect_view
        iv.banner.set_idle("SETTING UP", "preparing the demo (first start only)")
        iv.show_busy("Preparing the demo: creating the demo images "
                     "(a small model is trained only if the shipped one is missing)…", None,
                     on_cancel=lambda: self._demo_job and self._demo_job.cancel())

        def on_progress(e: Any) -> None:
            if e.kind in ("step", "epoch") and e.epochs:
                eta = f" — about {e.eta_s:.0f} s left" if e.eta_s else ""
                iv.show_busy(f"Training the demo model: epoch {e.epoch}/{e.epochs}{eta}", e.fraction,
                             on_cancel=lambda: self._demo_job and self._demo_job.cancel())
            elif e.kind == "message" and e.message:
                iv.busy_panel.label.setText(e.message)

        def done(path: Any) -> None:
            self._demo_job = None
            iv.hide_busy()
            self.ctx.set_bundle(Path(path))
            iv.refresh_bundles()
            iv.start_demo()

        def failed(msg: str) -> None:
            self._demo_job = None
            iv.hide_busy()
            iv._show_state("error", f"The demo could not be prepared: {msg}")
            iv.banner.set_idle("NO MODEL", "open a bundle or train one")

        def cancelled() -> None:
            self._demo_job = None
            iv.hide_busy()
            iv.banner.set_idle("NO MODEL", "demo preparation cancelled")

        self._demo_job = self.ctx.start_job(
            lambda progress, cancel: prepare(progress, cancel, settings=s),
            on_progress=on_progress, on_done=done, on_error=failed, on_cancelled=cancelled, name="demo",
        )  # fmt: skip

    # ------------------------------------------------------------------ misc
    def about_text(self) -> str:
        """The About box: the version, every detector family (the recipes'
        list, read without torch), where settings and history live."""
        from inspection_core import __version__
        from app.views.train_form import family_names

        return (f"<h3>Inspector {__version__}</h3><p>Visual quality inspection of manufactured parts with "
                f"{family_names()} detectors.</p>"
                f"<p>Settings: {self.ctx.settings.path}<br>History: {self.ctx.settings.history_db_path()}</p>")

    def _about(self) -> None:
        QMessageBox.about(self, "About Inspector", self.about_text())

    def _restore_geometry(self) -> None:
        qs = QSettings()
        geo = qs.value("window/geometry")
        if geo is not None:
            self.restoreGeometry(geo)
        else:
            self.resize(*DEFAULT_SIZE)
        self.fit_to_screen(centre=geo is None)
        tab = qs.value("window/tab")
        if tab is not None:
            for i in range(self.tabs.count()):
                if self.tabs.tabText(i) == tab and self.tabs.isTabVisible(i):
                    self.tabs.setCurrentIndex(i)

    def fit_to_screen(self, centre: bool = False) -> None:
        """Keep the window, its status bar and its right-hand panels on the
        screen it opens on (its available area: no taskbar on top of it);
        a geometry saved on a larger monitor is shrunk to fit."""
        screen = self.screen() or QGuiApplication.primaryScreen()
        if screen is None or self.isMaximized() or self.isFullScreen():
            return
        hint = self.minimumSizeHint()
        frame = self.frameGeometry()
        extra_w, extra_h = frame.width() - self.width(), frame.height() - self.height()
        want = QRect(frame.x(), frame.y(), self.width() + extra_w, self.height() + extra_h)
        r = fit_to_screen(want, screen.availableGeometry(), (hint.width() + extra_w, hint.height() + extra_h), centre)
        self.resize(r.width() - extra_w, r.height() - extra_h)
        self.move(r.topLeft())

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if not self._fitted:  # the frame's decorations are known once shown: fit again with them
            self._fitted = True
            QTimer.singleShot(0, self.fit_to_screen)

    def _save_geometry(self) -> None:
        qs = QSettings()
        qs.setValue("window/geometry", self.saveGeometry())
        qs.setValue("window/tab", self.tabs.tabText(self.tabs.currentIndex()))
        qs.sync()

    def _setup_screenshot(self) -> None:
        """INSPECTOR_SCREENSHOT=path.png: grab the window after INSPECTOR_SCREENSHOT_DELAY ms
        (default 8000), on tab INSPECTOR_SCREENSHOT_TAB; quit after it when INSPECTOR_SCREENSHOT_QUIT=1."""
        target = os.environ.get("INSPECTOR_SCREENSHOT")
        if not target:
            return
        delay = int(os.environ.get("INSPECTOR_SCREENSHOT_DELAY", "8000"))
        tab = os.environ.get("INSPECTOR_SCREENSHOT_TAB")

        def select_tab() -> None:
            for i in range(self.tabs.count()):
                if tab and self.tabs.tabText(i).lower() == tab.lower():
                    self.tabs.setCurrentIndex(i)

        def grab() -> None:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            self.grab().save(target)
            if os.environ.get("INSPECTOR_SCREENSHOT_QUIT") == "1":
                self.close()

        if tab:
            QTimer.singleShot(max(0, delay - 1500), select_tab)
        QTimer.singleShot(delay, grab)

    # ------------------------------------------------------------------ closing
    #: jobs whose loss a user would mind; short background reads are not asked about
    CONFIRM_JOBS = ("training", "calibration-scoring", "calibration-save")

    def busy_jobs(self) -> list[Any]:
        return [h for h in self.ctx.running_jobs() if h.name in self.CONFIRM_JOBS]

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        jobs = self.busy_jobs()
        if jobs and os.environ.get("INSPECTOR_NO_CONFIRM") != "1":
            names = ", ".join(sorted({h.name for h in jobs}))
            answer = QMessageBox.question(
                self, "Quit Inspector", f"A job is running ({names}). Stop it and quit?",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No,
            )  # fmt: skip
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
        self._save_geometry()
        self.inspect_view.shutdown()
        for view in (*self._built.values(), self.history_view):
            stop = getattr(view, "shutdown", None)
            if callable(stop):
                try:
                    stop()
                except Exception:  # noqa: BLE001 - closing must go on
                    pass
        self.ctx.shutdown(10000)
        event.accept()
