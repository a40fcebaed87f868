"""Which system libraries Qt's platform plugin lacks, found before any window.

A stock Debian or Ubuntu desktop lacks a few of the libraries that Qt's
``xcb`` plugin (the X11 one) needs (``libxcb-cursor0``, ``libxcb-icccm4``,
``libxcb-keysyms1``); Qt then stops with a message about the plugin that names
none of them. ``inspector-app`` runs :func:`check_platform` first and, when
something is missing, prints one message with the packages to install
(Debian/Ubuntu names and the Fedora ones) and exits with status 2.
``inspector-app --check-system`` runs the check alone (CI does, see
``.ci/run``).

The dynamic loader decides: the plugin is loaded with ``ctypes`` as Qt will
load it, and when that fails ``ldd`` names every missing library (the
loader's error names only the first; it is used alone where there is no
``ldd``). This module imports only
QtCore (which needs no platform plugin), and that only to find the plugin.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

#: soname -> (Debian/Ubuntu package, Fedora/RHEL package), for what Qt's xcb
#: and wayland plugins link against
PACKAGES: dict[str, tuple[str, str]] = {
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb"),
    "libxcb-shm.so.0": ("libxcb-shm0", "libxcb"),
    "libxcb-sync.so.1": ("libxcb-sync1", "libxcb"),
    "libxcb-xfixes.so.0": ("libxcb-xfixes0", "libxcb"),
    "libxcb-render.so.0": ("libxcb-render0", "libxcb"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb"),
    "libxcb-xinerama.so.0": ("libxcb-xinerama0", "libxcb"),
    "libxcb-xinput.so.0": ("libxcb-xinput0", "libxcb"),
    "libxcb-glx.so.0": ("libxcb-glx0", "libxcb"),
    "libxcb.so.1": ("libxcb1", "libxcb"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb"),
    "libX11.so.6": ("libx11-6", "libX11"),
    "libXau.so.6": ("libxau6", "libXau"),
    "libXdmcp.so.6": ("libxdmcp6", "libXdmcp"),
    "libSM.so.6": ("libsm6", "libSM"),
    "libICE.so.6": ("libice6", "libICE"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon"),
    "libGL.so.1": ("libgl1", "libglvnd-glx"),
    "libGLX.so.0": ("libglx0", "libglvnd-glx"),
    "libOpenGL.so.0": ("libopengl0", "libglvnd-opengl"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl"),
    "libGLdispatch.so.0": ("libglvnd0", "libglvnd"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig"),
    "libfreetype.so.6": ("libfreetype6", "freetype"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs"),
    "libglib-2.0.so.0": ("libglib2.0-0", "glib2"),
    "libgthread-2.0.so.0": ("libglib2.0-0", "glib2"),
    "libwayland-client.so.0": ("libwayland-client0", "libwayland-client"),
    "libwayland-cursor.so.0": ("libwayland-cursor0", "libwayland-cursor"),
    "libwayland-egl.so.1": ("libwayland-egl1", "libwayland-egl"),
}

#: plugins whose libraries this check knows; others (offscreen, minimal, vnc,
#: windows, cocoa) need nothing a stock system lacks
CHECKED_PLATFORMS = {"xcb": "libqxcb.so", "wayland": "libqwayland.so"}
_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found", re.MULTILINE)
_DLOPEN_ERROR = re.compile(r"(\S+\.so[\w.]*): cannot open shared object file")


@dataclass(frozen=True)
class SystemCheck:
    """What the check found: the platform, its plugin, the missing sonames."""

    platform: str
    plugin: Path | None = None
    missing: tuple[str, ...] = ()
    note: str = ""                      # why nothing was checked, when nothing was
    packages: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.missing

    def message(self) -> str:
        """One message for a person: what is missing and the commands that install it."""
        if self.ok:
            what = f"Qt's '{self.platform}' platform plugin has every library it needs" if self.plugin else self.note
            return f"inspector-app: system check passed: {what}."
        debian, fedora, unknown = [], [], []
        for name in self.missing:
            deb, fed = self.packages.get(name, PACKAGES.get(name, ("", "")))
            if not deb:
                unknown.append(name)
                continue
            if deb not in debian:
                debian.append(deb)
            if fed not in fedora:
                fedora.append(fed)
        n = len(self.missing)
        lines = [f"inspector-app: Qt's '{self.platform}' platform plugin cannot start: "
                 f"{n} system librar{'y is' if n == 1 else 'ies are'} missing ({', '.join(self.missing)}).",
                 "Install, then start again:"]
        if debian:
            lines.append(f"  Debian/Ubuntu:  sudo apt-get install {' '.join(debian)}")
            lines.append(f"  Fedora/RHEL:    sudo dnf install {' '.join(fedora)}")
        for name in unknown:
            lines.append(f"  {name}: find its package with `apt-file search {name}` or `dnf provides '*/{name}'`")
        lines.append("(Without a screen, QT_QPA_PLATFORM=offscreen inspector-app --self-test checks the rest.)")
        return "\n".join(lines)


def platform_name(env: Mapping[str, str] | None = None) -> str:
    """The platform plugin Qt will try first: ``QT_QPA_PLATFORM``'s first entry,
    else ``wayland`` in a Wayland session, else ``xcb`` (Linux); "" elsewhere."""
    env = os.environ if env is None else env
    first = env.get("QT_QPA_PLATFORM", "").split(";")[0].split(":")[0].strip()
    if first:
        return first
    if not sys.platform.startswith("linux"):
        return ""
    if env.get("WAYLAND_DISPLAY") and env.get("XDG_SESSION_TYPE", "").lower() == "wayland":
        return "wayland"
    return "xcb"


def plugin_path(platform: str) -> Path | None:
    """The platform plugin's file in this Qt (a checkout's venv or a frozen build)."""
    name = CHECKED_PLATFORMS.get(platform)
    if name is None:
        return None
    dirs = [Path(d) / "platforms" for d in os.environ.get("QT_PLUGIN_PATH", "").split(os.pathsep) if d]
    if os.environ.get("QT_QPA_PLATFORM_PLUGIN_PATH"):
        dirs.insert(0, Path(os.environ["QT_QPA_PLATFORM_PLUGIN_PATH"]))
    from PySide6.QtCore import QLibraryInfo

    dirs.append(Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)) / "platforms")
    for d in dirs:
        if (d / name).is_file():
            return d / name
    return None


def parse_ldd(output: str) -> tuple[str, ...]:
    """The sonames ``ldd`` reports as "not found", each once, in order."""
    return tuple(dict.fromkeys(_NOT_FOUND.findall(output)))


def _ldd(path: Path) -> str:
    res = subprocess.run(["ldd", str(path)], capture_output=True, text=True, timeout=30)
    return res.stdout + res.stderr


def missing_libraries(plugin: Path, ldd: Callable[[Path], str] | None = None) -> tuple[str, ...]:
    """The shared libraries ``plugin`` needs that the loader cannot find.

    The loader itself decides (the plugin is loaded with ``ctypes``, as Qt
    will load it: nothing is missing when that works, also in a frozen build
    whose bundled libraries ldd might not see); ``ldd`` then names every
    missing library, where the loader's error names only the first. ``ldd``
    given: its output alone decides (tests)."""
    first = ""
    if ldd is None:
        import ctypes

        try:
            ctypes.CDLL(str(plugin))
            return ()
        except OSError as exc:
            m = _DLOPEN_ERROR.search(str(exc))
            first = m.group(1) if m else str(exc)
        if shutil.which("ldd") is None:
            return (first,)
    names = parse_ldd((ldd or _ldd)(plugin))
    return names or ((first,) if first else ())


def check_platform(platform: str | None = None, ldd: Callable[[Path], str] | None = None) -> SystemCheck:
    """Check the libraries of the platform plugin Qt will use (see :func:`platform_name`)."""
    platform = platform_name() if platform is None else platform
    if not sys.platform.startswith("linux"):
        return SystemCheck(platform or "native", note="nothing to check on this operating system")
    if platform not in CHECKED_PLATFORMS:
        return SystemCheck(platform, note=f"the '{platform}' platform needs no system libraries beyond Qt's own")
    plugin = plugin_path(platform)
    if plugin is None:
        return SystemCheck(platform, note=f"Qt's '{platform}' plugin is not in this installation; Qt will say so")
    return SystemCheck(platform, plugin, missing_libraries(plugin, ldd))


def startup_check(env: Mapping[str, str] | None = None, ldd: Callable[[Path], str] | None = None) -> SystemCheck:
    """The check every start runs. In a Wayland session with no
    ``QT_QPA_PLATFORM``, Qt falls back to X11 (XWayland) when its wayland
    plugin cannot load: only both failing stops the start (the wayland result
    is the one reported)."""
    env = os.environ if env is None else env
    platform = platform_name(env)
    check = check_platform(platform, ldd)
    if not check.ok and platform == "wayland" and not env.get("QT_QPA_PLATFORM"):
        fallback = check_platform("xcb", ldd)
        if fallback.ok:
            return fallback
    return check


__all__ = ["CHECKED_PLATFORMS", "PACKAGES", "SystemCheck", "check_platform", "missing_libraries", "parse_ldd",
           "platform_name", "plugin_path", "startup_check"]
