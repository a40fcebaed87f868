"""The frozen application works: its self-test passes, and on a virtual X
screen (Xvfb) its main window appears. The same for the operator station
(``build.py --target station``), which must also hold no PyTorch and stay
within its size.

These tests build nothing: they run what ``python packaging/build.py`` left in
``packaging/dist/inspector-app`` (or ``INSPECTOR_FROZEN_DIR``) and
``packaging/dist/inspector-station`` (or ``INSPECTOR_FROZEN_STATION_DIR``),
and skip with the reason when there is no build. ``INSPECTOR_SELFTEST_DATA_DIR`` points the
runs at a shared data folder, so the demo bundle is trained only once per CI
run; without it each test uses a fresh folder (the first start, training
included).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
FROZEN_DIR = Path(os.environ.get("INSPECTOR_FROZEN_DIR", ROOT / "packaging" / "dist" / "inspector-app"))
STATION_DIR = Path(os.environ.get("INSPECTOR_FROZEN_STATION_DIR", ROOT / "packaging" / "dist" / "inspector-station"))
#: each target: its folder, its program, its window's title, how it is built
TARGETS = {
    "app": (FROZEN_DIR, "inspector-app", "Inspector", "python packaging/build.py"),
    "station": (STATION_DIR, "inspector-station", "Inspector Station", "python packaging/build.py --target station"),
}
SELFTEST_TIMEOUT_S = 900
WINDOW_TIMEOUT_S = 120
#: the station's unpacked size limit (issue 31)
STATION_MAX_MB = 500


def frozen_exe(target: str = "app") -> Path:
    """The frozen program (the console twin on Windows, whose stdout we can read)."""
    folder, name, _title, how = TARGETS[target]
    exe = folder / (f"{name}-console.exe" if sys.platform.startswith("win") else name)
    if not exe.is_file():
        pytest.skip(f"no frozen build at {exe}: run `{how}` first")
    return exe


def app_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Environment for one run: own config folder; the shared demo cache when given."""
    data = os.environ.get("INSPECTOR_SELFTEST_DATA_DIR") or str(tmp_path / "data")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INSPECTOR_SCREENSHOT", "QT_QPA_"))}
    env.update(INSPECTOR_CONFIG_DIR=str(tmp_path / "config"), INSPECTOR_DATA_DIR=data, **extra)
    return env


@pytest.mark.parametrize("target", ["app", "station"])
def test_frozen_self_test_passes(target: str, tmp_path: Path) -> None:
    exe = frozen_exe(target)
    t0 = time.monotonic()
    proc = subprocess.run([str(exe), "--self-test"], env=app_env(tmp_path, QT_QPA_PLATFORM="offscreen"),
                          capture_output=True, text=True, timeout=SELFTEST_TIMEOUT_S)
    out = proc.stdout.strip().splitlines()
    summary = out[-1] if out else ""
    print(f"\n{summary}\n(frozen self-test took {time.monotonic() - t0:.1f} s)")
    assert proc.returncode == 0, f"exit code {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    assert summary.startswith("self-test OK:"), summary
    assert f"(frozen{' station' if target == 'station' else ''}," in summary, f"not the frozen {target}: {summary}"
    assert "recorded" in summary and "scored" in summary, summary
    if target == "station":  # the exported demo model, scored by ONNX Runtime, with the verdicts recorded at training
        assert "with onnxruntime-cpu-fp32" in summary and "as recorded at training" in summary, summary


