"""The ``inspector`` command's rough edges (issue "Hardening, round 3"):
INVALID frames, file names that could forge a line, an overlay too large to
draw, a run that stops half-way (an error, SIGTERM, Ctrl-C), numbers out of
range, two trainings of one bundle, and the memory of huge images.

Every bad case ends in one line that names the file or the option, exit 2
(130 or 143 for a signal), and nothing printed is lost."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest


def in_process(*args: str) -> int:
    """The CLI in this process (torch imported once), as tests/core/test_cli.py runs it."""
    from inspection_core.cli.main import main

    try:
        return main(list(args))
    except SystemExit as exc:  # argparse's usage errors
        return int(exc.code or 0)


def run(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    rc = in_process(*args)
    out, err = capsys.readouterr()
    return rc, out, err


#: a tiny GAN at 32 px, one quick epoch: what the training tests need of a training
QUICK = ("--model", "ganomaly", "--preset", "quick", "--image-size", "32", "--width", "8", "--latent", "16", "--batch-size", "8",
         "--device", "cpu")


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _unescape(field: str) -> str:
    """The inverse of :func:`printable` (POSIX)."""
    return field.encode("latin-1", "backslashreplace").decode("unicode_escape")


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "inspection_core.cli.main", *args]


# --------------------------------------------------------------------------- 1. INVALID frames


@pytest.mark.fault("cli", "predict on a black frame (lens cap, dead camera) beside real parts",
                   "INVALID with its reason as a 4th field ('…\\tINVALID\\tblank frame'), counted in the summary "
                   "('1 INVALID'), a reason column in the CSV (it stopped with KeyError: 'INVALID')")
def test_predict_a_black_frame_is_invalid_with_its_reason(tiny_ganomaly_bundle: Path, demo_data: Path,
                                                          tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    for p in sorted((demo_data / "test" / "good").glob("*.png"))[:2]:
        shutil.copy(p, folder / p.name)
    black = folder / "zz_black.png"
    cv2.imwrite(str(black), np.zeros((64, 64, 3), np.uint8))
    rc, out, err = run(capsys, "predict", "--bundle", str(tiny_ganomaly_bundle), str(folder), "--csv",
                       str(tmp_path / "p.csv"), "--device", "cpu")
    assert rc == 0, err
    lines = out.splitlines()
    assert len(lines) == 3
    fields = lines[-1].split("\t")
    assert fields[0] == str(black) and fields[2:] == ["INVALID", "blank frame"]
    assert all(len(line.split("\t")) == 3 and line.split("\t")[2] != "INVALID" for line in lines[:2])
    assert "3 scored:" in err and ", 1 INVALID" in err
    rows = _csv(tmp_path / "p.csv")
    assert [r["verdict"] for r in rows] == [line.split("\t")[2] for line in lines]
    assert rows[-1]["reason"] == "blank frame" and rows[0]["reason"] == ""


# --------------------------------------------------------------------------- 2. file names


@pytest.mark.fault("cli", "predict on files whose names hold a newline, a tab, a backslash and a terminal escape "
                          "(one named like a forged verdict line)",
                   "one printed line per file, its name escaped (\\n, \\t, \\\\, \\x1b); the CSV holds the real "
                   "names (a newline split the line and forged a PASS)")
def test_control_characters_in_a_file_name_cannot_split_or_forge_a_line(tiny_bundle: Path, demo_data: Path,
                                                                        tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture) -> None:
    from inspection_core.cli.common import printable

    folder = tmp_path / "parts"
    folder.mkdir()
    source = min((demo_data / "test" / "good").glob("*.png"))
    names = ["a\nforged.png\t0\tPASS.png", "b\ttab.png", "c\\back\\nslash.png", "d\x1b[2Jclear.png", "e plain.png"]
    for name in names:
        shutil.copy(source, folder / name)
    rc, out, err = run(capsys, "predict", "--bundle", str(tiny_bundle), str(folder), "--csv", str(tmp_path / "p.csv"),
                       "--device", "cpu")
    assert rc == 0, err
    lines = out.splitlines()
    assert len(lines) == len(names)
    printed = [line.split("\t") for line in lines]
    assert all(len(f) == 3 for f in printed), lines  # a tab in a name is no field separator
    assert [_unescape(f[0]) for f in printed] == [str(folder / n) for n in sorted(names)]
    assert printed[0][0] == printable(folder / names[0]) and printed[0][0].endswith("a\\nforged.png\\t0\\tPASS.png")
    assert "\x1b" not in out and printed[3][0].endswith("d\\x1b[2Jclear.png")
    assert printed[2][0].endswith("c\\\\back\\\\nslash.png")
    assert [r["path"] for r in _csv(tmp_path / "p.csv")] == [str(folder / n) for n in sorted(names)]


def test_printable_escapes_what_splits_a_line_and_nothing_else() -> None:
    from inspection_core.cli.common import printable

    assert printable("plain/ü-ß 1.png") == "plain/ü-ß 1.png"
    assert printable("a\r\n\t\x00\x7f\x85\u2028b") == "a\\r\\n\\t\\x00\\x7f\\x85\\u2028b"
    assert printable(os.fsdecode(b"bad-\xff.png")) == "bad-\\xff.png"  # a byte that is not UTF-8


# --------------------------------------------------------------------------- 3. an overlay too large to draw

_LIMITED = """
import resource, sys
from inspection_core.cli.main import main
bundle, warm, parts, maps, out_csv, room = sys.argv[1:7]
assert main(["predict", "--bundle", bundle, warm, "--device", "cpu", "--maps", maps + "-warm"]) == 0
with open("/proc/self/status") as fh:  # what this process has mapped, every one-time cost paid
    mapped = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (mapped + int(room), resource.getrlimit(resource.RLIMIT_AS)[1]))
