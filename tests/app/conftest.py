"""App test isolation: each test gets its own config folder, data folder and
QSettings file (nothing touches the user's real settings), Qt runs offscreen.

Tiny real bundles come from the root ``tests/conftest.py`` (``tiny_bundle``:
Skip-GANomaly, 32 px, trained on a small generated data set).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """INSPECTOR_CONFIG_DIR / INSPECTOR_DATA_DIR in tmp, and QSettings as an INI file there."""
    cfg, data = tmp_path / "config", tmp_path / "data"
    cfg.mkdir()
    data.mkdir()
    monkeypatch.setenv("INSPECTOR_CONFIG_DIR", str(cfg))
    monkeypatch.setenv("INSPECTOR_DATA_DIR", str(data))
    monkeypatch.setenv("INSPECTOR_NO_CONFIRM", "1")
    monkeypatch.delenv("INSPECTOR_SCREENSHOT", raising=False)
    from app.startup import configure_qsettings

    configure_qsettings()
    return {"config": cfg, "data": data}


from _gaps import GapMeter  # noqa: E402


@pytest.fixture(autouse=True)
def gui_thread_gc(qapp):
    """Cyclic garbage collection on the GUI thread only, as the app does
    (``app.gc_guard``): a collection in a worker thread that frees a widget
    crashes the process. The root conftest gives collection back to Python
    for tests outside tests/app."""
    from app import gc_guard

    gc_guard.install(qapp)
    yield


@pytest.fixture
def gap_meter() -> GapMeter:
    return GapMeter()


@pytest.fixture
def ctx(qtbot, isolated_dirs):
    """An AppContext on the isolated folders; shut down (jobs, history) after the test."""
    from app.context import AppContext
    from app.settings import StationSettings

    c = AppContext(StationSettings.load(), role="operator")
    yield c
    c.shutdown(10000)


@pytest.fixture
def engineer_ctx(qtbot, tmp_path: Path):
    """An engineer's AppContext with its data and models folders in tmp; shut down after the test."""
    from app.context import AppContext
    from app.settings import StationSettings

    c = AppContext(settings=StationSettings(data_dir=str(tmp_path / "data"), models_dir=str(tmp_path / "models")))
    yield c
    c.shutdown(10000)


def write_video(path: Path, images: list, fps: float = 25.0) -> Path:
    """Write BGR uint8 frames to an MJPG .avi with cv2.VideoWriter (what a line camera recorder gives)."""
    import cv2

    h, w = images[0].shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert vw.isOpened(), f"cannot write {path}"
    for im in images:
        vw.write(im)
    vw.release()
    return path


@pytest.fixture(scope="session")
def part_images(demo_data: Path) -> list:
    """Demo parts (good and defective, interleaved) as BGR arrays."""
    from inspection_core.data.images import list_images, read_image

    good = list_images(demo_data / "test" / "good")
    bad = [p for d in sorted((demo_data / "test").iterdir()) if d.name != "good" for p in list_images(d)]
    order = []
    for i in range(max(len(good), len(bad))):
        if i < len(good):
            order.append(good[i])
        if i < len(bad):
            order.append(bad[i])
    return [read_image(p) for p in order]


@pytest.fixture
def inspect_view(ctx, qtbot, tiny_bundle: Path):
    """The Inspect view on the tiny bundle, shown at a workstation size; shut down afterwards."""
    from app.views.inspect import InspectView

    ctx.set_bundle(tiny_bundle)
    v = InspectView(ctx)
    qtbot.addWidget(v)
    v.resize(1300, 700)
    v.show()
    yield v
    v.shutdown()
