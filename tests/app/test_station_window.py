"""The operator station: the application without PyTorch (app/station.py).

The real window runs in a child process whose imports of torch (and of what
only training needs: torchvision, scikit-learn, scipy, matplotlib) raise
ImportError, as on a station build that ships none of them. It must come up
in station mode, open the exported demo model, score demo images through the
Inspect view's live line with the verdicts the workstation gives, record them
in History, and its self-test must pass. The export is made here, with
torch, by ``inspector export``'s use case, from the shipped demo bundle.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO_BUNDLE = ROOT / "models" / "demo.inspector"
#: what a station build leaves out (packaging/station.spec); the child's imports of these fail
BLOCKED = ("torch", "torchvision", "torchaudio", "triton", "sklearn", "scipy", "matplotlib", "onnx")

BLOCKER = textwrap.dedent(f"""
    import importlib.abc, sys
    class _NoTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {BLOCKED!r}:
                raise ImportError(f"{{name}} is not installed on this station (blocked by the test)")
            return None
    sys.meta_path.insert(0, _NoTorch())
""")


@pytest.fixture(scope="module")
def demo_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's own test images (generated, seed 0): 6 good and 6 defective parts."""
    from app.demo import make_demo_data

    data = make_demo_data(tmp_path_factory.mktemp("demo") / "demo-data")
    out = tmp_path_factory.mktemp("parts")
    good = sorted((data / "test" / "good").glob("*.png"))[:6]
    bad = sorted(p for d in sorted((data / "test").iterdir()) if d.name != "good" for p in d.glob("*.png"))[::7][:6]
    for i, p in enumerate(good + bad):
        shutil.copyfile(p, out / f"part_{i:02d}_{'good' if p.parent.name == 'good' else 'defect'}.png")
    return out


@pytest.fixture(scope="module")
def demo_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """models/demo.inspector exported to ONNX (parity checked on a few of the demo's calibration images)."""
    from app.demo import make_calibration_data
    from inspection_core.usecases.export import export

    cal = make_calibration_data(tmp_path_factory.mktemp("cal") / "cal")
    check = tmp_path_factory.mktemp("check")
    for label, folder in (("good", cal / "test" / "good"), ("defect", None)):
        (check / label).mkdir()
        files = sorted(folder.glob("*.png"))[:8] if folder else sorted(
            p for d in sorted((cal / "test").iterdir()) if d.name != "good" for p in d.glob("*.png"))[::5]
        for p in files:
            shutil.copyfile(p, check / label / f"{p.parent.name}_{p.name}")
    out = tmp_path_factory.mktemp("exports") / "demo-onnx"
    export(DEMO_BUNDLE, "onnx", out, check)
    return out


def _run_child(code: str, tmp_path: Path, timeout: float = 240) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INSPECTOR_", "QT_QPA_"))}
    env.update(QT_QPA_PLATFORM="offscreen", INSPECTOR_CONFIG_DIR=str(tmp_path / "config"),
               INSPECTOR_DATA_DIR=str(tmp_path / "data"), INSPECTOR_NO_CONFIRM="1", OMP_NUM_THREADS="1")
    script = tmp_path / "child.py"
    script.write_text(BLOCKER + textwrap.dedent(code), encoding="utf-8")
    proc = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"exit code {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return json.loads(lines[-1][len("RESULT "):])


