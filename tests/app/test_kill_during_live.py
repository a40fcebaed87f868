"""kill -9 of the running desktop app during a live run (issue 13): a real
process under the offscreen platform, a real video file. Every verdict that
reached the Inspect view is in the history afterwards, and the app starts
cleanly again on the same files."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.app.conftest import write_video

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.gui, pytest.mark.slow]


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(ROOT / "tests" / "app" / "_live_driver.py"), *args], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.fault("app", "kill -9 of the desktop app during a live run on a video file (a real process, offscreen)",
                   "every verdict that reached the Inspect view is in the history (integrity ok); the app starts "
                   "cleanly again and goes on recording")
def test_kill_9_during_a_live_run_loses_no_shown_verdict(tiny_bundle: Path, part_images: list, tmp_path: Path) -> None:
    video = write_video(tmp_path / "line.avi", (part_images * 40)[:400], fps=25.0)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", INSPECTOR_CONFIG_DIR=str(tmp_path / "config"),
               INSPECTOR_DATA_DIR=str(tmp_path / "data"), INSPECTOR_NO_CONFIRM="1", OMP_NUM_THREADS="1",
               PYTHONPATH=str(ROOT))
    proc = _start(["--bundle", str(tiny_bundle), "--source", str(video)], env)
    shown: list[str] = []
    try:
        assert proc.stdout is not None
        while len(shown) < 20:
            line = proc.stdout.readline()
            assert line, f"the app ended before it was killed: {proc.stderr.read()[-2000:] if proc.stderr else ''}"
            if line.startswith("shown "):
                shown.append(line[6:].strip())
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        shown += [line[6:].strip() for line in proc.stdout.read().splitlines() if line.startswith("shown ")]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL and len(shown) < 400, "killed during the run"
    db = tmp_path / "data" / "history.sqlite3"
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    recorded = {r[0] for r in con.execute("SELECT image_ref FROM inspections")}
    con.close()
    missing = [ref for ref in shown if ref not in recorded]
    assert not missing, f"{len(missing)} shown verdict(s) not in the history, e.g. {missing[:3]}"

    again = _start(["--bundle", str(tiny_bundle), "--source", str(video), "--quit-after", "5"], env)
    out, err = again.communicate(timeout=180)
    assert again.returncode == 0, err[-3000:]
    assert out.count("shown ") >= 5 and "Traceback" not in err
    con = sqlite3.connect(db)
    assert con.execute("SELECT COUNT(*) FROM inspections").fetchone()[0] >= len(recorded) + 5
    con.close()
    assert not list((tmp_path / "data").glob("*.spool")), "nothing left waiting"
