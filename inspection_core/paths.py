"""Where Inspector keeps its files on this machine: the one resolver.

Two folders, each overridable by an environment variable (tests, kiosks,
the frozen self-test):

=========  ======================  ==========================================  ===========================
folder     variable                Windows                                     Linux (XDG)
=========  ======================  ==========================================  ===========================
config     ``INSPECTOR_CONFIG_DIR``  ``%APPDATA%\\Inspector`` (roams)            ``$XDG_CONFIG_HOME/inspector``
data       ``INSPECTOR_DATA_DIR``    ``%LOCALAPPDATA%\\Inspector`` (this PC)     ``$XDG_DATA_HOME/inspector``
=========  ======================  ==========================================  ===========================

macOS keeps both in ``~/Library/Application Support/Inspector``. An XDG
variable that is empty or relative is ignored, as the XDG spec says. The
config folder holds ``settings.json`` and QSettings; the data folder the
inspection history, kept images, demo data and the user's models. The desktop
app, the CLI's history and scripts all ask here, so they never disagree.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

APP_DIR_NAME = "Inspector"
#: the history database's file name inside the data folder
HISTORY_FILENAME = "history.sqlite3"
#: folder of kept FAIL/REVIEW images, beside the database
KEPT_IMAGES_DIRNAME = "images"


def platform_dir(kind: str, platform: str | None = None, env: Mapping[str, str] | None = None,
                 home: Path | None = None) -> Path:
    """The per-user folder for ``kind`` ("config" or "data") by the platform's
    habits (see the module docstring); the arguments default to this machine."""
    if kind not in ("config", "data"):
        raise ValueError(f"kind must be 'config' or 'data', got {kind!r}")
    platform = sys.platform if platform is None else platform
    env = os.environ if env is None else env
    home = Path.home() if home is None else home
    fallback: tuple[str, ...]
    if platform.startswith("win"):
        var, fallback = ("APPDATA", ("AppData", "Roaming")) if kind == "config" else ("LOCALAPPDATA", ("AppData", "Local"))
        return Path(env.get(var) or home.joinpath(*fallback)) / APP_DIR_NAME
    if platform == "darwin":
        return home / "Library" / "Application Support" / APP_DIR_NAME
    var, fallback = ("XDG_CONFIG_HOME", (".config",)) if kind == "config" else ("XDG_DATA_HOME", (".local", "share"))
    xdg = env.get(var) or ""
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else home.joinpath(*fallback)
    return base / APP_DIR_NAME.lower()


def _overridden(var: str, kind: str) -> Path:
    value = os.environ.get(var)
    return Path(value).expanduser() if value else platform_dir(kind)


def config_dir() -> Path:
    """Where ``settings.json`` and QSettings live (``INSPECTOR_CONFIG_DIR`` overrides)."""
    return _overridden("INSPECTOR_CONFIG_DIR", "config")


def data_dir() -> Path:
    """Where the history, kept images, demo data and user models live by
    default (``INSPECTOR_DATA_DIR`` overrides)."""
    return _overridden("INSPECTOR_DATA_DIR", "data")


__all__ = ["APP_DIR_NAME", "HISTORY_FILENAME", "KEPT_IMAGES_DIRNAME", "config_dir", "data_dir", "platform_dir"]
