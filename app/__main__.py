"""Entry point: ``inspector-app`` / ``python -m app`` (also PyInstaller's script).

torch is imported only when a model is loaded (on a worker thread), so the
window appears fast. ``QT_QPA_PLATFORM`` is respected as Qt reads it. What
both this entry point and ``--self-test`` need (QSettings, the style sheet)
is in :mod:`app.startup`, so neither imports the other at module level.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.startup import configure_qsettings, load_style  # noqa: F401 - also this module's API (benchmarks, tests)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="inspector-app", description="Inspector: visual quality inspection desktop app")
    p.add_argument("--demo", action="store_true", help="run the built-in demo (the default when no bundle is configured)")
    p.add_argument("--bundle", type=Path, help="model to use: a bundle (.inspector) or an exported model's folder")
    p.add_argument("--source", help="folder, watch:FOLDER, video file, camera index or stream URL to inspect")
    role = p.add_mutually_exclusive_group()
    role.add_argument("--operator", dest="role", action="store_const", const="operator", help="start in operator mode")
    role.add_argument("--engineer", dest="role", action="store_const", const="engineer", help="start in engineer mode")
    p.add_argument("--station", action="store_true",
                   help="run as an operator station: exported models only, no Train, Calibrate or Teach (the "
                        "default where PyTorch is not installed)")
    p.add_argument("--self-test", action="store_true",
                   help="check this installation end to end offscreen (window, views, demo model, scoring) and exit")
    p.add_argument("--check-system", action="store_true",
                   help="check that the system libraries Qt's platform plugin needs are installed (the packages to "
                        "install when not) and exit; every start runs this check first")
    return p


def _system_check_failed() -> str | None:
    """The message naming the missing system libraries and their packages, or
    None when the platform plugin Qt will use can load (:mod:`app.syscheck`)."""
    from app.syscheck import startup_check

    check = startup_check()
    return None if check.ok else check.message()


def _source_error(spec: str | None) -> str | None:
    """Why ``--source`` names no source (a missing folder is never a camera), or None."""
    if not spec:
        return None
    from inspection_core.sources import SourceError, parse_source

    try:
        parse_source(spec)
    except SourceError as exc:
        return f"inspector-app: --source: {exc}"
    return None


def main(argv: list[str] | None = None) -> int:
    import multiprocessing

    multiprocessing.freeze_support()  # a frozen program's spawn children start here
    from inspection_core import thread_policy

    thread_policy.configure()  # before torch is imported: scoring threads sleep when they wait (a busy station)
    args = build_parser().parse_args(argv)
    if args.check_system:
        from app.syscheck import startup_check

        check = startup_check()
        print(check.message(), file=sys.stdout if check.ok else sys.stderr)
        return 0 if check.ok else 2
    if args.self_test:
        from app.selftest import run_self_test

        return run_self_test(station=args.station or None)
    problem = _source_error(args.source) or _system_check_failed()
    if problem:
        print(problem, file=sys.stderr)
        return 2

    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    from app import gc_guard

    gc_guard.install(app)  # cycles are freed on the GUI thread, never in a worker
    configure_qsettings()
    app.setStyle("Fusion")
    app.setStyleSheet(load_style())

    from app.context import AppContext
    from app.main_window import MainWindow, app_icon
    from app.settings import StationSettings

    app.setWindowIcon(app_icon())
    try:
        settings = StationSettings.load()
    except ValueError as exc:
        print(f"inspector-app: {exc}", file=sys.stderr)
        return 2
    ctx = AppContext(settings, role=args.role, station=args.station or None)  # None: a station where torch is absent
    win = MainWindow(ctx)
    win.show()

    bundle = args.bundle or (Path(settings.default_bundle) if settings.default_bundle else None)
    source = args.source or settings.default_source or None
    if bundle is not None and not win.open_bundle(bundle):
        bundle = None
    if args.demo or bundle is None:
        win.start_demo()
    elif source:
        win.start_source(source)
    rc = int(app.exec())
    _wait_for_lingering_threads()
    return rc


def _wait_for_lingering_threads(timeout_ms: int = 15000) -> None:
    """A worker stuck in a slow call (a camera driver, a first torch import)
    is waited for here, so no QThread is destroyed while it runs."""
    from app.workers import _LINGERING

    for w in list(_LINGERING):
        w.stop(timeout_ms)


if __name__ == "__main__":
    raise SystemExit(main())
