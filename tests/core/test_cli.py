"""The ``inspector`` command end to end on generated data (in this process:
torch is imported once, not once per sub-command)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest


def in_process(*args: str) -> int:
    """Run the CLI in this process (fast: torch is already imported)."""
    from inspection_core.cli.main import main

    try:
        return main(list(args))
    except SystemExit as exc:  # argparse's --help and usage errors
        return int(exc.code or 0)


def run(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    rc = in_process(*args)
    out, err = capsys.readouterr()
    return rc, out, err


def test_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """demo-data, train, evaluate with a report, predict: the README's sequence, in this process."""
    rc, out, err = run(capsys, "demo-data", str(tmp_path / "demo"), "--size", "64", "--train", "30", "--test-good", "6",
                       "--test-defect", "2")
    assert rc == 0, err
    assert "30 train" in out
    bundle = tmp_path / "m.inspector"
    rc, out, err = run(capsys, "train", "--data", str(tmp_path / "demo"), "--model", "ganomaly", "--out", str(bundle),
                       "--image-size", "32", "--epochs", "1", "--width", "8", "--latent", "16", "--batch-size", "8",
                       "--device", "cpu")
    assert rc == 0, err
    assert bundle.exists() and "saved" in out and "test split: image AUROC" in out

    rc, out, err = run(capsys, "evaluate", "--bundle", str(bundle), "--data", str(tmp_path / "demo"), "--report",
                       str(tmp_path / "rep"))
    assert rc == 0, err
    assert "(test split)" in out and "report:" in out
    metrics = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    for key in ("image_auroc", "image_ap", "f1", "balanced_accuracy", "threshold", "confusion", "n_good", "n_defect", "pixel_auroc"):
        assert key in metrics
    assert metrics["n_good"] == 6 and metrics["n_defect"] == 8
    assert set(metrics["confusion"]) == {"tp", "fp", "tn", "fn"}
    assert sum(metrics["confusion"].values()) == 14
    rows = list(csv.DictReader((tmp_path / "rep" / "scores.csv").open()))
    assert len(rows) == 14 and {r["verdict"] for r in rows} <= {"PASS", "FAIL"}
    assert (tmp_path / "rep" / "index.html").is_file() and (tmp_path / "rep" / "roc.png").is_file()

    folder = tmp_path / "demo" / "test" / "scratch"
    (folder / "broken.png").write_bytes(b"nope")
    rc, out, err = run(capsys, "predict", "--bundle", str(bundle), str(folder), "--csv", str(tmp_path / "p.csv"),
                       "--maps", str(tmp_path / "maps"))
    assert rc == 0, err
    assert "broken.png" in err and "skipped" in err
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert len(rows) == 2
    assert len(list((tmp_path / "maps").glob("*_heat.png"))) == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (("train", "--data", "{tmp}/nothing", "--out", "{tmp}/x.inspector"), "does not exist"),
        (("evaluate", "--bundle", "{tmp}/none.inspector", "--data", "{tmp}"), "file not found"),
        (("predict", "--bundle", "{tmp}/junk.inspector", "{tmp}"), "not a model bundle"),
        (("train", "--data", "{tmp}", "--out", "{tmp}/x", "--image-size", "48"), "image size must be one of"),
    ],
)
def test_errors_are_one_line_and_nonzero(tmp_path: Path, args: tuple, message: str, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "junk.inspector").write_text("junk")
    rc = in_process(*(a.format(tmp=tmp_path) for a in args))
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err
    assert "Traceback" not in err
    assert len([line for line in err.splitlines() if "error" in line]) == 1


@pytest.mark.parametrize("cmd", ["demo-data", "train", "evaluate", "predict", "calibrate"])
def test_help_for_every_command(cmd: str, capsys: pytest.CaptureFixture) -> None:
    assert in_process(cmd, "--help") == 0
    assert f"usage: inspector {cmd}" in capsys.readouterr().out