def test_frozen_station_holds_no_pytorch_and_fits_its_size() -> None:
    exe = frozen_exe("station")
    internal = exe.parent / "_internal"
    shipped = {p.name.split(".")[0].split("-")[0].lower() for p in internal.iterdir()} if internal.is_dir() else set()
    assert not shipped & {"torch", "torchvision", "torchaudio", "triton", "nvidia", "sklearn", "scipy", "matplotlib",
                          "sympy"}, sorted(shipped)
    mb = sum(p.stat().st_size for p in exe.parent.rglob("*") if p.is_file() and not p.is_symlink()) / 1e6
    print(f"\nfrozen station: {mb:.0f} MB unpacked")
    assert mb <= STATION_MAX_MB, f"the station is {mb:.0f} MB unpacked, over its {STATION_MAX_MB} MB"
    assert (internal / "models" / "demo-onnx" / "manifest.json").is_file(), "the exported demo model is not shipped"


class VirtualScreen:
    """An Xvfb server on a free display number (found with -displayfd)."""

    def __init__(self, size: str = "1400x900x24") -> None:
        r, w = os.pipe()
        self.proc = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0", size, "-nolisten", "tcp"],
                                     pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(w)
        with os.fdopen(r) as fh:
            number = fh.readline().strip()
        if not number:
            err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
            raise RuntimeError(f"Xvfb did not start: {err[-2000:]}")
        self.display = f":{number}"

    def window(self, name: str) -> str | None:
        """xwininfo's report of the viewable top-level window called ``name``, else None."""
        res = subprocess.run(["xwininfo", "-display", self.display, "-name", name],
                             capture_output=True, text=True, timeout=10)
        return res.stdout if res.returncode == 0 and "IsViewable" in res.stdout else None

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Xvfb is a Linux X server")
@pytest.mark.parametrize("target", ["app", "station"])
def test_frozen_main_window_appears_on_xvfb(target: str, tmp_path: Path) -> None:
    exe = frozen_exe(target)
    title = TARGETS[target][2]
    for tool, package in (("Xvfb", "xvfb"), ("xwininfo", "x11-utils")):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (apt-get install -y {package})")
    shot = Path(os.environ.get("INSPECTOR_FROZEN_SCREENSHOT") or tmp_path / "frozen.png")
    if target != "app":
        shot = shot.with_name(f"{shot.stem}-{target}{shot.suffix}")
    screen = VirtualScreen()
    try:
        env = app_env(tmp_path, DISPLAY=screen.display, QT_QPA_PLATFORM="xcb", INSPECTOR_SCREENSHOT=str(shot),
                      INSPECTOR_SCREENSHOT_DELAY=os.environ.get("INSPECTOR_FROZEN_SCREENSHOT_DELAY", "6000"),
                      INSPECTOR_SCREENSHOT_QUIT="1", INSPECTOR_NO_CONFIRM="1")  # fmt: skip
        t0 = time.monotonic()
        app = subprocess.Popen([str(exe), "--demo"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
        info = None
        try:
            while info is None and app.poll() is None and time.monotonic() - t0 < WINDOW_TIMEOUT_S:
                time.sleep(0.1)
                info = screen.window(title)
            startup_s = time.monotonic() - t0
            if info is None:
                app.kill()
                out = app.communicate(timeout=30)[0]
                pytest.fail(f"no '{title}' window on the X screen after {startup_s:.1f} s "
                            f"(exit code {app.returncode}):\n{out[-4000:]}")
            print(f"\nfrozen {target}: main window on the X screen {startup_s:.1f} s after start")
            out = app.communicate(timeout=WINDOW_TIMEOUT_S)[0]  # it grabs the window, then quits
        finally:
            if app.poll() is None:
                app.kill()
        assert app.returncode == 0, f"exit code {app.returncode} after the window closed:\n{out[-4000:]}"
    finally:
        screen.close()
    width = int(info.split("Width:")[1].split()[0])
    height = int(info.split("Height:")[1].split()[0])
    assert width >= 800 and height >= 500, f"the main window is only {width}x{height}"
    assert shot.is_file(), f"the app did not save its screenshot to {shot}"
    import cv2

    img = cv2.imread(str(shot))
    assert img is not None and img.shape[1] >= 800, f"{shot} is not a window-sized image"
    assert img.std() > 10, f"{shot} is nearly uniform: the window did not paint"
