"""Screenshots of every view of the real application, on an X screen.

    xvfb-run -a -s "-screen 0 1366x768x24" env QT_QPA_PLATFORM=xcb \\
        .venv/bin/python docs/screenshots/take.py --out docs/screenshots
    xvfb-run -a -s "-screen 0 1920x1080x24" env QT_QPA_PLATFORM=xcb \\
        .venv/bin/python docs/screenshots/take.py --out docs/screenshots

Starts the application as ``inspector-app --demo --engineer`` does (its own
config and data folders under ``--work``), fills the screen with the window,
and grabs the whole screen: Inspect while the demo runs (on a FAIL part),
History, Calibrate (the calibration stored in the demo bundle, its misjudged
images found again), and Train after a short run of the demo recipe. Writes
``<view>-<W>x<H>.png`` (the README shows the 1920 x 1080 ones).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    ap.add_argument("--work", type=Path, default=None, help="config and data folders (default: a new temporary one)")
    ap.add_argument("--epochs", type=int, default=12, help="Train view: epochs of the short run")
    ap.add_argument("--views", default="inspect,history,calibrate,train")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="inspector-shots-"))
    os.environ.setdefault("INSPECTOR_CONFIG_DIR", str(work / "config"))
    os.environ.setdefault("INSPECTOR_DATA_DIR", str(work / "data"))
    os.environ["INSPECTOR_NO_CONFIRM"] = "1"
    sys.path.insert(0, str(ROOT))

    from PySide6.QtWidgets import QApplication

    from app import gc_guard
    from app.startup import configure_qsettings, load_style

    app = QApplication(sys.argv[:1])
    gc_guard.install(app)
    configure_qsettings()
    app.setStyle("Fusion")
    app.setStyleSheet(load_style())
    from app.context import AppContext
    from app.main_window import MainWindow, app_icon
    from app.settings import StationSettings

    app.setWindowIcon(app_icon())
    ctx = AppContext(StationSettings.load(), role="engineer")
    win = MainWindow(ctx)
    screen = app.primaryScreen()
    geo = screen.geometry()
    win.setGeometry(geo)
    win.show()
    size = f"{geo.width()}x{geo.height()}"
    args.out.mkdir(parents=True, exist_ok=True)

    def wait(cond, timeout: float = 900.0) -> bool:
        t = time.monotonic()
        while not cond() and time.monotonic() - t < timeout:
            app.processEvents()
            time.sleep(0.01)
        return bool(cond())

    def settle(seconds: float) -> None:
        t = time.monotonic()
        wait(lambda: time.monotonic() - t > seconds)

    def shoot(view: str) -> None:
        settle(1.0)
        pm = screen.grabWindow(0)
        pm.save(str(args.out / f"{view}-{size}.png"))
        print("saved", args.out / f"{view}-{size}.png", flush=True)

    views = args.views.split(",")
    iv = win.inspect_view
    win.start_demo()
    if "inspect" in views or "history" in views:
        wait(lambda: iv.counters.inspected >= 11 and iv.banner.verdict == "FAIL" and not iv._dirty)
        iv.stop()  # on a FAIL part (Pause would show PAUSED)
        shoot("inspect")
    if "history" in views:
        win.tabs.setCurrentWidget(win.history_view)
        shoot("history")
    iv.stop()
    if "calibrate" in views:
        cv = win.calibrate_view
        win.tabs.setCurrentIndex(win.tabs.indexOf(cv.parentWidget()))
        wait(lambda: cv.scores is not None, 60)
        settle(4.0)  # the misjudged images are read on a worker
        shoot("calibrate")
    if "train" in views:
        tv = win.train_view
        win.tabs.setCurrentIndex(win.tabs.indexOf(tv.parentWidget()))
        wait(lambda: tv.form.model_combo.count() > 0 and tv.index is not None, 120)
        f = tv.form
        import app.demo as demo

        f.model_combo.setCurrentText(demo.DEMO_MODEL)  # the demo recipe (README: the command line in five steps)
        f.preset_combo.setCurrentText(demo.DEMO_PRESET)
        f.size_combo.setCurrentText(str(demo.DEMO_MODEL_SIZE))
        f.normalize_combo.setCurrentIndex(f.normalize_combo.findData(demo.DEMO_NORMALIZE))
        f.budget_combo.setCurrentIndex(f.budget_combo.findData("epochs"))
        f.budget_spin.setValue(args.epochs)
        f.batch_spin.setValue(demo.DEMO_BATCH)
        for name, value in {"base_width": demo.DEMO_WIDTH, "latent_dim": demo.DEMO_LATENT, **demo.DEMO_PARAMS}.items():
            f.param_editors[name].set_value(value)
        f.lr_spin.setValue(demo.DEMO_LR)
        tv.name_edit.setText("skip-ganomaly-washers-64")
        tv.name_edit.setModified(True)
        tv.start()
        wait(lambda: not tv.is_busy(), 1800)
        from PySide6.QtWidgets import QScrollArea

        scroll = tv.summary_box.parentWidget()
        while not isinstance(scroll, QScrollArea):  # the form's scroll area
            scroll = scroll.parentWidget()
        settle(0.5)  # the result box is laid out
        scroll.ensureWidgetVisible(tv.summary_box)  # Save as and the result, under the data and the settings
        shoot("train")
    win.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
