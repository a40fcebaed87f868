"""The calibration session: what the Calibrate view and ``inspector calibrate``
drive. Scored on a real tiny bundle: strategies, a drag, two thresholds, the
events it sends, and a save that round-trips into the bundle (atomic, the
weights byte for byte)."""

from __future__ import annotations

import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from inspection_core import calibration as cal
from inspection_core.bundle import read_manifest
from inspection_core.types import Threshold
from inspection_core.usecases.calibration_session import (
    CalibrationSession,
    SessionEvent,
)


def _weights(bundle: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(bundle) as z:
        return {n: z.read(n) for n in z.namelist() if n != "manifest.json"}


@pytest.fixture(scope="module")
def scored(tiny_ganomaly_bundle: Path, demo_data: Path, tmp_path_factory: pytest.TempPathFactory):
    """One session scored once on the demo data (fp32 only: the fast path has its own test)."""
    bundle = Path(shutil.copy(tiny_ganomaly_bundle, tmp_path_factory.mktemp("s") / "gan.inspector"))
    session = CalibrationSession.open(bundle, device="cpu", bootstrap=0)
    steps: list[object] = []
    session.score(demo_data, check_fast=False, progress=steps.append)
    return session, steps


def test_the_session_module_needs_neither_qt_nor_torch_to_import() -> None:
    import subprocess

    code = ("import sys, inspection_core.usecases.calibration_session as m; "
            "assert 'PySide6' not in sys.modules and 'torch' not in sys.modules")
    assert subprocess.run([sys.executable, "-c", code], check=False, capture_output=True).returncode == 0


def test_score_gives_the_allowed_images_with_the_bundles_threshold(scored, demo_data: Path) -> None:
    session, steps = scored
    assert steps, "progress is reported"
    assert session.scores is not None and len(session.scores) == 12 + 16 and int(session.labels.sum()) == 16
    assert all(p.is_file() and demo_data in p.parents for p in session.paths)
    assert session.root == demo_data and "test split" in session.description
    saved = read_manifest(session.bundle_path)["threshold"]["high"]
    assert session.threshold == Threshold(saved) and session.strategy == "manual"
    assert session.point == cal.operating_point(session.scores, session.labels, Threshold(saved))


@pytest.mark.parametrize(("name", "target"), [("youden", None), ("f1", None), ("fpr", 0.05), ("fnr", 0.1),
                                              ("quantile", 0.95), ("manual", 0.5)])
def test_a_strategy_places_the_line_where_the_core_says(scored, name: str, target: float | None) -> None:
    session, _ = scored
    phi = session.set_strategy(name, target)
    expected = cal.choose_threshold(session.scores, session.labels, name, target)
    assert phi == session.threshold.high == pytest.approx(expected) and session.threshold.low is None
    assert (session.strategy, session.target) == (name, target)
    op = cal.operating_point(session.scores, session.labels, Threshold(expected))
    assert (session.point.tn, session.point.fp, session.point.fn, session.point.tp) == (op.tn, op.fp, op.fn, op.tp)
    result = session.result()
    assert result.strategy == name and result.threshold.high == pytest.approx(expected)


def test_a_drag_makes_the_line_manual_and_events_say_what_changed(scored) -> None:
    session, _ = scored
    events: list[SessionEvent] = []
    stop = session.on_change(events.append)
    session.set_strategy("youden")
    value = float(np.median(session.scores))
    session.set_threshold(value)
    assert [e.what for e in events] == ["threshold", "threshold"] and "threshold" in events[0].message
    assert (session.strategy, session.target, session.threshold) == ("manual", value, Threshold(value))
    fp, fr = session.misjudged()
    assert (fp, fr) == cal.misjudged(session.scores, session.labels, Threshold(value))
    result = session.result()
    assert result.strategy == "manual" and result.threshold.high == value
    stop()
    session.set_threshold(value + 1)
    assert len(events) == 2, "a listener that stopped hears nothing"


def test_two_thresholds_review_band_and_back(scored) -> None:
    session, _ = scored
    session.set_threshold(float(np.quantile(session.scores, 0.8)))
    high = session.threshold.high
    session.set_two_thresholds(True, fnr_target=0.1)
    expected_low = min(high, cal.choose_threshold(session.scores, session.labels, "fnr", 0.1))
    assert session.threshold == Threshold(high, expected_low)
    session.set_threshold(high, high + 5)  # the REVIEW line never goes above the FAIL line
    assert session.threshold == Threshold(high, high)
    session.set_band_from_targets(0.1, 0.1)
    low, high = cal.review_band_from_targets(session.scores, session.labels, 0.1, 0.1)
    assert session.threshold == Threshold(high, low)
    op = cal.operating_point(session.scores, session.labels, Threshold(high, low))
    assert (session.point.review_good, session.point.review_defect) == (op.review_good, op.review_defect)
    result = session.result()
    assert result.strategy == "manual" and result.threshold == Threshold(high, low)
    hp, lp = session.roc_points()
    assert lp is not None and hp[0] <= lp[0]
    session.set_two_thresholds(False)
    assert session.threshold.low is None


@pytest.mark.parametrize(("scores", "labels", "offered"), [
    ([0.1, 0.2, 0.3], [0, 0, 0], {"quantile", "manual"}),                    # all good
    ([0.5, 0.6, 0.9], [1, 1, 1], {"fnr", "manual"}),                         # all defective
    ([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1], set(cal.STRATEGIES)),              # ties
])
def test_strategies_follow_the_classes_present(scores, labels, offered) -> None:
    session = CalibrationSession()
    session.set_scores(scores, labels)
    assert set(session.strategies_available()) == offered
    assert set(session.unavailable()) == set(cal.STRATEGIES) - offered
    assert session.threshold is not None  # a first sensible line
    missing = next(iter(set(cal.STRATEGIES) - offered), None)
    if missing is not None:
        with pytest.raises(cal.CalibrationError):
            session.set_strategy(missing)


def test_unusable_scores_are_refused_naming_the_image() -> None:
    session = CalibrationSession()
    with pytest.raises(cal.CalibrationError, match="b.png"):
        session.set_scores([0.1, float("nan")], [0, 1], ["a.png", "b.png"])
    assert session.scores is None


def test_save_round_trips_into_the_bundle_atomically(tiny_ganomaly_bundle: Path, demo_data: Path,
                                                      tmp_path: Path) -> None:
    bundle = Path(shutil.copy(tiny_ganomaly_bundle, tmp_path / "gan.inspector"))
    before, weights = read_manifest(bundle), _weights(bundle)
    session = CalibrationSession.open(bundle, device="cpu", bootstrap=0)
    events: list[SessionEvent] = []
    session.on_change(events.append)
    session.score(demo_data, check_fast=False)
    session.set_strategy("fpr", 0.1)
    session.set_frame_check(False)
    m = session.save(note="line 3")
    assert [e.what for e in events] == ["data", "threshold", "frame_check", "saved"]
    assert "Saved to gan.inspector" in events[-1].message
    assert m == read_manifest(bundle) and session.manifest == m and session.frame_check is None
    assert _weights(bundle) == weights, "the weights stay byte for byte"
    assert list(tmp_path.iterdir()) == [bundle], "no temporary file is left"
    assert m["threshold"]["high"] == pytest.approx(session.threshold.high) and m["threshold"]["strategy"] == "fpr"
    assert m["calibration"]["paths"] == [p.relative_to(demo_data).as_posix() for p in session.paths]
    assert m["calibration_history"][-1]["note"] == "line 3"
    assert m["calibration_history"][-1]["old"]["high"] == pytest.approx(before["threshold"]["high"])
    assert m["frame_check"]["enabled"] is False
    assert m["calibration"]["precision_path"] == m["inference"]["precision"]

    # the stored calibration opens again as it was saved, without scoring
    again = CalibrationSession.open(bundle, bootstrap=0)
    assert again.load_stored()
    np.testing.assert_allclose(again.scores, session.scores)
    assert again.threshold == session.threshold and again.strategy == "fpr" and again.target == 0.1
    assert again.root == demo_data and again.paths == session.paths
    assert again.point == session.point


def test_the_cli_sequence_gives_what_calibrate_bundle_gives(tiny_ganomaly_bundle: Path, demo_data: Path,
                                                            tmp_path: Path) -> None:
    """The session is the one place the threshold is decided: the use case's
    one-call form and the session's call sequence write the same threshold."""
    from inspection_core.usecases.calibrate import calibrate_bundle

    a, b = (Path(shutil.copy(tiny_ganomaly_bundle, tmp_path / f"{n}.inspector")) for n in "ab")
    outcome = calibrate_bundle(a, demo_data, "youden", bootstrap=0, device="cpu", note="n")
    session = CalibrationSession.open(b, device="cpu", bootstrap=0)
    session.score(demo_data, strategy="youden")
    session.set_strategy("youden")
    m = session.save(note="n")
    assert m["threshold"] == outcome.manifest["threshold"]
    assert m["calibration"]["scores"] == outcome.manifest["calibration"]["scores"]
    assert m["inference"]["precision"] == outcome.manifest["inference"]["precision"]
