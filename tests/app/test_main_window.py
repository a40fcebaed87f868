"""Main window: views, role switch (with PIN), persistence, clean shutdown,
the first-start demo, and the station settings file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.context import AppContext
from app.main_window import MainWindow
from app.settings import StationSettings

pytestmark = pytest.mark.gui

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def window(ctx: AppContext, qtbot) -> MainWindow:
    w = MainWindow(ctx)
    qtbot.addWidget(w)
    w.show()
    yield w
    w.close()


def test_every_view_builds(window: MainWindow) -> None:
    from app.views.history import COLUMNS

    assert [window.tabs.tabText(i) for i in range(window.tabs.count())] == ["Inspect", "History", "Calibrate", "Train",
                                                                          "Line"]
    for title in ("Calibrate", "Train", "Line"):
        view = window.engineer_view(title)
        assert type(view).__name__ == f"{title}View", f"{title} view failed to build: {view}"
    assert window.tabs.currentWidget() is window.inspect_view  # an operator starts on Inspect
    window.ctx.history.record(score=0.5, verdict="FAIL", threshold_high=0.4, image_ref="part-1.png", station="s1")
    window.tabs.setCurrentWidget(window.history_view)  # History opens its database when first shown
    model = window.history_view.ensure_model()
    assert window.history_view.table.model() is model and model.rowCount() == 1
    assert model.data(model.index(0, [k for k, _t in COLUMNS].index("verdict"))) == "FAIL"


def test_mode_switch_hides_and_shows_engineer_views(window: MainWindow, ctx: AppContext) -> None:
    assert window.visible_tab_titles() == ["Inspect", "History"]
    assert window.role_status.text() == "Operator"
    assert window.request_role("engineer")
    assert window.visible_tab_titles() == ["Inspect", "History", "Calibrate", "Train", "Line"]
    assert ctx.role == "engineer" and window.engineer_action.isChecked()
    window.tabs.setCurrentIndex(3)
    window.request_role("operator")
    assert window.visible_tab_titles() == ["Inspect", "History"]
    assert window.tabs.currentWidget() is window.inspect_view


def test_engineer_pin_is_a_salted_hash_and_guards_the_switch(window: MainWindow, ctx: AppContext, qtbot,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from PySide6.QtWidgets import QMessageBox

    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: QMessageBox.StandardButton.Ok)
    ctx.settings.set_pin("4711")
    path = ctx.settings.save()
    stored = json.loads(path.read_text())
    assert "4711" not in path.read_text() and len(stored["pin_salt"]) == 32
    other = StationSettings()
    other.set_pin("4711")
    assert other.pin_hash != stored["pin_hash"], "the salt must differ per PIN"
    assert not window.request_role("engineer", pin="0000")
    assert ctx.role == "operator" and window.visible_tab_titles() == ["Inspect", "History"]
    assert window.request_role("engineer", pin="4711")
    assert ctx.role == "engineer"


def test_a_damaged_bundle_is_refused_and_the_model_in_use_stays(ctx: AppContext, qtbot, tiny_bundle: Path,
                                                                 tmp_path: Path, monkeypatch) -> None:
    from PySide6.QtWidgets import QMessageBox

    w = MainWindow(ctx)
    qtbot.addWidget(w)
    assert w.open_bundle(tiny_bundle)
    switched: list = []
    ctx.bundleChanged.connect(switched.append)
    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "critical", lambda _parent, _title, text: shown.append(text))
    damaged = tmp_path / "damaged.inspector"
    damaged.write_bytes(b"not a zip file")
    assert not w.open_bundle(damaged)
    assert ctx.bundle_path == tiny_bundle.resolve() and switched == []  # the views never saw it
    assert len(shown) == 1 and "damaged.inspector" in shown[0]
    w.close()


def test_geometry_and_recent_bundles_persist(ctx: AppContext, qtbot, tiny_bundle: Path) -> None:
    w = MainWindow(ctx)
    qtbot.addWidget(w)
    w.show()
    w.tabs.setCurrentWidget(w.history_view)
    assert w.open_bundle(tiny_bundle)
    assert "tiny_skip" in w.bundle_status.text() and "skip-ganomaly" in w.bundle_status.text()
    w.close()
    w2 = MainWindow(AppContext(StationSettings.load()))
    qtbot.addWidget(w2)
    # (the offscreen screen is 800 x 600, so restoreGeometry clamps the size: check what was stored)
    from PySide6.QtCore import QSettings

    assert QSettings().value("window/geometry") is not None
    assert w2.tabs.currentWidget() is w2.history_view
    assert [a.text() for a in w2.recent_menu.actions()] == ["tiny_skip.inspector"]
    w2.close()


def test_closing_stops_inspection_and_jobs(window: MainWindow, ctx: AppContext, qtbot, tiny_bundle: Path,
                                           demo_data: Path) -> None:
    import threading

    from inspection_core.progress import ProgressEvent

    ctx.set_bundle(tiny_bundle)
    window.inspect_view.rate_spin.setValue(10)
    window.start_source(str(demo_data / "test" / "good"))
    qtbot.waitUntil(lambda: window.inspect_view.results_received >= 1, timeout=30000)
    worker = window.inspect_view.worker
    stopped = threading.Event()

    def job(progress, cancel):  # a long job that honours cancel, like training
        while not cancel.cancelled:
            progress(ProgressEvent("step", step=1, steps=10))
            cancel._event.wait(0.01)
        stopped.set()
        cancel.raise_if_cancelled()

    handle = ctx.start_job(job, name="training")
    assert window.busy_jobs() == [handle]
    window.close()  # INSPECTOR_NO_CONFIRM=1 in tests: no question asked
    assert not worker.running
    assert stopped.is_set() and not handle.running
    assert not ctx.history_open


def test_first_start_builds_the_demo_and_starts_inspecting(ctx: AppContext, qtbot, monkeypatch: pytest.MonkeyPatch,
                                                           isolated_dirs) -> None:
    """The real first-start path with a lighter training (1 epoch, 32 px) to keep the test short."""
    import app.demo as demo

    monkeypatch.setattr(demo, "DEMO_EPOCHS", 1)
    monkeypatch.setattr(demo, "DEMO_MODEL_SIZE", 32)
    monkeypatch.setattr(demo, "DEMO_IMAGE_SIZE", 32)
    w = MainWindow(ctx)
    qtbot.addWidget(w)
    w.show()
    w.start_demo()
    assert w.inspect_view.busy_panel.isVisible()
    qtbot.waitUntil(lambda: w.inspect_view.results_received >= 2, timeout=90000)
    assert not w.inspect_view.busy_panel.isVisible()
    bundle = isolated_dirs["data"] / "models" / "demo.inspector"
    assert bundle.is_file() and ctx.bundle_path == bundle.resolve()
    assert ctx.history.count() >= 2
    w.inspect_view.stop()
    # Second start reuses the cached bundle (no training job).
    mtime = bundle.stat().st_mtime
    w.start_demo()
    assert w._demo_job is None and w.inspect_view.worker is not None
    assert bundle.stat().st_mtime == mtime
    w.close()


def test_station_settings_round_trip(isolated_dirs) -> None:
    s = StationSettings.load()
    assert s.path == isolated_dirs["config"] / "settings.json"
    assert s.history_db_path() == isolated_dirs["data"] / "history.sqlite3"
    s.station_name = "Line 3 / cell 2"
    s.keep_images = False
    s.save()
    text = s.path.read_text()
    assert json.loads(text)["station_name"] == "Line 3 / cell 2"
    again = StationSettings.load()
    assert again.station == "Line 3 / cell 2" and again.keep_images is False
    s.path.write_text("{ not json")
    with pytest.raises(ValueError, match="settings.json"):
        StationSettings.load()


def test_settings_and_history_ask_the_same_resolver(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from inspection_core.history import default_history_path, default_image_dir
    from inspection_core.paths import config_dir, data_dir

    monkeypatch.delenv("INSPECTOR_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    s = StationSettings()
    assert s.history_db_path() == default_history_path() == data_dir() / "history.sqlite3"
    assert s.image_dir_path() == default_image_dir()
    monkeypatch.setenv("INSPECTOR_DATA_DIR", "~/station-data")
    monkeypatch.setenv("INSPECTOR_CONFIG_DIR", str(tmp_path / "cfg"))
    assert StationSettings().data_path() == data_dir() == Path.home() / "station-data"
    assert StationSettings.default_path() == config_dir() / "settings.json" == tmp_path / "cfg" / "settings.json"


def test_a_source_spec_is_parsed_by_the_core_and_a_typo_is_not_a_camera(window: MainWindow, tmp_path: Path) -> None:
    """``--source`` and the settings' default source go through the core's one parser:
    a mistyped folder is an error that names it (it used to be opened as a camera)."""
    assert not window.start_source(str(tmp_path / "partz"))
    assert window.inspect_view.state_kind == "error" and "partz" in window.inspect_view.state_text
    assert window.inspect_view.worker is None


def test_window_starts_without_torch_with_its_icon_and_style(isolated_dirs) -> None:
    """A fresh process (sys.modules must be clean): the operator's window comes up
    without importing torch, with the shipped icon and style sheet. That every view
    builds is test_every_view_builds, in this process."""
    code = ("import sys; from PySide6.QtWidgets import QApplication; app = QApplication([]); "
            "from app.context import AppContext; from app.main_window import MainWindow, app_icon; "
            "from app.startup import load_style; "
            "w = MainWindow(AppContext()); w.show(); app.processEvents(); "
            "print('torch imported:', 'torch' in sys.modules, 'icon:', not app_icon().isNull(), "
            "'style:', bool(load_style())); w.close(); app.processEvents(); print('stopped:', w.ctx.shutdown(20000))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "torch imported: False icon: True style: True" in out.stdout, "operator start must not import torch"
    assert "stopped: True" in out.stdout
