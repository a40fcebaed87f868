"""Hardening, round 3: loose manifest values, messages that named nothing,
PatchCore memory banks that failed only at the first part, and a history
made unwritable while a line records. Every bad input ends in one line that
names the file and the problem."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from inspection_core.bundle import Bundle, BundleError, load_bundle, read_manifest
from inspection_core.config import ModelConfig
from inspection_core.history import HistoryDB, Recorder, VerdictSpool

T0 = 1_714_550_400.0  # 2024-05-01 08:00 UTC


# --------------------------------------------------------------------------- bundles
def _rewrite(src: Path, dst: Path, manifest_fn=None, text_fn=None, state_fn=None) -> Path:
    """A copy of the bundle ``src`` with its manifest (as a dict, then as
    JSON text) and its state dict changed; the weights' checksum and size
    are recorded anew, so that only the change is wrong."""
    with zipfile.ZipFile(src) as zf:
        m = json.loads(zf.read("manifest.json"))
        w = zf.read("weights.pt")
    if state_fn:
        import torch

        state = torch.load(io.BytesIO(w), map_location="cpu", weights_only=True)
        state = state_fn(state)
        buf = io.BytesIO()
        torch.save(state, buf)
        w = buf.getvalue()
        m["weights"].update(sha256=hashlib.sha256(w).hexdigest(), bytes=len(w))
    if manifest_fn:
        m = manifest_fn(m) or m
    text = json.dumps(m)
    if text_fn:
        text = text_fn(text)
    with zipfile.ZipFile(dst, "w") as zf:
        zf.writestr("manifest.json", text)
        zf.writestr("weights.pt", w)
    return dst


def _set(path: str, value):
    def fn(m: dict) -> dict:
        *keys, last = path.split(".")
        d = m
        for k in keys:
            d = d[k]
        d[last] = value
        return m
    return fn


def _refused(bad: Path) -> str:
    """The one-line message every way of loading gives (read_manifest,
    load_bundle, Inspector), checked to name the file."""
    from inspection_core.inference import Inspector

    messages = []
    for load in (read_manifest, load_bundle, lambda p: Inspector(p, device="cpu")):
        with pytest.raises(BundleError) as err:
            load(bad)
        messages.append(str(err.value))
    assert len(set(messages)) == 1, messages
    message = messages[0]
    assert f"'{bad}'" in message and "\n" not in message, message
    return message


@pytest.mark.fault("bundle", "loose manifest values: NaN or infinite score statistics, format_version true, "
                   "inference precision 'fp8', a key twice in manifest.json (all were accepted)",
                   "BundleError naming the bundle and the field")
@pytest.mark.parametrize("change, text_change, message", [
    (_set("score_stats.q99", float("nan")), None, "'score_stats.q99' must be a finite number, got nan"),
    (_set("score_stats.mean", float("inf")), None, "'score_stats.mean' must be a finite number, got inf"),
    (_set("score_stats.max", float("-inf")), None, "'score_stats.max' must be a finite number, got -inf"),
    (_set("format_version", True), None, "format_version must be an integer, got true (true/false)"),
    (_set("inference.precision", "fp8"), None, "'inference.precision' must be one of fp32, bf16, fp16, got 'fp8'"),
    (None, lambda t: t.replace('"format_version"', '"threshold": {"high": 1e9, "low": null}, "format_version"', 1),
     "the key 'threshold' appears twice"),
    (None, lambda t: t.replace('"model": {', '"model": {"channels": 1, ', 1), "the key 'channels' appears twice"),
], ids=["nan-stat", "inf-stat", "minus-inf-stat", "format-true", "fp8", "threshold-twice", "nested-key-twice"])
def test_loose_manifest_values_are_refused(tiny_ganomaly_bundle: Path, tmp_path: Path, change, text_change,
                                           message: str) -> None:
    bad = _rewrite(tiny_ganomaly_bundle, tmp_path / "loose.inspector", manifest_fn=change, text_fn=text_change)
    got = _refused(bad)
    assert message in got, got


@pytest.mark.fault("bundle", "a threshold of 10**400 (no float holds it), model params as a list, channels as "
                   "the text \"3\" (in the model or the preprocessing section)",
                   "BundleError naming the field and showing the value with its kind (was 'int too large to "
                   "convert to float', 'cannot convert dictionary update sequence', 'channels must be 1 or 3, got 3')")
@pytest.mark.parametrize("change, text_change, message", [
    (_set("threshold.high", 123456.5), lambda t: t.replace("123456.5", "1" + "0" * 400),
     "'threshold.high' is 10000000…0000 (a whole number of 401 digits, too large to compute with)"),
    (_set("model.params", [1, 2]), None, "model params must be an object of name: value pairs, got [1, 2] (a list)"),
    (_set("model.channels", "3"), None, "channels must be 1 or 3, got '3' (text)"),
    (_set("preprocessing.channels", "3"), None, "'preprocessing.channels' must be a whole number, got '3' (text)"),
    (_set("model.image_size", "32"), None, "image size must be a whole number, got '32' (text)"),
], ids=["threshold-1e400", "params-list", "channels-text", "preprocessing-channels-text", "size-text"])
def test_bad_values_are_named_with_their_kind(tiny_ganomaly_bundle: Path, tmp_path: Path, change, text_change,
                                              message: str) -> None:
    bad = _rewrite(tiny_ganomaly_bundle, tmp_path / "odd.inspector", manifest_fn=change, text_fn=text_change)
    got = _refused(bad)
    assert message in got, got
    for old in ("int too large to convert", "dictionary update sequence", "got 3\n"):
        assert old not in got + "\n", got


def test_the_known_precisions_are_the_scoring_paths() -> None:
    """bundle.py keeps its own list (it must not import torch to read a manifest)."""
    from inspection_core import acceleration, bundle

    assert bundle.KNOWN_PRECISIONS == acceleration.PRECISIONS


@pytest.mark.fault("training", "a ModelConfig given through the API with channels \"3\", channels true, params "
                   "as a list, an image size of text",
                   "ValueError naming the field and showing the value with its kind (channels \"3\" said "
                   "'got 3'; a params list gave 'cannot convert dictionary update sequence')")
def test_a_model_config_through_the_api_names_the_bad_value() -> None:
    from inspection_core.models import build_model

    cases = [
        (lambda: ModelConfig("ganomaly", 32, channels="3").validate(), "channels must be 1 or 3, got '3' (text)"),
        (lambda: ModelConfig("ganomaly", 32, channels=True).validate(), "channels must be 1 or 3, got true (true/false)"),
        (lambda: build_model(ModelConfig("ganomaly", 32, channels="3")), "channels must be 1 or 3, got '3' (text)"),
        (lambda: build_model(ModelConfig("ganomaly", 32, params=[1, 2])),
         "model params must be an object of name: value pairs, got [1, 2] (a list)"),
        (lambda: ModelConfig.from_dict({"model": "ganomaly", "params": [["latent_dim", 8]]}),
         "model params must be an object of name: value pairs, got [['latent_dim', 8]] (a list)"),
        (lambda: ModelConfig("ganomaly", "128").validate(), "image size must be a whole number, got '128' (text)"),
        (lambda: ModelConfig(None, 32).validate(), "model must be the name of a model family, got null"),
    ]
    for make, message in cases:
        with pytest.raises(ValueError) as err:
            make()
        assert message in str(err.value), str(err.value)


def _bank(fn):
    def change(state: dict) -> dict:
        state["memory_bank"] = fn(state["memory_bank"]).contiguous()
        return state
    return change


@pytest.mark.fault("bundle", "a PatchCore bundle whose memory bank has 0 rows, rows of another length than the "
                   "descriptors', or texture statistics of another size (all loaded, then failed at the first part "
                   "with 'the memory bank is empty', 'mat1 and mat2 shapes cannot be multiplied' or a ValueError "
                   "naming no bundle)",
                   "BundleError at load (load_bundle, Inspector, Bundle.build_model) naming the bundle and the problem")
@pytest.mark.parametrize("state_fn, message", [
    (_bank(lambda b: b[:0]), "the memory bank has 0 rows"),
    (_bank(lambda b: b[:, :100]), "the memory bank rows have 100 values, the descriptors 384"),
    (_bank(lambda b: b[0]), "the memory bank must be a table of descriptors (2 dimensions)"),
    (lambda s: {**s, "global_mean": s["global_mean"][:7].clone()},
     "the bundle's texture statistics (7 values) do not fit a backbone of 384 channels"),
], ids=["no-rows", "short-rows", "one-dimension", "texture-size"])
def test_a_patchcore_bank_that_cannot_score_is_refused_at_load(tiny_patchcore_bundle: Path, tmp_path: Path,
                                                               state_fn, message: str) -> None:
    import torch

    bad = _rewrite(tiny_patchcore_bundle, tmp_path / "bank.inspector", state_fn=state_fn)
    read_manifest(bad)  # the manifest is fine: the weights are not
    t0 = time.monotonic()
    with pytest.raises(BundleError) as err:
        load_bundle(bad)
    got = str(err.value)
    assert f"'{bad}'" in got and message in got and "\n" not in got, got
    with pytest.raises(BundleError, match="memory bank|texture statistics"):
        from inspection_core.inference import Inspector

        Inspector(bad, device="cpu")
    assert time.monotonic() - t0 < 10.0
    # a Bundle made in memory (as training makes one) is checked when it builds its model
    with zipfile.ZipFile(bad) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        state = torch.load(io.BytesIO(zf.read("weights.pt")), map_location="cpu", weights_only=True)
    with pytest.raises(BundleError) as err:
        Bundle(path=bad, manifest=manifest, state_dict=state).build_model()
    assert f"'{bad}'" in str(err.value) and message in str(err.value), str(err.value)


def test_a_good_patchcore_bundle_still_loads_and_scores(tiny_patchcore_bundle: Path) -> None:
    import numpy as np

    from inspection_core.inference import Inspector

    b = load_bundle(tiny_patchcore_bundle)
    assert b.state_dict["memory_bank"].shape[0] > 0
    scores, maps, _recon = Inspector(b, device="cpu").score_images(np.full((2, 64, 64, 3), 128, np.uint8))
    assert scores.shape == (2,) and np.isfinite(scores).all() and maps.shape[0] == 2


# --------------------------------------------------------------------------- history
def _row(i: int) -> dict:
    return dict(score=0.01 * i, verdict="PASS", threshold_high=0.5, image_ref=f"part{i:03d}.png", station="st",
                time=T0 + i, source="folder:/parts")


def _chattr(flag: str, path: Path) -> bool:
    return subprocess.run(["chattr", flag, str(path)], capture_output=True, check=False).returncode == 0


def _needs_chattr(path: Path) -> None:
    if os.name != "posix" or os.geteuid() != 0 or shutil.which("chattr") is None or not _chattr("+i", path):
        pytest.skip("needs chattr +i (root, on a file system with immutable files)")


def _warnings(caplog: pytest.LogCaptureFixture, path: Path) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and str(path) in r.getMessage()]


def _wait(cond, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.05)
    return cond()


@pytest.mark.fault("history", "the history made immutable (chattr +i) while a line records (every verdict went "
                   "into a WAL that could never be written back, without a word)",
                   "noticed before the next write: one warning naming the database; verdicts spooled, written in "
                   "once the file is writable again")
def test_a_history_made_immutable_mid_run_spools_and_says_so_once(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    path = tmp_path / "h.sqlite3"
    db = HistoryDB(path)
    rec = Recorder(db, retry_s=0.05)
    assert rec.record(**_row(0)).record_id is not None
    wal = path.with_name(path.name + "-wal")
    wal_before = wal.stat().st_size
    _needs_chattr(path)
    try:
        outs = [rec.record(**_row(i)) for i in range(1, 9)]
        time.sleep(0.3)  # the retry thread tries again meanwhile: no second warning
        assert all(o.spooled and o.record_id is None for o in outs), outs
        assert rec.state == "spooling" and rec.pending == 8
        assert "made read-only or immutable while recording" in rec.message and str(path) in rec.message
        assert wal.stat().st_size == wal_before  # nothing went where it could not be written back
        warned = _warnings(caplog, path)
        assert len(warned) == 1 and "kept in the spool" in warned[0], warned
    finally:
        _chattr("-i", path)
    assert _wait(lambda: rec.state == "ok" and rec.pending == 0), (rec.state, rec.message)
    assert sorted(r.image_ref for r in db.query(limit=100)) == [f"part{i:03d}.png" for i in range(9)]
    rec.close()
    db.close()
    assert not wal.exists() and not VerdictSpool(path).files[0].exists()


@pytest.mark.fault("history", "the history file replaced by a copy of itself while a line records (the rows went "
                   "on into the replaced file, which nobody reads)",
                   "noticed before the next write, said once naming the database; verdicts spooled and written "
                   "into the new file by the next start")
def test_a_history_file_replaced_mid_run_is_noticed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    path = tmp_path / "h.sqlite3"
    db = HistoryDB(path)
    rec = Recorder(db, retry_s=0.05)
    assert rec.record(**_row(0)).record_id is not None
    db._db().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copy(path, tmp_path / "copy.sqlite3")
    os.replace(tmp_path / "copy.sqlite3", path)  # same content, another file
    outs = [rec.record(**_row(i)) for i in range(1, 4)]
    assert all(o.spooled for o in outs) and "replaced by another file while recording" in rec.message
    assert len(_warnings(caplog, path)) == 1
    rec.close()
    db.close()
    with Recorder(path=path) as again:  # the next start: the spool goes into the file now at the path
        assert again.state == "ok" and again.pending == 0 and again.db is not None
        assert sorted(r.image_ref for r in again.db.query(limit=100)) == [f"part{i:03d}.png" for i in range(4)]


@pytest.mark.fault("history", "the WAL cannot be written back into the history file while the file looks "
                   "writable (SQLite's own checkpoints fail silently; the WAL grew without bound)",
                   "noticed once the WAL passes its alarm size: one warning naming the database and the WAL; the "
                   "next verdicts spooled; a warning at close that the WAL holds verdicts; nothing lost or doubled")
def test_a_wal_that_cannot_be_written_back_is_noticed(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A real immutable file, with the up-front access check blinded (as where
    permissions cannot be told beforehand, e.g. some network shares), so that
    only the failing checkpoint can tell."""
    from inspection_core.history import file_health

    caplog.set_level(logging.WARNING)
    monkeypatch.setattr(file_health, "_may_write", lambda path: True)
    monkeypatch.setattr(file_health, "WAL_ALARM_BYTES", 200_000)
    path = tmp_path / "h.sqlite3"
    db = HistoryDB(path)
    rec = Recorder(db, retry_s=60)  # no retries meanwhile: the test says when
    assert rec.record(**_row(0)).record_id is not None
    _needs_chattr(path)
    n = 1
    try:
        while not rec.record(**_row(n)).spooled:
            n += 1
            assert n < 400, "the WAL grew past its alarm size without a word"
        n += 1
        for _ in range(3):
            assert rec.record(**_row(n)).spooled
            n += 1
        assert "no longer reaches the database file" in rec.message and "-wal'" in rec.message
        assert len(_warnings(caplog, path)) == 1
        rec.close()
        db.close()  # the WAL cannot be folded back: said, and kept
        warned = _warnings(caplog, path)
        assert len(warned) == 2 and "holds recorded verdicts" in warned[1], warned
    finally:
        _chattr("-i", path)
    with Recorder(path=path) as again:
        assert again.pending == 0 and again.db is not None
        assert again.db.count() == n
        assert sorted(r.image_ref for r in again.db.query(limit=1000)) == [f"part{i:03d}.png" for i in range(n)]
