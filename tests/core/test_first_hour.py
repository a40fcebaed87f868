"""A newcomer's first hour with the command line (issue 14): one meaning for
a bundle's name, a CLI that starts without torch, heat-map overlays at the
image's resolution, and a warning, once, when the images are unlike the
bundle's training data."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from _cli import run_cli as cli

from inspection_core.drift import InputMonitor, Reference, input_statistics, is_gray

ROOT = Path(__file__).resolve().parents[2]




def test_a_bundle_name_means_one_file_everywhere(tiny_bundle: Path, demo_data: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    """``--out demo`` writes demo.inspector, and ``--bundle demo`` finds it in every sub-command."""
    from inspection_core.bundle import bundle_path, read_manifest

    shutil.copy(tiny_bundle, tmp_path / "demo.inspector")
    (tmp_path / "demo").mkdir()  # the data folder of the README's recipe, beside its bundle
    name = str(tmp_path / "demo")
    assert bundle_path(name) == tmp_path / "demo.inspector" and read_manifest(name)["name"]
    rc, out, err = cli(capsys, "predict", "--bundle", name, str(demo_data / "test" / "good"))
    assert rc == 0, err
    rc, out, err = cli(capsys, "evaluate", "--bundle", name, "--data", str(demo_data))
    assert rc == 0 and "image AUROC" in out, err
    rc, out, err = cli(capsys, "calibrate", "--bundle", name, "--data", str(demo_data), "--strategy", "youden",
                       "--bootstrap", "0")
    assert rc == 0 and "Written to" in out, err
    assert read_manifest(tmp_path / "demo.inspector")["threshold"]["strategy"] == "youden"
    rc, out, err = cli(capsys, "predict", "--bundle", str(tmp_path / "nothing"), str(demo_data))
    assert rc == 2 and "file not found" in err


def test_the_command_line_starts_without_torch() -> None:
    """``inspector --help`` and every sub-command but train's parser import no torch (3 s on a small machine)."""
    code = (
        "import sys\n"
        "from inspection_core.cli.main import main\n"
        "for argv in (['--help'], ['predict', '--help'], ['evaluate', '--help'], ['calibrate', '--help'],"
        " ['demo-data', '--help']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "NO-TORCH"
    assert "usage: inspector predict" in res.stdout and "demo-data" in res.stdout


def test_the_listing_says_what_each_command_says_of_itself() -> None:
    from inspection_core.cli.main import SUMMARIES, build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    own = {a.dest: a.help for a in sub._choices_actions}
    assert own == {name: summary for name, (_module, summary) in SUMMARIES.items()}


def test_heat_map_overlays_have_the_image_resolution(tiny_bundle: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    rng = np.random.default_rng(0)
    cv2.imwrite(str(folder / "wide.png"), rng.integers(0, 255, (90, 200, 3), dtype=np.uint8))
    cv2.imwrite(str(folder / "deep.png"), rng.integers(0, 65535, (120, 80), dtype=np.uint16))
    rc, _out, err = cli(capsys, "predict", "--bundle", str(tiny_bundle), str(folder), "--maps", str(tmp_path / "maps"))
    assert rc == 0, err
    assert cv2.imread(str(tmp_path / "maps" / "wide_heat.png")).shape == (90, 200, 3)   # not the model's 32 px
    assert cv2.imread(str(tmp_path / "maps" / "deep_heat.png")).shape == (120, 80, 3)


def test_predict_warns_once_when_images_are_unlike_the_training_data(tiny_bundle: Path, demo_data: Path,
                                                                      tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Gray tiles on a colour model: one warning for the run, not one per image; none for images like training."""
    rc, _out, err = cli(capsys, "predict", "--bundle", str(tiny_bundle), str(demo_data / "test" / "good"))
    assert rc == 0 and "unlike" not in err
    gray = tmp_path / "gray"
    gray.mkdir()
    for i, p in enumerate(sorted((demo_data / "test").rglob("*.png"))[:12]):
        cv2.imwrite(str(gray / f"{i:02d}.png"), cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2GRAY))
    rc, _out, err = cli(capsys, "predict", "--bundle", str(tiny_bundle), str(gray))
    assert rc == 0
    assert err.count("unlike what bundle") == 1, err
    assert "gray and the model was trained on colour images (5 of 5 images)" in err  # said as soon as it is clear


# ---------------------------------------------------------------- the monitor itself

def _manifest(**extra: object) -> dict:
    m = {"name": "washers", "preprocessing": {"image_size": 64, "channels": 3},
         "score_stats": {"min": 1.0, "max": 2.0, "q50": 1.4},
         "calibration": {"scores": [1.0, 1.5, 2.5, 3.0], "labels": [0, 0, 1, 1]}}
    m.update(extra)
    return m


def _colour(h: int = 64, w: int = 64, level: int = 128, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(level, 20, (h, w, 3)), 0, 255).astype(np.uint8)


def test_the_reference_comes_from_the_manifest() -> None:
    ref = Reference.from_manifest(_manifest())
    assert (ref.channels, ref.score_low, ref.score_high) == (3, 1.0, 3.0)
    assert ref.score_limit == pytest.approx(5.0)  # max + 1 x range, as the calibration saw defects
    good_only = Reference.from_manifest(_manifest(calibration=None))
    assert good_only.score_limit == pytest.approx(2.0 + 4 * 1.0)  # only good scores known: a wider margin
    assert Reference.from_manifest({"preprocessing": {"channels": 1}}).score_limit is None


def test_far_scores_warn_once_and_normal_ones_never() -> None:
    mon = InputMonitor(_manifest())
    assert all(mon.observe(_colour(seed=i), 2.9) is None for i in range(40))  # defects in range: no warning
    assert mon.finish() is None
    mon = InputMonitor(_manifest())
    messages = [mon.observe(_colour(seed=i), 50.0) for i in range(30)]
    given = [m for m in messages if m]
    assert len(given) == 1 and messages.index(given[0]) == 4  # after min_seen images, then never again
    assert "scores are far above any the bundle produced in calibration" in given[0] and "'washers'" in given[0]


def test_a_few_odd_parts_among_many_do_not_warn() -> None:
    mon = InputMonitor(_manifest())
    out = [mon.observe(_colour(seed=i), 50.0 if i % 5 == 0 else 1.5) for i in range(60)]
    assert not any(out) and mon.finish() is None


def test_a_short_run_is_decided_at_its_end() -> None:
    mon = InputMonitor(_manifest())
    gray = np.full((64, 64), 120, np.uint8)
    assert mon.observe(gray, 1.2) is None and mon.observe(gray, 1.3) is None
    msg = mon.finish()
    assert msg is not None and "2 of 2 images" in msg and mon.finish() is None


def test_gray_stored_as_colour_is_gray_and_colour_on_a_gray_model_is_noticed() -> None:
    assert is_gray(cv2.cvtColor(np.full((30, 30), 90, np.uint8), cv2.COLOR_GRAY2BGR))
    assert not is_gray(_colour())
    mon = InputMonitor({"name": "tiles", "preprocessing": {"channels": 1}})
    assert [mon.observe(_colour(seed=i), 0.1) for i in range(5)][-1] is not None
    assert "in colour and the model was trained on gray" in (mon.message or "")


def test_size_and_brightness_when_the_training_statistics_are_recorded() -> None:
    train = np.stack([_colour(level=100 + i) for i in range(20)])
    stats = input_statistics(train, [(480, 640)] * 20)
    assert stats["shape"] == [480, 640] and 90 < stats["brightness"][1] < 130
    m = _manifest(training={"data": {"input_stats": stats}})
    same = InputMonitor(m)
    assert not any(same.observe(_colour(480, 640, level=110, seed=i), 1.5, _colour(level=110, seed=i)) for i in range(10))
    small_dark = InputMonitor(m)
    out = [small_dark.observe(_colour(100, 100, level=10, seed=i), 1.5, _colour(level=10, seed=i)) for i in range(5)]
    assert out[-1] is not None and "not the size of the training images (640x480 px" in out[-1]
    assert "much darker than the training images" in out[-1]


def test_the_live_line_warns_once_per_run(tiny_bundle: Path, demo_data: Path, tmp_path: Path) -> None:
    """A headless line on gray frames with a colour model: one "input_warning" event, and only that run's."""
    from inspection_core.usecases.live import LiveLine

    gray = tmp_path / "gray"
    gray.mkdir()
    for i, p in enumerate(sorted((demo_data / "test" / "good").glob("*.png"))[:8]):
        cv2.imwrite(str(gray / f"{i:02d}.png"), cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2GRAY))
    said: dict[Path, list[object]] = {}
    for folder in (gray, demo_data / "test" / "good"):
        events: list[tuple[str, object]] = []
        line = LiveLine(f"folder:{folder}", str(tiny_bundle), device="cpu", listener=lambda k, p: events.append((k, p)))
        assert line.run(timeout_s=120)
        said[folder] = [p for k, p in events if k == "input_warning"]
        assert sum(1 for k, _p in events if k == "result") == len(list(folder.glob("*.png")))
    assert len(said[gray]) == 1, said[gray]  # once for the run, not once per frame
    assert "gray and the model was trained on colour images" in str(said[gray][0])
    assert said[demo_data / "test" / "good"] == []  # the next run, on colour parts, is not warned


def test_loading_records_each_images_size_for_the_training_statistics(tmp_path: Path) -> None:
    """What the trainer needs to record ``input_stats`` (drift.input_statistics) for the monitor."""
    from inspection_core.data.dataset import Sample, load_images
    from inspection_core.data.preprocess import Preprocessing

    paths = []
    for i, (h, w) in enumerate(((40, 60), (50, 30))):
        paths.append(tmp_path / f"{i}.png")
        cv2.imwrite(str(paths[-1]), np.full((h, w, 3), 100 + 50 * i, np.uint8))
    (tmp_path / "bad.png").write_bytes(b"no")
    loaded = load_images([Sample(p, 0, "good") for p in (paths[0], tmp_path / "bad.png", paths[1])],
                         Preprocessing(image_size=16, channels=3))
    assert loaded.shapes == [(40, 60), (50, 30)]  # aligned with the images kept
    stats = input_statistics(loaded.images, loaded.shapes)
    assert stats["n"] == 2 and stats["shape"] == [45, 45] and stats["brightness"][0] < stats["brightness"][2]


@pytest.mark.parametrize("target, message", [
    ("{tmp}/no/such/folder", "no such device"),
    ("{tmp}", "is a folder: choose the image folder source"),
    ("{tmp}/clip.txt", "is a file: choose the video file source"),
])
def test_a_path_picked_as_a_camera_is_refused_not_reconnected(tmp_path: Path, target: str, message: str) -> None:
    """The picker's Camera / stream with a path typed: an error naming it, never a camera that keeps reconnecting."""
    from inspection_core.sources import SourceError, parse_source

    (tmp_path / "clip.txt").write_text("x")
    with pytest.raises(SourceError, match=message):
        parse_source(target.format(tmp=tmp_path), kind="camera")
    for ok in ("0", "rtsp://10.0.0.5/stream"):
        assert parse_source(ok, kind="camera").kind == "camera"
