"""Screenshots of the Calibrate and Train views from a real window.

    xvfb-run -a -s "-screen 0 1600x1000x24" env QT_QPA_PLATFORM=xcb \\
        .venv/bin/python docs/screenshots/make_engineer_views.py train --work /tmp/shots --epochs 8
    xvfb-run ... make_engineer_views.py calibrate --work /tmp/shots --bundle /tmp/shots/models/NAME.inspector

``train`` trains a 64 px model on the demo washers through the Train view and
grabs the view at the end (the bundle lands in WORK/models); ``calibrate``
scores the demo test split with a bundle through the Calibrate view, applies a
strategy and grabs it. Writes docs/screenshots/train.png or calibrate.png.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("view", choices=("train", "calibrate"))
    ap.add_argument("--work", type=Path, required=True, help="folder for the demo data and models")
    ap.add_argument("--bundle", type=Path, help="calibrate: the bundle to calibrate (copied into WORK/models)")
    ap.add_argument("--strategy", default="youden", help="calibrate: a strategy, or 'band' for two thresholds")
    ap.add_argument("--model", default="skip-ganomaly")
    ap.add_argument("--epochs", type=int, default=8)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))

    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv[:1])
    app.setStyle("Fusion")
    from app.context import AppContext
    from app.settings import StationSettings
    from inspection_core.data.demo import make_demo_dataset

    data = args.work / "demo-data"
    if not data.exists():
        make_demo_dataset(data, seed=0, size=128)
    ctx = AppContext(settings=StationSettings(data_dir=str(args.work), models_dir=str(args.work / "models")))
    out = ROOT / "docs" / "screenshots"

    def wait(cond, timeout: float = 1800) -> None:
        t = time.monotonic()
        while not cond() and time.monotonic() - t < timeout:
            app.processEvents()
            time.sleep(0.01)

    if args.view == "calibrate":
        from app.views.calibrate import CalibrateView

        bundle = args.work / "models" / args.bundle.name
        if bundle.resolve() != args.bundle.resolve():
            bundle.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(args.bundle, bundle)
        ctx.set_bundle(bundle)
        v = CalibrateView(ctx)
        v.resize(1500, 940)
        v.show()
        v.folder_edit.setText(str(data))
        v.start_scoring()
        wait(lambda: v.scores is not None and not v.is_busy())
        if args.strategy == "band":
            v.two_check.setChecked(True)
            v.apply_band_from_targets()
        else:
            v.strategy_buttons[args.strategy].click()
    else:
        from app.views.train import TrainView

        v = TrainView(ctx)
        v.resize(1500, 940)
        v.show()
        wait(lambda: v.form.model_combo.count() > 0)
        v.data_edit.setText(str(data))
        v.check_data()
        f = v.form
        f.model_combo.setCurrentText(args.model)
        f.size_combo.setCurrentText("64")
        f.budget_spin.setValue(args.epochs)
        f.batch_spin.setValue(16)
        f.param_editors["base_width"].set_value(16)
        f.param_editors["latent_dim"].set_value(64)
        v.name_edit.setText(f"{args.model}-washers-64")
        v.name_edit.setModified(True)
        v.start()
        wait(lambda: not v.is_busy())
    t = time.monotonic()
    wait(lambda: time.monotonic() - t > 3)  # thumbnails, last repaint
    v.grab().save(str(out / f"{args.view}.png"))
    print("saved", out / f"{args.view}.png")
    v.shutdown()


if __name__ == "__main__":
    main()
