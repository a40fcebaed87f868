"""The synthetic washer data set: layout, determinism, and honest masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inspection_core.data import DEFECT_TYPES, read_image, scan_dataset
from inspection_core.data.demo import PartParams, make_demo_dataset, render_part

SMALL = dict(size=64, n_train=4, n_test_good=2, n_test_defect_per_type=2)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_other_images(tmp_path: Path) -> None:
    a = _files(make_demo_dataset(tmp_path / "a", seed=7, **SMALL))
    b = _files(make_demo_dataset(tmp_path / "b", seed=7, **SMALL))
    c = _files(make_demo_dataset(tmp_path / "c", seed=8, **SMALL))
    assert a == b
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a if k.endswith(".png") and "ground_truth" not in k)
    assert "README.txt" in a and "000.png" in "".join(a)


def test_layout_and_masks_on_the_part(tmp_path: Path) -> None:
    root = make_demo_dataset(tmp_path / "d", seed=1, **SMALL)
    idx = scan_dataset(root)
    assert idx.summary()["defect_types"] == {t: 2 for t in sorted(DEFECT_TYPES)}
    yy, xx = np.mgrid[0:64, 0:64]
    r = np.hypot(xx - 32, yy - 32)
    for s in idx.test:
        if s.label == 0:
            continue
        mask = read_image(s.mask_path)
        assert mask.shape == (64, 64) and set(np.unique(mask)) == {0, 255}
        area = (mask > 0).mean()
        assert 0.003 < area < 0.08, f"{s.defect_type} covers {area:.1%} of the image"
        # On the washer (outer radius 0.36 * size, a few px of jitter), never far outside.
        assert r[mask > 0].max() < 0.36 * 64 + 5


def test_rerunning_into_the_same_folder_replaces_the_set(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    make_demo_dataset(out, seed=0, size=32, n_train=5, n_test_good=1, n_test_defect_per_type=1)
    make_demo_dataset(out, seed=0, size=32, n_train=2, n_test_good=1, n_test_defect_per_type=1)
    assert scan_dataset(out).summary()["n_train"] == 2
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        make_demo_dataset(other, size=32, n_train=1)


@pytest.mark.parametrize("defect", DEFECT_TYPES)
@pytest.mark.parametrize("channels", [3, 1])
def test_mask_is_exactly_the_changed_pixels(defect: str, channels: int) -> None:
    for k in range(3):
        p = PartParams(
            cx=64 + k, cy=63 - k, r_out=46.0, r_in=20.5, rotation=0.7 * k, brightness=1.0, bg_brightness=1.0,
            noise_seed=100 + k,
        )
        clean, empty = render_part(p, 128, channels)
        bad, mask = render_part(p, 128, channels, defect=defect, defect_seed=k)
        assert not empty.any()
        diff = np.abs(bad.astype(int) - clean.astype(int))
        if diff.ndim == 3:
            diff = diff.max(axis=2)
        assert mask.sum() > 100
        assert not diff[~mask].any(), "pixels outside the mask changed"
        assert (diff[mask] > 10).mean() > 0.85, f"{defect}: most masked pixels should visibly change"
        assert diff[mask].mean() > 30


def test_the_demo_records_in_its_own_history_never_the_stations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 tiny_bundle: Path) -> None:
    """The app's demo (the shipped demo bundle on demo parts) records every
    verdict in the demo's own history, ``<data folder>/demo/history.sqlite3``,
    with its kept images beside it; the station's history file is never
    created. Another bundle in the same window records in the station's."""
    pytest.importorskip("PySide6")
    from app.context import AppContext
    from app.demo import demo_history_path, shipped_demo_bundle
    from app.settings import StationSettings
    from inspection_core.history import HistoryDB
    from inspection_core.usecases.live import LiveLine

    bundle = shipped_demo_bundle()
    if bundle is None:
        pytest.skip("no shipped demo bundle (models/demo.inspector) in this installation")
    monkeypatch.setenv("INSPECTOR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("INSPECTOR_CONFIG_DIR", str(tmp_path / "config"))
    settings = StationSettings.load()
    station = settings.history_db_path()
    parts = make_demo_dataset(tmp_path / "parts", seed=3, size=128, n_train=1, n_test_good=3,
                              n_test_defect_per_type=1) / "test"
    n_parts = sum(1 for _ in parts.rglob("*.png"))

    ctx = AppContext(settings, role="operator")
    try:
        ctx.set_bundle(bundle)  # what starting the demo does (MainWindow.start_demo, inspector-app --demo)
        demo_db = demo_history_path(settings)
        assert demo_db == tmp_path / "data" / "demo" / "history.sqlite3"
        assert ctx.history_db_path() == demo_db != station
        line = LiveLine(str(parts), str(ctx.bundle_path), ctx.recorder, device="cpu", source_label="demo")
        assert line.run(timeout_s=300), "the demo parts were not all scored"
        assert line.frames_scored == n_parts
        assert ctx.history.path == demo_db and ctx.history.count() == n_parts
        assert not station.exists(), "a demo verdict went to the station's history"
        assert not settings.image_dir_path().exists(), "a demo part's image was kept among the station's"
        kept = [r for r in ctx.history.query(limit=100) if r.stored_image]
        assert kept and all(ctx.history.image_path(r).is_relative_to(demo_db.parent) for r in kept)

        ctx.set_bundle(tiny_bundle)  # a bundle of the user's: its verdicts are the station's
        assert ctx.history_db_path() == station
        line = LiveLine(str(parts / "good"), str(ctx.bundle_path), ctx.recorder, device="cpu", source_label="line")
        assert line.run(timeout_s=300)
        assert ctx.history.path == station and ctx.history.count() == 3
    finally:
        ctx.shutdown(10000)
    with HistoryDB(demo_db) as db:
        assert db.count() == n_parts  # the demo's rows stayed in the demo's history
