"""What every way of starting the application needs before the first window:
QSettings as a readable INI file in the config folder, and the style sheet.

Shared by the entry point (``app.__main__``), the self-test
(``app.selftest``) and the benchmarks, so that none of them imports another.
"""

from __future__ import annotations


def configure_qsettings() -> None:
    """QSettings as an INI file in the config folder (readable; tests isolate it)."""
    from PySide6.QtCore import QCoreApplication, QSettings

    from inspection_core.paths import config_dir

    QCoreApplication.setOrganizationName("Inspector")
    QCoreApplication.setApplicationName("Inspector")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(config_dir()))


def load_style() -> str:
    """The application's style sheet (empty when the resource is missing)."""
    from importlib.resources import files

    try:
        return (files("resources") / "style.qss").read_text(encoding="utf-8")
    except (FileNotFoundError, ModuleNotFoundError):
        return ""
