"""PySide6.QtGui, with only the Qt plugins Inspector loads (lean build).

PyInstaller's own hook collects every plugin of the types QtGui uses; some
pull in large libraries through binary dependency analysis (the virtual
keyboard plugin brings QtQuick and QtQml, the GTK3 theme brings GTK, the
Wayland and EGL platforms their client libraries). Dropping them here, before
the analysis, keeps their dependencies out too. ``INSPECTOR_LEAN=0`` keeps all.
"""

import os

from PyInstaller.utils.hooks.qt import add_qt6_dependencies

hiddenimports, binaries, datas = add_qt6_dependencies(__file__)

# plugin type -> file stems kept (None: the whole type is dropped)
KEEP = {
    "platforms": {"qxcb", "qoffscreen", "qminimal", "qwindows", "qdirect2d", "qcocoa"},
    "imageformats": {"qjpeg", "qgif", "qico", "qsvg", "qtiff", "qwebp"},
    "iconengines": {"qsvgicon"},
    "platforminputcontexts": {"composeplatforminputcontextplugin", "ibusplatforminputcontextplugin"},
    "platformthemes": {"qxdgdesktopportal", "qwindowsvistastyle"},
    "xcbglintegrations": {"qxcb-glx-integration", "qxcb-egl-integration"},
    "egldeviceintegrations": None,
    "generic": None,
    "wayland-decoration-client": None,
    "wayland-graphics-integration-client": None,
    "wayland-shell-integration": None,
}


def _keep(src: str, dst: str) -> bool:
    parts = dst.replace("\\", "/").split("/")
    if "plugins" not in parts or parts.index("plugins") + 1 >= len(parts):
        return True
    kind = parts[parts.index("plugins") + 1]
    if kind not in KEEP:
        return True
    stem = os.path.basename(src).split(".")[0]
    stem = stem[3:] if stem.startswith("lib") else stem
    allowed = KEEP[kind]
    return allowed is not None and stem in allowed


if os.environ.get("INSPECTOR_LEAN", "1") != "0":
    binaries = [(src, dst) for src, dst in binaries if _keep(src, dst)]
