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
                       "--preset", "quick", "--image-size", "32", "--epochs", "1", "--width", "8", "--latent", "16", "--batch-size", "8",
                       "--device", "cpu")
    assert rc == 0, err
    assert bundle.exists() and "saved" in out and "test split: image AUROC" in out
    from inspection_core.acceleration import fast_precision

    # the fast path's check, where this CPU has one, is reported once, in the summary
    assert (out + err).count("verdicts differ from fp32") == (1 if fast_precision("cpu") == "bf16" else 0)
    assert "verdicts differ from fp32" not in err

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

    # a whole test folder: its sub-folders hold files of the same names, and each keeps its own overlay
    rc, out, err = run(capsys, "predict", "--bundle", str(bundle), str(tmp_path / "demo" / "test"), "--recursive",
                       "--maps", str(tmp_path / "all-maps"))
    assert rc == 0, err
    scored = [line.split("\t")[0] for line in out.splitlines() if line.endswith(("\tPASS", "\tFAIL", "\tREVIEW"))]
    maps = sorted((tmp_path / "all-maps").rglob("*_heat.png"))
    assert len(maps) == len(scored) == 14
    assert (tmp_path / "all-maps" / "good").is_dir() and len({m.name for m in maps}) < len(maps)  # same names, kept apart


@pytest.mark.parametrize(
    "args, message",
    [
        (("train", "--data", "{tmp}/nothing", "--out", "{tmp}/x.inspector"), "does not exist"),
        (("evaluate", "--bundle", "{tmp}/none.inspector", "--data", "{tmp}"), "file not found"),
        (("predict", "--bundle", "{tmp}/junk.inspector", "{tmp}"), "not a model bundle"),
        (("train", "--data", "{tmp}", "--out", "{tmp}/x", "--model", "ganomaly", "--image-size", "48"),
         "image size must be one of"),
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


# --------------------------------------------------------------------------- bad arguments and faults (issue 13)


@pytest.mark.fault("cli", "--batch-size 0, -1 or 'x' (predict, evaluate, calibrate); errors of calibrate",
                   "exit 2, one line: '--batch-size must be at least 1, got 0' (it said 'range() arg 3 must not "
                   "be zero' or '0 scored')")
@pytest.mark.parametrize("cmd", [
    ("predict", "--bundle", "{bundle}", "{tmp}"),
    ("evaluate", "--bundle", "{bundle}", "--data", "{tmp}"),
    ("calibrate", "--bundle", "{bundle}", "--data", "{tmp}", "--strategy", "youden"),
])
@pytest.mark.parametrize("value, message", [("0", "--batch-size must be at least 1, got 0"),
                                            ("-1", "--batch-size must be at least 1, got -1"),
                                            ("x", "argument --batch-size: invalid int value: 'x'")])
def test_a_bad_batch_size_is_refused_with_status_2(cmd: tuple, value: str, message: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    rc = in_process(*(a.format(tmp=tmp_path, bundle=tmp_path / "b.inspector") for a in cmd), "--batch-size", value)
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err
    if value != "x":
        assert err.count("\n") == 1, err  # one line, before the bundle is even opened


def test_calibrate_errors_exit_2(tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for args, message in (((), "give --strategy"), (("--strategy", "manual"), "needs --target"),
                          (("--strategy", "youden"), "does not exist")):
        rc = in_process("calibrate", "--bundle", str(tiny_bundle), "--data", str(tmp_path / "none"), *args)
        err = capsys.readouterr().err
        assert rc == 2 and message in err and err.count("\n") == 1, err


@pytest.mark.fault("cli", "predict on 8 copies of a 2500 × 2500 PNG (a few KB each) at the default batch size",
                   "decoded images held at once stay under 256 MB (plus one): the extra peak is about one image")
def test_predict_does_not_hold_a_batch_of_huge_images(tiny_bundle: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture) -> None:
    import cv2
    import numpy as np

    import inspection_core.cli.predict as predict
    from _memory import MiB, peak_growth

    monkeypatch.setattr(predict, "MAX_BATCH_BYTES", 20 * MiB)  # the 256 MB budget, scaled to the test
    image = np.zeros((2500, 2500, 3), np.uint8)
    image[::7] = 200
    data = cv2.imencode(".png", image)[1].tobytes()
    one, many = tmp_path / "one", tmp_path / "many"
    for folder, n in ((one, 1), (many, 8)):
        folder.mkdir()
        for i in range(n):
            (folder / f"{i}.png").write_bytes(data)
    in_process("predict", "--bundle", str(tiny_bundle), str(one), "--device", "cpu")  # warm: the model's own memory
    rc1, base = peak_growth(lambda: in_process("predict", "--bundle", str(tiny_bundle), str(one), "--device", "cpu"))
    rc8, grew = peak_growth(lambda: in_process("predict", "--bundle", str(tiny_bundle), str(many), "--device", "cpu"))
    assert rc1 == rc8 == 0 and len(capsys.readouterr().out.splitlines()) == 10  # 1 + 1 + 8 verdicts printed
    extra = grew - base
    assert extra < 3 * image.nbytes, f"8 images took {extra / MiB:.0f} MiB more than one ({image.nbytes / MiB:.0f} MiB each)"


@pytest.mark.fault("cli", "predict --record while another writer holds the history's lock for 3 s",
                   "verdicts spooled meanwhile ('warning: … another program holds the database's lock'), all "
                   "recorded before predict exits (it stopped with 'database is locked', a printed verdict unrecorded)")
def test_predict_record_waits_out_a_held_lock(tiny_bundle: Path, demo_data: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    import sqlite3
    import threading

    from inspection_core.history import HistoryDB

    db = tmp_path / "h.sqlite3"
    HistoryDB(db).close()
    con = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    con.execute("BEGIN IMMEDIATE")
    threading.Timer(3.0, lambda: con.execute("ROLLBACK")).start()
    rc, out, err = run(capsys, "predict", "--bundle", str(tiny_bundle), str(demo_data / "test" / "good"),
                       "--record", str(db), "--batch-size", "4", "--device", "cpu")
    assert rc == 0, err
    printed = [line.split("\t")[0] for line in out.splitlines()]
    assert len(printed) == 12 and "another program holds the database's lock" in err
    with HistoryDB(db) as h:
        assert sorted(r.image_ref for r in h.query(limit=100)) == sorted(printed)
    con.close()


@pytest.mark.fault("cli", "predict --record other.db (an SQLite file of another program)",
                   "exit 2 'is an SQLite database of another program' before anything is scored; the file untouched")
def test_predict_refuses_another_programs_database(tiny_bundle: Path, demo_data: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    import sqlite3

    other = tmp_path / "other.db"
    with sqlite3.connect(other) as c:
        c.execute("CREATE TABLE orders (id INTEGER)")
    before = other.read_bytes()
    rc, out, err = run(capsys, "predict", "--bundle", str(tiny_bundle), str(demo_data / "test" / "good"),
                       "--record", str(other), "--device", "cpu")
    assert rc == 2 and "another program" in err and out == "" and other.read_bytes() == before


@pytest.mark.fault("cli", "kill -9 of 'predict --record' half-way",
                   "the database passes integrity_check and holds every verdict that was printed")
def test_kill_9_of_predict_record_loses_no_printed_verdict(tiny_bundle: Path, demo_data: Path, tmp_path: Path) -> None:
    import os
    import shutil
    import signal
    import sqlite3
    import subprocess
    import sys

    folder = tmp_path / "parts"
    folder.mkdir()
    for i in range(20):
        for p in sorted((demo_data / "test" / "good").glob("*.png")):
            shutil.copy(p, folder / f"{i:02d}_{p.name}")
    db = tmp_path / "h.sqlite3"
    proc = subprocess.Popen([sys.executable, "-m", "inspection_core.cli.main", "predict", "--bundle", str(tiny_bundle),
                             str(folder), "--record", str(db), "--batch-size", "4", "--device", "cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    printed = []
    assert proc.stdout is not None
    while len(printed) < 30:
        line = proc.stdout.readline()
        assert line, "predict ended before it was killed"
        printed.append(line.split("\t")[0])
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    printed += [line.split("\t")[0] for line in proc.stdout.read().splitlines() if "\t" in line]
    assert len(printed) < 240, "killed half-way"
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    recorded = {r[0] for r in con.execute("SELECT image_ref FROM inspections")}
    con.close()
    assert set(printed) <= recorded


@pytest.mark.fault("cli", "demo-data --size 100000; a command that runs out of memory",
                   "exit 2, one line ('between 16 and 4096 px'; 'not enough memory (…)'), never a traceback")
def test_absurd_sizes_and_memory_errors_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture) -> None:
    rc, _out, err = run(capsys, "demo-data", str(tmp_path / "d"), "--size", "100000")
    assert rc == 2 and "between 16 and 4096 px, got 100000" in err and err.count("\n") == 1
    import inspection_core.cli.demo as demo

    def exhausted(_args: object) -> int:
        raise MemoryError("Unable to allocate 149. GiB for an array")

    monkeypatch.setattr(demo, "run", exhausted)  # the parser takes the module's run when it is built
    rc, _out, err = run(capsys, "demo-data", str(tmp_path / "d"))
    assert rc == 2 and err.strip() == "inspector demo-data: error: not enough memory (Unable to allocate 149. GiB for an array)"


@pytest.mark.slow  # a training process of its own (torch import): 3 s
@pytest.mark.fault("cli", "Ctrl-C (SIGINT) during 'inspector train'",
                   "'inspector: interrupted', exit 130; no bundle and no temporary file left")
def test_ctrl_c_during_training_leaves_nothing_behind(demo_data: Path, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    out = tmp_path / "models" / "m.inspector"
    out.parent.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "inspection_core.cli.main", "train", "--data", str(demo_data),
                             "--model", "skip-ganomaly", "--out", str(out), "--preset", "quick", "--image-size", "32", "--width", "8",
                             "--latent", "16", "--epochs", "500", "--batch-size", "8", "--device", "cpu"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("epoch 1/"):
            break
    else:
        raise AssertionError("training never reported an epoch")
    proc.send_signal(signal.SIGINT)
    err = proc.stderr.read()
    assert proc.wait(60) == 130 and "inspector: interrupted" in err and "Traceback" not in err
    assert list(out.parent.iterdir()) == []


def test_progress_lines_say_a_fit_for_one_pass_families_and_epochs_for_update_loops(capsys: pytest.CaptureFixture[str]) -> None:
    from inspection_core.cli.common import ProgressBar
    from inspection_core.progress import ProgressEvent

    # PatchCore's one pass: one round, no losses
    fit = ProgressBar("train patchcore", enabled=False, one_pass=True)
    fit(ProgressEvent("epoch", 1, 1, 4, 4, 2.0, 0.0, metrics={"val_mean_score": 1.25}))
    fit.close()
    # an update loop: losses and a time left
    loop = ProgressBar("train ganomaly", enabled=False)
    loop(ProgressEvent("epoch", 2, 5, 10, 10, 2.0, 6.0, losses={"g_loss": 0.5}, metrics={"val_mean_score": 0.75}))
    loop.close()
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["validation of the fitted model:  val_mean_score=1.2500",
                     "epoch 2/5  g_loss=0.5  val_mean_score=0.7500  eta 6s"]
