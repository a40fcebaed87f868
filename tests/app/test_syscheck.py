"""The start-up check names the system packages Qt's platform plugin lacks
(issue 14: a stock Debian machine lacks libxcb-cursor0, libxcb-icccm4 and
libxcb-keysyms1, and Qt's own message names none of them)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app import syscheck

LDD_OUTPUT = """\
\tlinux-vdso.so.1 (0x00007fd7da122000)
\tlibQt6XcbQpa.so.6 => /venv/PySide6/Qt/lib/libQt6XcbQpa.so.6 (0x00007fd7d9fc4000)
\tlibxcb-cursor.so.0 => not found
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
\tlibxcb-util.so.1 => /lib/x86_64-linux-gnu/libxcb-util.so.1 (0x00007fd7d9f62000)
\tlibxcb-icccm.so.4 => not found
"""


def test_ldd_output_gives_each_missing_library_once() -> None:
    assert syscheck.parse_ldd(LDD_OUTPUT) == ("libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb-keysyms.so.1")
    assert syscheck.parse_ldd(LDD_OUTPUT.replace("not found", "/lib/x.so (0x1)")) == ()


def test_one_message_names_the_debian_and_fedora_packages() -> None:
    check = syscheck.SystemCheck("xcb", Path("libqxcb.so"), syscheck.parse_ldd(LDD_OUTPUT) + ("libodd.so.3",))
    msg = check.message()
    assert not check.ok
    assert "sudo apt-get install libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1" in msg
    assert "sudo dnf install xcb-util-cursor xcb-util-wm xcb-util-keysyms" in msg
    assert "libodd.so.3" in msg and "apt-file search libodd.so.3" in msg  # an unknown library: how to find it
    assert "4 system libraries are missing" in msg


@pytest.mark.parametrize("env, expected", [
    ({"QT_QPA_PLATFORM": "offscreen"}, "offscreen"),
    ({"QT_QPA_PLATFORM": "wayland;xcb"}, "wayland"),
    ({"QT_QPA_PLATFORM": "xcb:nograb"}, "xcb"),
    ({"WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "wayland"}, "wayland"),
    ({"DISPLAY": ":0"}, "xcb"),
])
def test_the_platform_qt_will_use(env: dict, expected: str) -> None:
    if not sys.platform.startswith("linux") and "QT_QPA_PLATFORM" not in env:
        pytest.skip("the default platform is Linux's")
    assert syscheck.platform_name(env) == expected


def test_offscreen_and_the_real_plugin_are_checked_without_error() -> None:
    assert syscheck.check_platform("offscreen").ok
    if sys.platform.startswith("linux"):
        real = syscheck.check_platform("xcb")  # this machine's truth: the names are sonames, never an error text
        assert real.plugin is not None and real.plugin.name == "libqxcb.so"
        assert all(name.startswith("lib") and ".so" in name for name in real.missing)


def test_a_wayland_session_falls_back_to_x11_like_qt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(syscheck, "plugin_path", lambda platform: Path(f"libq{platform}.so"))
    fake = {"libqwayland.so": "\tlibwayland-cursor.so.0 => not found\n", "libqxcb.so": ""}
    env = {"WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "wayland"}
    assert syscheck.startup_check(env, ldd=lambda p: fake[p.name]).ok
    fake["libqxcb.so"] = LDD_OUTPUT
    check = syscheck.startup_check(env, ldd=lambda p: fake[p.name])
    assert not check.ok and check.platform == "wayland" and "libwayland-cursor0" in check.message()


@pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("cc") is None, reason="needs Linux and cc")
def test_a_library_really_missing_is_found_by_ldd_and_by_loading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real plugin-like ELF whose dependency was deleted, as on a machine that lacks a package."""
    (tmp_path / "dep.c").write_text("int dep(void) { return 1; }\n")
    (tmp_path / "plugin.c").write_text("int dep(void);\nint plugin(void) { return dep(); }\n")
    cc = ["cc", "-shared", "-fPIC"]
    subprocess.run([*cc, "-Wl,-soname,libinspector-gone.so.1", "-o", str(tmp_path / "libinspector-gone.so.1"),
                    str(tmp_path / "dep.c")], check=True)
    subprocess.run([*cc, "-o", str(tmp_path / "libqxcb.so"), str(tmp_path / "plugin.c"), str(tmp_path / "libinspector-gone.so.1")],
                   check=True)
    (tmp_path / "libinspector-gone.so.1").unlink()
    plugin = tmp_path / "libqxcb.so"
    assert syscheck.missing_libraries(plugin) == ("libinspector-gone.so.1",)
    monkeypatch.setattr(syscheck.shutil, "which", lambda _name: None)  # no ldd: the loader's error names it
    assert syscheck.missing_libraries(plugin) == ("libinspector-gone.so.1",)
    monkeypatch.undo()
    subprocess.run([*cc, "-Wl,-soname,libinspector-gone.so.1", "-o", str(tmp_path / "libinspector-gone.so.1"),
                    str(tmp_path / "dep.c")], check=True)
    # found beside the plugin only through LD_LIBRARY_PATH: ldd and the loader agree it is there
    monkeypatch.setenv("LD_LIBRARY_PATH", str(tmp_path))
    assert syscheck.missing_libraries(plugin, ldd=syscheck._ldd) == ()


def _fail_xcb(monkeypatch: pytest.MonkeyPatch, output: str = LDD_OUTPUT) -> None:
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.setattr(syscheck, "plugin_path", lambda platform: Path("libqxcb.so"))
    monkeypatch.setattr(syscheck, "missing_libraries", lambda _plugin, _ldd=None: syscheck.parse_ldd(output))


def test_check_system_exits_2_with_the_packages(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from app.__main__ import main

    _fail_xcb(monkeypatch)
    assert main(["--check-system"]) == 2
    err = capsys.readouterr().err
    assert "libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1" in err and err.count("cannot start") == 1
    _fail_xcb(monkeypatch, output="")
    assert main(["--check-system"]) == 0
    assert "system check passed" in capsys.readouterr().out


def test_a_start_stops_before_qt_with_the_message(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """The start itself runs the check: the packages, not Qt's abort."""
    from app import __main__ as entry

    _fail_xcb(monkeypatch)
    monkeypatch.setattr(entry, "configure_qsettings", lambda: pytest.fail("got past the system check"))
    assert entry.main(["--demo"]) == 2
    assert "sudo apt-get install libxcb-cursor0" in capsys.readouterr().err


def test_a_missing_source_folder_is_an_error_at_start(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    """``--source /no/such/folder`` is refused with the reason, never taken for a camera."""
    from app.__main__ import main

    assert main(["--source", str(tmp_path / "no" / "such")]) == 2
    err = capsys.readouterr().err
    assert "no such file or folder" in err and "camera" in err