sys.exit(main(["predict", "--bundle", bundle, parts, "--device", "cpu", "--maps", maps, "--csv", out_csv]))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="address-space limit and /proc: Linux")
@pytest.mark.fault("cli", "predict --maps on a 10000 × 10000 image whose overlay cannot be allocated (the memory "
                          "left is enough to decode and score it, not to draw it)",
                   "'warning: no heat-map overlay for …1_big.png: not enough memory …', its verdict printed; the "
                   "other images scored and drawn; the CSV has every verdict (it stopped with exit 2)")
def test_an_overlay_too_large_to_draw_is_skipped_and_the_rest_go_on(tiny_bundle: Path, demo_data: Path,
                                                                    tmp_path: Path) -> None:
    warm, parts = tmp_path / "warm", tmp_path / "parts"
    warm.mkdir()
    parts.mkdir()
    small = sorted((demo_data / "test" / "good").glob("*.png"))[:2]
    for i, p in enumerate(small):
        shutil.copy(p, warm / p.name)
        shutil.copy(p, parts / f"{2 * i}_small.png")
    big = np.zeros((10000, 10000), np.uint8)  # 100 MB gray: 200 MB to decode, 700 MB to draw in colour
    big[::5] = 255
    big[:, ::3] = 90
    assert cv2.imwrite(str(parts / "1_big.png"), big, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    del big
    maps, out_csv = tmp_path / "maps", tmp_path / "p.csv"
    room = 400 * 10**6  # decoding needs 200 MB (OpenCV's PNG decoder holds a copy); drawing 400 to 700 MB
    proc = subprocess.run([sys.executable, "-c", _LIMITED, str(tiny_bundle), str(warm), str(parts), str(maps),
                           str(out_csv), str(room)], capture_output=True, text=True, timeout=120, check=False,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr
    printed = [line.split("\t") for line in proc.stdout.splitlines() if str(parts) in line]
    assert [Path(f[0]).name for f in printed] == ["0_small.png", "1_big.png", "2_small.png"]
    warnings = [line for line in proc.stderr.splitlines() if "no heat-map overlay" in line]
    assert len(warnings) == 1 and "1_big.png" in warnings[0] and "not enough memory" in warnings[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in maps.iterdir()) == ["0_small_heat.png", "2_small_heat.png"]
    assert [r["path"] for r in _csv(out_csv)] == [f[0] for f in printed]


# --------------------------------------------------------------------------- 4. a failure half-way


@pytest.mark.fault("cli", "predict --csv --maps fails half-way (an overlay's folder cannot be made: a file "
                          "has its name)",
                   "exit 2, one line naming the folder; the CSV is written with exactly the verdicts printed "
                   "(no CSV was written)")
def test_a_failure_half_way_still_writes_the_csv_of_what_was_printed(tiny_bundle: Path, demo_data: Path,
                                                                     tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "parts"
    for sub in ("a", "b"):
        (data / sub).mkdir(parents=True)
        for p in sorted((demo_data / "test" / "good").glob("*.png"))[:3]:
            shutil.copy(p, data / sub / p.name)
    maps = tmp_path / "maps"
    maps.mkdir()
    (maps / "b").write_text("a file where b's overlays should go")
    rc, out, err = run(capsys, "predict", "--bundle", str(tiny_bundle), str(data), "--recursive", "--maps",
                       str(maps), "--csv", str(tmp_path / "p.csv"), "--device", "cpu")
    assert rc == 2
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and str(maps / "b") in errors[0] and "Traceback" not in err
    printed = [line.split("\t")[0] for line in out.splitlines()]
    assert 3 < len(printed) < 6  # a/ scored, stopped at b/'s first overlay
    assert [r["path"] for r in _csv(tmp_path / "p.csv")] == printed


# --------------------------------------------------------------------------- 5. SIGTERM and SIGINT


@pytest.mark.skipif(sys.platform.startswith("win"), reason="POSIX signals")
@pytest.mark.fault("cli", "SIGTERM (a service stop, kill) or SIGINT half-way through 'inspector predict --csv'",
                   "one line 'inspector: interrupted (SIGTERM) during predict; N verdict(s) printed and written to "
                   "…', exit 143 (SIGINT: 130); the CSV holds exactly the printed verdicts (SIGTERM killed it: "
                   "no CSV)")
@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_during_predict_writes_the_csv_and_exits_with_its_status(sig: int, status: int, tiny_bundle: Path,
                                                                          demo_data: Path, tmp_path: Path) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    source = min((demo_data / "test" / "good").glob("*.png"))
    for i in range(2000):  # far more than it scores before the signal; hard links cost nothing
        os.link(source, folder / f"{i:04d}.png")
    out_csv = tmp_path / "p.csv"
    proc = subprocess.Popen(_cli("predict", "--bundle", str(tiny_bundle), str(folder), "--csv", str(out_csv),
                                 "--batch-size", "1", "--device", "cpu"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.stdout is not None
    printed = []
    while len(printed) < 5:
        line = proc.stdout.readline()
        assert line, "predict ended before the signal"
        printed.append(line)
    proc.send_signal(sig)
    printed += proc.stdout.read().splitlines(keepends=True)  # not communicate(): it skips what readline buffered
    assert proc.stderr is not None
    err = proc.stderr.read()
    assert proc.wait(60) == status, err
    assert len(printed) < 2000, "it ended before the signal"
    notice = [line for line in err.splitlines() if "interrupted" in line]
    expected = (f"inspector: interrupted ({signal.Signals(sig).name}) during predict; {len(printed)} verdict(s) "
                f"printed and written to '{out_csv}'")
    assert notice == [expected], err
    assert "Traceback" not in err
    assert [[r["path"], r["verdict"]] for r in _csv(out_csv)] == [
        [f[0], f[2]] for f in (line.rstrip("\n").split("\t") for line in printed)]


@pytest.mark.skipif(sys.platform.startswith("win"), reason="POSIX signals")
@pytest.mark.fault("cli", "SIGTERM during 'inspector train'",
                   "'inspector: interrupted (SIGTERM) during train; no bundle written …', exit 143; no bundle, "
                   "temporary file or lock left (SIGTERM killed it without a word)")
def test_sigterm_during_training_leaves_nothing_behind(demo_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "models" / "m.inspector"
    out.parent.mkdir()
    proc = subprocess.Popen(_cli("train", "--data", str(demo_data), "--model", "skip-ganomaly", "--out", str(out),
                                 *QUICK, "--epochs", "500"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("epoch 1/"):
            break
    else:
        raise AssertionError("training never reported an epoch")
    assert (out.parent / "m.inspector.lock").read_text().strip() == str(proc.pid)  # held while it trains
    proc.send_signal(signal.SIGTERM)
    err = proc.stderr.read()
    assert proc.wait(60) == 143, err
    notice = [line for line in err.splitlines() if "interrupted" in line]
    assert notice == [f"inspector: interrupted (SIGTERM) during train; no bundle written ('{out}' not created)"], err
    assert "Traceback" not in err
    assert list(out.parent.iterdir()) == []


# --------------------------------------------------------------------------- 6. numbers out of range


@pytest.mark.fault("cli", "numbers out of range: --seed 99999999999999999999999 or -1, --epochs/--updates/"
                          "--batch-size/--early-stopping huge (train, predict, evaluate, calibrate), --lr, "
                          "--record-wait, --target 1e400 or nan, --bootstrap huge or negative",
                   "exit 2, one line naming the option, before any work: '--seed must be at most 4294967295, got "
                   "99999999…9999 (23 digits)' (it said 'Overflow when unpacking long long' after reading the "
                   "data, trained with an infinite learning rate, or 'Maximum allowed dimension exceeded')")
@pytest.mark.parametrize("args, message", [
    (("train", "--seed", "99999999999999999999999"),
     "--seed must be at most 4294967295, got 99999999…9999 (23 digits)"),
    (("train", "--seed", "-1"), "--seed must be at least 0, got -1"),
    (("train", "--epochs", "10000000000"), "--epochs must be at most 100000, got 10000000000"),
    (("train", "--updates", "1" + "0" * 30),
     "--updates must be at most 100000000, got 10000000…0000 (31 digits)"),
    (("train", "--batch-size", "99999999999999999999999"), "--batch-size must be at most 65536"),
    (("train", "--early-stopping", "-3"), "--early-stopping must be at least 0, got -3"),
    (("train", "--lr", "1e400"), "--lr must be a finite number, got inf"),
    (("train", "--lr", "0"), "--lr must be above 0, got 0.0"),
    (("train", "--val-fraction", "nan"), "--val-fraction must be a finite number, got nan"),
    (("predict", "{tmp}", "--batch-size", "99999999999999999999999"), "--batch-size must be at most 65536"),
    (("predict", "{tmp}", "--record-wait", "1e400"), "--record-wait must be a finite number, got inf"),
    (("evaluate", "--data", "{tmp}", "--batch-size", "1" + "0" * 25), "--batch-size must be at most 65536"),
    (("calibrate", "--data", "{tmp}", "--strategy", "manual", "--target", "1e400"),
     "--target must be a finite number, got inf"),
    (("calibrate", "--data", "{tmp}", "--review-band", "nan", "1"), "--review-band LOW must be a finite number"),
    (("calibrate", "--data", "{tmp}", "--strategy", "youden", "--bootstrap", "99999999999999999999999"),
     "--bootstrap must be at most 1000000"),
    (("calibrate", "--data", "{tmp}", "--strategy", "youden", "--batch-size", "99999999999999999999999"),
     "--batch-size must be at most 65536"),
])
def test_a_number_out_of_range_is_refused_naming_its_option(args: tuple, message: str, demo_data: Path,
                                                            tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cmd, rest = args[0], [a.format(tmp=tmp_path) for a in args[1:]]
    where = (["--data", str(demo_data), "--out", str(tmp_path / "m"), *QUICK] if cmd == "train"
             else ["--bundle", str(tmp_path / "none.inspector")])
    rc, out, err = run(capsys, cmd, *where, *rest)
    assert rc == 2 and err.startswith(f"inspector {cmd}: error: {message}"), err
    assert err.count("\n") == 1 and out == "", err  # one line, before the bundle or the data is opened
    assert not (tmp_path / "m.inspector").exists()


# --------------------------------------------------------------------------- 7. two trainings, one bundle

_HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, f"{os.getpid()}\\n".encode())
print("held", flush=True)
time.sleep(120)
"""


@pytest.mark.skipif(sys.platform.startswith("win"), reason="the test holds the lock with flock")
@pytest.mark.fault("cli", "'inspector train --out m' while another training writes m; then again after that "
                          "one was killed (-9), its lock file left behind",
                   "the second refuses at once: \"another training is writing 'm.inspector' (pid N)\", exit 2; "
                   "the stale lock of the dead one is taken over and the training saves (both said 'saved', "
                   "the later bundle silently won)")
def test_a_second_training_of_one_bundle_is_refused_and_a_dead_ones_lock_taken_over(demo_data: Path,
                                                                                   tmp_path: Path,
                                                                                   capsys: pytest.CaptureFixture
                                                                                   ) -> None:
    out = tmp_path / "m.inspector"
    lock = tmp_path / "m.inspector.lock"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        rc, out_text, err = run(capsys, "train", "--data", str(demo_data), "--out", str(tmp_path / "m"), *QUICK,
                                "--epochs", "1", "--no-evaluate")
        assert rc == 2 and out_text == "", err
        assert err == f"inspector train: error: another training is writing '{out}' (pid {holder.pid}); wait for it " \
                      "to end or choose another --out\n"
        assert not out.exists() and lock.read_text() == f"{holder.pid}\n"  # the holder's lock untouched
    finally:
        holder.kill()  # -9: the lock file stays, naming a process that is gone
        holder.wait()
    assert lock.exists()
    rc, out_text, err = run(capsys, "train", "--data", str(demo_data), "--out", str(tmp_path / "m"), *QUICK,
                            "--epochs", "1", "--no-evaluate")
    assert rc == 0, err
    assert f"saved {out}" in out_text and out.is_file() and not lock.exists()


# --------------------------------------------------------------------------- 8. memory of huge images


@pytest.mark.fault("cli", "predict --maps on 3 colour 6000 × 6000 PNGs, one decoded image over the batch budget",
                   "the peak is one image and what decoding or drawing it takes (about 2 images), not 3: the "
                   "previous image is let go before the next is decoded and the overlay is blended in place "
                   "(16 colour 12000 × 12000 PNGs: 2.02 GB -> 1.63 GB peak)")
def test_predict_holds_one_huge_image_at_a_time(tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture) -> None:
    from _memory import MiB, peak_growth

    from inspection_core.cli import predict

    monkeypatch.setattr(predict, "MAX_BATCH_BYTES", 20 * MiB)  # the 256 MB budget, scaled to the test
    image = np.zeros((6000, 6000, 3), np.uint8)
    image[::7] = 200
    image[:, ::5, 1] = 120
    folder, warm = tmp_path / "big", tmp_path / "warm"
    folder.mkdir()
    warm.mkdir()
    cv2.imwrite(str(warm / "0.png"), image[:64, :64])
    data = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])[1]
    for i in range(3):
        data.tofile(str(folder / f"{i}.png"))
    del data
    args = ("--bundle", str(tiny_bundle), "--device", "cpu")
    in_process("predict", str(warm), *args, "--maps", str(tmp_path / "warm-maps"))  # warm: the model's own memory
    rc, grew = peak_growth(lambda: in_process("predict", str(folder), *args, "--maps", str(tmp_path / "maps")))
    assert rc == 0 and len(list((tmp_path / "maps").glob("*_heat.png"))) == 3, capsys.readouterr().err
    assert grew < 2.5 * image.nbytes, f"peak {grew / MiB:.0f} MiB over {image.nbytes / MiB:.0f} MiB images"
