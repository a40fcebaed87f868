"""PySide6.QtNetwork without its plugins (lean build).

Every PySide6 extension links libQt6Network, so QtNetwork is always
collected, but Inspector never uses Qt networking (camera streams go through
OpenCV): its TLS and network-information plugins stay out. ``INSPECTOR_LEAN=0``
keeps them.
"""

import os

from PyInstaller.utils.hooks.qt import add_qt6_dependencies

hiddenimports, binaries, datas = add_qt6_dependencies(__file__)

if os.environ.get("INSPECTOR_LEAN", "1") != "0":
    binaries = [(src, dst) for src, dst in binaries
                if not any(f"plugins/{kind}" in dst.replace("\\", "/") for kind in ("tls", "networkinformation"))]