def test_the_station_window_scores_an_exported_model_with_torch_blocked(demo_export: Path, demo_images: Path,
                                                                        tmp_path: Path) -> None:
    models = tmp_path / "data" / "models"
    models.mkdir(parents=True)
    shutil.copytree(demo_export, models / "line-3-demo")  # an export the engineer copied into the model folder
    result = _run_child(f"""
        import json, sys, time
        from pathlib import Path
        from PySide6.QtWidgets import QApplication
        app = QApplication([])
        from app import gc_guard
        gc_guard.install(app)
        from app.startup import configure_qsettings
        configure_qsettings()
        from app.context import AppContext
        from app.main_window import MainWindow
        from app.settings import StationSettings

        ctx = AppContext(StationSettings.load(), role="operator")   # station mode is not asked for: torch is missing
        win = MainWindow(ctx)
        win.show()
        out = {{"station": ctx.station, "title": win.windowTitle(), "operator_tabs": win.visible_tab_titles()}}
        ctx.set_role("engineer")
        win._apply_role("engineer")
        out["engineer_tabs"] = win.visible_tab_titles()
        out["listed"] = [p.name for p in ctx.list_bundles()]
        out["menu"] = [a.text().replace("&", "") for a in win.menuBar().actions()[0].menu().actions() if a.isVisible()]
        try:
            ctx.set_bundle(Path({str(DEMO_BUNDLE)!r}))
            out["bundle_refused"] = ""
        except ValueError as exc:
            out["bundle_refused"] = str(exc)
        out["opened"] = win.open_bundle(Path({str(models / "line-3-demo")!r}))   # File > Open exported model's handler
        out["status"] = win.bundle_status.text()
        iv = win.inspect_view
        results = []
        iv.resultShown.connect(results.append)
        assert iv.start_source("folder", {str(demo_images)!r}, loop=False, pace_fps=None), iv.state_text
        t0 = time.monotonic()
        while iv.worker is not None and time.monotonic() - t0 < 120:
            app.processEvents()
            time.sleep(0.01)
        out["state"] = [iv.state_kind, iv.state_text]
        out["parts"] = [[Path(r.frame_ref).name, str(r.prediction.verdict.value), float(r.prediction.score),
                         r.record_id is not None] for r in results]
        out["banner"] = iv.banner.verdict
        out["teach_shown"] = [not iv.teach_btn.isHidden(), not win.history_view.teach_btn.isHidden()]
        win.tabs.setCurrentWidget(win.history_view)
        win.history_view.refresh()
        out["history_rows"] = win.history_view.model.rowCount() if win.history_view.model is not None else -1
        out["torch_imported"] = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "sklearn", "scipy"))
        win.close()
        ctx.shutdown(10000)
        print("RESULT " + json.dumps(out))
    """, tmp_path)
    assert result["station"] is True and result["title"] == "Inspector Station"
    assert result["operator_tabs"] == ["Inspect", "History"]
    assert result["engineer_tabs"] == ["Inspect", "History", "Line"]  # no Calibrate, no Train
    assert "line-3-demo" in result["listed"] and not any(n.endswith(".inspector") for n in result["listed"])
    assert "Open exported model…" in result["menu"] and "Open model bundle…" not in result["menu"]
    assert "inspector export" in result["bundle_refused"], result["bundle_refused"]
    assert result["opened"] is True
    assert "exported onnx" in result["status"], result["status"]
    assert result["teach_shown"] == [False, False]
    parts = result["parts"]
    assert len(parts) == 12, result
    assert all(recorded for *_x, recorded in parts)
    assert result["history_rows"] == 12
    assert result["torch_imported"] == []

    # the same verdicts as the workstation's PyTorch Inspector on the bundle
    from inspection_core.data.images import read_image
    from inspection_core.inference import Inspector

    ref = Inspector(DEMO_BUNDLE, device="cpu")
    want = {name: ref.predict(read_image(demo_images / name)).verdict.value for name, *_ in parts}
    got = {name: verdict for name, verdict, *_ in parts}
    assert sum(got[n] != want[n] for n in got) <= 1, (got, want)  # parity: at most 0.5 % differ, here 1 of 12 at most
    assert [v for n, v in sorted(got.items()) if n.endswith("_defect.png")].count("FAIL") >= 4, got


def test_the_station_self_test_passes_with_torch_blocked(demo_export: Path, tmp_path: Path) -> None:
    models = tmp_path / "data" / "models"
    models.mkdir(parents=True)
    shutil.copytree(demo_export, models / "demo-onnx")  # app.station.DEMO_EXPORT_NAME in the user's model folder
    result = _run_child("""
        import io, json, contextlib
        if __name__ == "__main__":
            from app.__main__ import main
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                rc = main(["--self-test"])
            print(buf.getvalue())
            print("RESULT " + json.dumps({"rc": rc, "summary": buf.getvalue().strip().splitlines()[-1]}))
    """, tmp_path)
    assert result["rc"] == 0, result["summary"]
    s = result["summary"]
    assert s.startswith("self-test OK:") and "source station" in s, s
    assert "with onnxruntime-cpu-fp32" in s and "as recorded at training" in s, s


