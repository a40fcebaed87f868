"""One resolver for the config and data folders (the app's settings and the
history disagreed on Windows before; tests/app/test_main_window.py checks
that both now ask it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from inspection_core.paths import platform_dir

HOME = Path("/home/op")


@pytest.mark.parametrize("platform, env, kind, expected", [
    ("win32", {"APPDATA": "C:/Users/op/AppData/Roaming", "LOCALAPPDATA": "C:/Users/op/AppData/Local"}, "config",
     Path("C:/Users/op/AppData/Roaming/Inspector")),
    ("win32", {"APPDATA": "C:/Users/op/AppData/Roaming", "LOCALAPPDATA": "C:/Users/op/AppData/Local"}, "data",
     Path("C:/Users/op/AppData/Local/Inspector")),
    ("win32", {}, "data", HOME / "AppData" / "Local" / "Inspector"),  # never the roaming folder for data
    ("darwin", {}, "data", HOME / "Library" / "Application Support" / "Inspector"),
    ("linux", {"XDG_DATA_HOME": "/xdg/data"}, "data", Path("/xdg/data/inspector")),
    ("linux", {"XDG_DATA_HOME": "relative/ignored"}, "data", HOME / ".local" / "share" / "inspector"),
    ("linux", {"XDG_CONFIG_HOME": ""}, "config", HOME / ".config" / "inspector"),
])
def test_platform_folders(platform: str, env: dict, kind: str, expected: Path) -> None:
    assert platform_dir(kind, platform=platform, env=env, home=HOME) == expected
