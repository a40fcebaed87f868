"""The command line a new user meets in the first hour (issue 36, round 2): PatchCore by default, no silent
overwrite, one folder rule, readable lines, help and suggestions, errors before torch; and the families'
schema behind --param (issue 30)."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _cli import run_cli as run




def test_patchcore_is_the_default_and_an_existing_bundle_is_not_replaced(demo_data: Path, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture) -> None:
    from inspection_core.bundle import read_manifest

    out = tmp_path / "m.inspector"
    quick = ("--preset", "quick", "--image-size", "64", "--backbone", "resnet18", "--param", "weights=random",
             "--device", "cpu", "--no-evaluate")
    rc, text, err = run(capsys, "train", "--data", str(demo_data), "--out", str(tmp_path / "m"), *quick)
    assert rc == 0, err
    assert read_manifest(out)["model"]["model"] == "patchcore"
    assert "epochs" not in text and "fitted in" in text
    before = out.read_bytes()
    rc, text, err = run(capsys, "train", "--data", str(demo_data), "--out", str(tmp_path / "m"), *quick)
    assert rc == 2 and text == "" and "already exists" in err and "--overwrite" in err and err.count("\n") == 1
    assert out.read_bytes() == before


def test_a_long_training_is_announced_with_its_estimate(demo_data: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture) -> None:
    import inspection_core.usecases.estimate as estimate
    import inspection_core.usecases.training as training

    class Long:
        long, seconds = True, 3000.0

        def what(self, mcfg, tcfg) -> str:
            return "600 updates of 16 images at 128 px"

    monkeypatch.setattr(estimate, "estimate_training", lambda *a, **k: Long())

    def stop(*_a, **_k):
        raise RuntimeError("stopped by the test")

    monkeypatch.setattr(training, "train_and_save", stop)
    rc, _text, err = run(capsys, "train", "--data", str(demo_data), "--out", str(tmp_path / "m"),
                         "--model", "ganomaly")
    assert rc == 2 and "stopped by the test" in err
    note = [line for line in err.splitlines() if "this training will take" in line]
    assert note == ["note: this training will take about 50 min on this machine (600 updates of 16 images at "
                    "128 px); --model patchcore fits in minutes; Ctrl-C stops it"]


def test_folders_are_searched_in_depth_and_an_empty_one_says_so(tiny_bundle: Path, demo_data: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture) -> None:
    rc, text, err = run(capsys, "predict", "--bundle", str(tiny_bundle), str(demo_data / "test"))
    assert rc == 0, err
    n_test = sum(1 for p in (demo_data / "test").rglob("*.png"))
    assert len([line for line in text.splitlines() if "\t" in line]) == n_test
    rc, _text, err = run(capsys, "predict", "--bundle", str(tiny_bundle), str(demo_data / "test"), "--recursive")
    assert rc == 0, err  # the old switch still works
    rc, _text, err = run(capsys, "predict", "--bundle", str(tiny_bundle), str(demo_data / "test"), "--no-recursive")
    assert rc == 2 and "no images found in" in err and "leave out --no-recursive" in err
    (tmp_path / "empty").mkdir()
    rc, _text, err = run(capsys, "predict", "--bundle", str(tiny_bundle), str(tmp_path / "empty"))
    assert rc == 2 and err == f"inspector predict: error: no images found in '{tmp_path / 'empty'}'\n"


def test_good_images_alone_are_warned_about_and_loose_images_are_not_training_images(
        tiny_bundle: Path, demo_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from inspection_core.cli.train import data_warnings
    from inspection_core.data.dataset import scan_dataset

    warnings = data_warnings(scan_dataset(demo_data / "train"))
    assert len(warnings) == 1 and "no defective images to test on" in warnings[0]
    assert data_warnings(scan_dataset(demo_data)) == []
    loose = tmp_path / "loose"
    loose.mkdir()
    for p in sorted((demo_data / "test" / "good").glob("*.png"))[:3]:
        shutil.copy(p, loose / p.name)
    rc, _text, err = run(capsys, "evaluate", "--bundle", str(tiny_bundle), "--data", str(loose))
    assert rc == 2 and "training images" not in err and "not a labelled data set" in err
    assert "3 loose images" in err and "inspector predict" in err


def test_calibrate_prints_readable_numbers_and_the_frame_check(tiny_bundle: Path, demo_data: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture) -> None:
    from inspection_core.bundle import read_manifest
    from inspection_core.frame_check import limits_of

    bundle = Path(shutil.copy(tiny_bundle, tmp_path / "b.inspector"))
    rc, text, err = run(capsys, "calibrate", "--bundle", str(bundle), "--data", str(demo_data), "--strategy",
                        "youden", "--bootstrap", "0")
    assert rc == 0, err
    for leak in ("None", "True", "False"):
        assert not re.search(rf"\b{leak}\b(?!-)", text), text
    written = next(line for line in text.splitlines() if line.startswith("Written to"))
    assert not re.search(r"\d\.\d{6,}", written), written  # 5 significant digits, not 3.6625219535827633
    assert "Youden" in text
    rc, text, err = run(capsys, "calibrate", "--bundle", str(bundle), "--frame-check", "off")
    assert rc == 0, err
    assert "frame check off" in text and not limits_of(read_manifest(bundle)).enabled
    rc, text, err = run(capsys, "calibrate", "--bundle", str(bundle), "--frame-check", "on")
    assert rc == 0 and "Frame check on: frames must have" in text and limits_of(read_manifest(bundle)).enabled


def _subparser(cmd: str) -> argparse.ArgumentParser:
    from inspection_core.cli.main import build_parser

    parser = build_parser([cmd])
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[cmd]


@pytest.mark.parametrize("cmd", ["evaluate", "predict", "calibrate", "train"])
def test_every_option_has_help_and_shows_its_default(cmd: str) -> None:
    parser = _subparser(cmd)
    formatter = parser._get_formatter()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, (cmd, action.dest)
        shown = formatter._get_help_string(action)
        assert "None" not in shown and "False" not in shown, (cmd, action.dest, shown)
        if action.option_strings and action.default not in (None, False, [], argparse.SUPPRESS):
            assert "default" in shown, (cmd, action.dest, shown)
    assert "(default: 32)" in parser.format_help() or cmd == "train"


def test_train_help_lists_every_familys_parameters(capsys: pytest.CaptureFixture) -> None:
    from inspection_core.models.registry import families

    rc, text, _err = run(capsys, "train", "--help")
    assert rc == 0 and "(default: patchcore)" in text
    for name, fam in families().items():
        if fam.presets:
            assert f"\n  {name}" in text
            for prm in fam.schema.params:
                assert f"    {prm.name} = " in text, (name, prm.name)


@pytest.mark.parametrize("args, hint", [
    (("train", "--modle", "patchcore"), "unknown option --modle (did you mean --model?)"),
    (("trian",), "(did you mean train?)"),
    (("calibrate", "--bundel", "b"), "(did you mean --bundle?)"),
    (("train", "--data", "d", "--out", "o", "--model", "patchcor"), "(did you mean patchcore?)"),
])
def test_typos_are_answered_with_a_suggestion(args: tuple, hint: str, capsys: pytest.CaptureFixture) -> None:
    rc, _text, err = run(capsys, *args)
    assert rc == 2 and hint in err, err


def _bad_value(prm) -> str:
    return {"bool": "maybe", "int": "x", "float": "x", "list": "[", "str": "nonsense"}[prm.kind]


def _checked_param(fam):
    """A parameter a wrong text is sure to fail: a switch, a number, or a text with choices."""
    return next(p for p in fam.schema.params if p.kind in ("bool", "int", "float") or (p.kind == "str" and p.choices))


@pytest.mark.parametrize("model", ["ganomaly", "skip-ganomaly", "bigan", "vgg16", "patchcore"])
def test_a_bad_parameter_of_every_family_fails_before_any_image_is_read(model: str, demo_data: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       capsys: pytest.CaptureFixture) -> None:
    import inspection_core.data.dataset as dataset
    from inspection_core.models.registry import family

    def no_reading(*_a, **_k):
        raise AssertionError("the data set was read")

    monkeypatch.setattr(dataset, "scan_dataset", no_reading)
    prm = _checked_param(family(model))
    rc, _text, err = run(capsys, "train", "--data", str(demo_data), "--out", str(tmp_path / "x"), "--model", model,
                         "--param", f"{prm.name}={_bad_value(prm)}")
    assert rc == 2 and f"--param {prm.name} must be" in err and f"(model {model})" in err, err
    rc, _text, err = run(capsys, "train", "--data", str(demo_data), "--out", str(tmp_path / "x"), "--model", model,
                         "--param", f"{prm.name}x=1")
    assert rc == 2 and f"did you mean {prm.name}?" in err, err


def test_param_values_are_read_by_their_kind() -> None:
    from inspection_core.cli.train import parse_params

    params = parse_params("patchcore", ["neighbours=3", "coreset_ratio=0.1"])
    assert params == {"neighbours": 3, "coreset_ratio": 0.1}
    assert isinstance(params["neighbours"], int) and isinstance(params["coreset_ratio"], float)


_PROBE = """
import sys, time
t0 = time.perf_counter()
from inspection_core.cli.main import main
rc = main(sys.argv[1:])
print(rc, 'torch' in sys.modules, round(time.perf_counter() - t0, 3))
"""


@pytest.mark.parametrize("args, message", [
    (("predict", "--bundle", "{bundle}", "{tmp}/MISSING"), "'{tmp}/MISSING' does not exist"),
    (("predict", "--bundle", "{bundle}", "{tmp}/empty"), "no images found in"),
    (("evaluate", "--bundle", "{bundle}", "--data", "{tmp}/MISSING"), "does not exist"),
    (("calibrate", "--bundle", "{bundle}", "--data", "{tmp}/MISSING", "--strategy", "youden"), "does not exist"),
    (("calibrate", "--bundle", "{bundle}", "--data", "{tmp}/empty"), "give --strategy"),
    (("train", "--model", "patchcore", "--param", "score=foo", "--data", "{tmp}/empty", "--out", "{tmp}/x"),
     "--param score must be one of"),
    (("train", "--data", "{tmp}/MISSING", "--out", "{tmp}/x"), "does not exist"),
])
def test_argument_and_path_errors_come_before_torch(args: tuple, message: str, tiny_bundle: Path,
                                                    tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    argv = [a.format(tmp=tmp_path, bundle=tiny_bundle) for a in args]
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - t0
    rc, torch_imported, _inside = proc.stdout.split()
    assert rc == "2" and message.format(tmp=tmp_path) in proc.stderr, proc.stderr
    assert torch_imported == "False", argv  # torch alone takes 1.5-2 s to import here
    assert wall < 3.0, wall  # a fresh interpreter on a loaded 2-core machine; about 0.3 s when idle


def test_a_held_training_lock_stops_the_use_case_as_well(tmp_path: Path) -> None:
    """The lock lives in train_and_save: the Train view's child process respects it too."""
    from inspection_core.config import ModelConfig, TrainConfig
    from inspection_core.usecases.training import TrainingLockedError, train_and_save, training_lock

    with training_lock(tmp_path / "m.inspector"):
        with pytest.raises(TrainingLockedError, match="another training is writing"):
            train_and_save(tmp_path / "no-data", ModelConfig(model="ganomaly"), TrainConfig(), tmp_path / "m")
    assert not (tmp_path / "m.inspector.lock").exists()