def test_the_station_self_test_says_when_no_exported_demo_model_is_there(tmp_path: Path) -> None:
    result = _run_child("""
        import io, json, contextlib
        if __name__ == "__main__":
            from app.__main__ import main
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                rc = main(["--self-test"])
            print("RESULT " + json.dumps({"rc": rc, "summary": buf.getvalue().strip().splitlines()[-1]}))
    """, tmp_path)
    assert result["rc"] == 1
    assert "no exported demo model on this station" in result["summary"] and "inspector export" in result["summary"]


# ---------------------------------------------------------------- in this process (torch installed: a workstation)
def test_a_workstation_lists_and_opens_bundles_and_exported_models(demo_export: Path, engineer_ctx, tmp_path: Path) -> None:
    from app.demo import is_demo_bundle_file
    from app.manifest import describe_light, read_manifest_light
    from inspection_core.station import read_export

    models = engineer_ctx.settings.models_path()
    models.mkdir(parents=True, exist_ok=True)
    shutil.copytree(demo_export, models / "demo-onnx")
    shutil.copyfile(DEMO_BUNDLE, models / "mine.inspector")
    assert engineer_ctx.station is False
    listed = engineer_ctx.list_bundles()
    assert models / "demo-onnx" in listed and models / "mine.inspector" in listed

    engineer_ctx.set_bundle(models / "demo-onnx")
    assert engineer_ctx.bundle_path == (models / "demo-onnx").resolve()
    assert is_demo_bundle_file(engineer_ctx.bundle_path)  # the exported demo model's verdicts go to the demo's history
    manifest = read_manifest_light(models / "demo-onnx")
    export_thr = read_export(models / "demo-onnx").threshold
    assert manifest["threshold"]["high"] == pytest.approx(export_thr.high)  # the export's own threshold
    assert manifest["exported"]["format"] == "onnx"
    assert "exported onnx fp32" in describe_light(manifest)
    engineer_ctx.set_bundle(models / "mine.inspector")  # and a bundle still opens
    assert engineer_ctx.bundle_path == (models / "mine.inspector").resolve()


def test_station_mode_on_a_workstation_offers_exported_models_only(demo_export: Path, qtbot, tmp_path: Path) -> None:
    from app.context import AppContext
    from app.main_window import MainWindow
    from app.settings import StationSettings

    ctx = AppContext(StationSettings(data_dir=str(tmp_path / "data"), models_dir=str(tmp_path / "models")),
                     role="engineer", station=True)  # inspector-app --station
    try:
        models = ctx.user_models_dir()
        shutil.copytree(demo_export, models / "demo-onnx")
        shutil.copyfile(DEMO_BUNDLE, models / "mine.inspector")
        assert ctx.list_bundles() == [(models / "demo-onnx").resolve()]
        with pytest.raises(ValueError, match="exported models only.*inspector export --bundle mine.inspector"):
            ctx.set_bundle(models / "mine.inspector")
        empty = models / "not-an-export"
        empty.mkdir()
        with pytest.raises(FileNotFoundError, match="without an exported model's manifest.json"):
            ctx.set_bundle(empty)
        win = MainWindow(ctx)
        qtbot.addWidget(win)
        assert win.visible_tab_titles() == ["Inspect", "History", "Line"]
        assert win.windowTitle() == "Inspector Station"
        assert not win.open_bundle_action.isVisible() and win.open_export_action.shortcut().toString() == "Ctrl+O"
    finally:
        ctx.shutdown(10000)


def test_a_damaged_exported_model_is_refused_with_its_folder_named(demo_export: Path, tmp_path: Path) -> None:
    from app.manifest import read_manifest_light

    broken = tmp_path / "broken-export"
    shutil.copytree(demo_export, broken)
    (broken / "model.onnx").unlink()
    with pytest.raises(ValueError, match="broken-export.*model.onnx' is missing"):
        read_manifest_light(broken)
    (broken / "manifest.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="broken-export.*manifest.json is unreadable"):
        read_manifest_light(broken)


def test_the_station_flag_is_parsed() -> None:
    from app.__main__ import build_parser

    assert build_parser().parse_args(["--station"]).station is True
    assert build_parser().parse_args([]).station is False
