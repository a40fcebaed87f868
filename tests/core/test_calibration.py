"""Threshold calibration: exact thresholds on constructed scores, edge cases, intervals."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest

from inspection_core.calibration import (STRATEGIES, CalibrationError, calibrate, calibration_from_manifest,
                                         calibration_record, choose_threshold, operating_point, pr,
                                         review_band_from_targets, roc, strategies_available,
                                         validate_scores)
from inspection_core.types import Threshold, Verdict

# 100 good parts scoring 0.00 .. 0.99; five defects tied at 0.505, five at 2.0.
GOOD = np.arange(100) / 100
DEFECT = np.array([0.505] * 5 + [2.0] * 5)
SCORES = np.concatenate([GOOD, DEFECT])
LABELS = np.array([0] * 100 + [1] * 10)


@pytest.mark.parametrize("strategy, target, margin, expected", [
    # φ=0.50: all defects caught, 49 goods rejected: J = 1 - 0.49 = 0.51 beats J(0.99) = 0.5
    ("youden", None, 0.0, GOOD[50]),
    # φ=0.99: F1 = 10/15 beats F1(0.50) = 20/69
    ("f1", None, 0.0, GOOD[99]),
    ("fpr", None, 0.0, GOOD[98]),        # default 1 %: one good (0.99) above
    ("fpr", 0.05, 0.0, GOOD[94]),        # 0.95..0.99 above = 5 %
    ("fpr", 0.0, 0.0, GOOD[99]),
    ("fnr", 0.5, 0.0, GOOD[99]),         # the five at 0.505 may pass, not those at 2.0
    ("fnr", 0.4, 0.0, GOOD[50]),         # ties: the 0.505 cluster cannot be split
    ("fnr", None, 0.0, GOOD[50]),        # default 0.5 %: no escape allowed
    ("quantile", None, 0.0, GOOD[99]),   # 0.99 quantile, taken at a score value
    ("quantile", 0.9, 0.0, GOOD[90]),
    ("quantile", 0.9, 1.0, GOOD[90] + (GOOD[90] - 0.495)),  # margin relative to q - median
    ("manual", 0.7, 0.0, 0.7),
])
def test_known_thresholds(strategy, target, margin, expected):
    phi = choose_threshold(SCORES, LABELS, strategy, target, margin)
    assert phi == pytest.approx(expected, abs=1e-12)


def _brute_force(scores, labels):
    """Every candidate threshold with its rates, for checking the fast path."""
    cands = np.concatenate([[np.nextafter(scores.min(), -np.inf)], np.unique(scores)])
    out = []
    for c in cands:
        fail = scores > c
        tp = np.sum(fail & (labels == 1))
        fp = np.sum(fail & (labels == 0))
        n1, n0 = np.sum(labels == 1), np.sum(labels == 0)
        out.append((c, fp / n0, 1 - tp / n1, 2 * tp / (2 * tp + fp + (n1 - tp))))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_strategies_match_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    s = np.round(np.r_[rng.normal(0, 1, 300), rng.normal(2, 1, 40)], 1)  # rounding makes many ties
    y = np.r_[np.zeros(300, int), np.ones(40, int)]
    table = _brute_force(s, y)
    youden = max(table, key=lambda r: (round((1 - r[2]) - r[1], 12), -r[0]))[0]
    f1 = max(table, key=lambda r: (round(r[3], 12), -r[0]))[0]
    assert choose_threshold(s, y, "youden") == youden
    assert choose_threshold(s, y, "f1") == f1
    assert choose_threshold(s, y, "fpr", 0.02) == min(r[0] for r in table if r[1] <= 0.02)
    assert choose_threshold(s, y, "fnr", 0.1) == max(r[0] for r in table if r[2] <= 0.1)


def test_verdicts_agree_with_threshold_type_and_ties_fall_together():
    s = np.array([0.1, 0.2, 0.5, 0.5, 0.5, 0.5, 0.9])
    y = np.array([0, 0, 0, 0, 1, 1, 1])
    phi = choose_threshold(s, y, "fpr", 0.0)
    assert phi == 0.5  # no good above 0.5 -> the tied defects at 0.5 pass with them
    op = operating_point(s, y, phi)
    verdicts = Threshold(phi).verdicts(s)
    assert {verdicts[i] for i in (2, 3, 4, 5)} == {Verdict.PASS}
    assert op.fn == sum(v is Verdict.PASS for v, lab in zip(verdicts, y) if lab == 1) == 2
    assert op.fnr == pytest.approx(2 / 3)


def test_single_defect():
    s = np.r_[np.arange(10) / 10, 0.55]
    y = np.r_[np.zeros(10, int), 1]
    assert choose_threshold(s, y, "youden") == 0.5  # J = 1 - 0.4
    assert choose_threshold(s, y, "f1") == 0.5
    op = operating_point(s, y, 0.5, bootstrap=200)
    assert (op.tp, op.fp, op.tn, op.fn) == (1, 4, 6, 0)
    assert op.fnr_ci == (0.0, 0.0)


@pytest.mark.parametrize("strategy", ["youden", "f1", "fpr", "fnr"])
def test_all_good_refuses_defect_strategies(strategy):
    s, y = np.linspace(0, 1, 50), np.zeros(50, int)
    with pytest.raises(CalibrationError, match="only 'quantile'.*or 'manual' make sense"):
        choose_threshold(s, y, strategy)


def test_all_good_offers_quantile_and_manual_only():
    s, y = np.linspace(0, 1, 101), np.zeros(101, int)
    assert strategies_available(y) == ["quantile", "manual"]
    phi = choose_threshold(s, y, "quantile", 0.95)
    assert phi == s[95] and phi > s.min()  # never the lowest score
    res = calibrate(s, y, "quantile", 0.95, bootstrap=100)
    assert res.roc.auroc is None and "no defective" in res.roc.reason
    assert res.point.fnr is None and res.point.fpr == pytest.approx(5 / 101)


@pytest.mark.parametrize("strategy, ok", [("youden", False), ("f1", False), ("fpr", False),
                                          ("quantile", False), ("fnr", True), ("manual", True)])
def test_all_defective(strategy, ok):
    s, y = np.linspace(1, 2, 20), np.ones(20, int)
    assert strategies_available(y) == ["fnr", "manual"]
    if not ok:
        with pytest.raises(CalibrationError, match="needs good images"):
            choose_threshold(s, y, strategy)
        return
    phi = choose_threshold(s, y, strategy, 1.5 if strategy == "manual" else 0.0)
    op = operating_point(s, y, phi)
    assert op.fpr is None and op.balanced_accuracy is None
    if strategy == "fnr":
        assert op.fn == 0 and phi < s.min()


@pytest.mark.parametrize("scores, labels, paths, match", [
    ([0.1, np.nan, 0.3, np.inf], [0, 0, 1, 1], ["a.png", "b.png", "c.png", "d.png"],
     r"2 of 4 scores are not finite.*b\.png, d\.png"),
    ([0.1, np.nan], [0, 1], None, "1 of 2 scores are not finite"),
    ([], [], None, "empty"),
    ([0.1, 0.2], [0], None, "2 scores but 1 labels"),
    ([0.1, 0.2], [0, 2], None, "labels must be 0"),
])
def test_invalid_inputs(scores, labels, paths, match):
    with pytest.raises(CalibrationError, match=match):
        validate_scores(scores, labels, paths)
    if scores:
        with pytest.raises(CalibrationError):
            calibrate(scores, labels, "youden")


def test_unknown_strategy_and_bad_targets():
    with pytest.raises(CalibrationError, match="unknown strategy"):
        choose_threshold(SCORES, LABELS, "otsu")
    with pytest.raises(CalibrationError, match="between 0 and 1"):
        choose_threshold(SCORES, LABELS, "fpr", 5)
    with pytest.raises(CalibrationError, match="manual.*needs the threshold"):
        choose_threshold(SCORES, LABELS, "manual")
    with pytest.raises(CalibrationError, match="margin applies only"):
        choose_threshold(SCORES, LABELS, "youden", margin=0.5)


def test_review_band_counts():
    s = np.r_[np.arange(10) / 10, 0.35, 0.75, 0.95]
    y = np.r_[np.zeros(10, int), 1, 1, 1]
    res = calibrate(s, y, None, review_band=(0.3, 0.7), bootstrap=0)
    op = res.point
    d = op.to_dict()
    assert d["bands"] == {"good": {"pass": 4, "review": 4, "fail": 2},
                          "defect": {"pass": 0, "review": 1, "fail": 2}}
    assert (op.n_pass, op.n_review, op.n_fail) == (4, 5, 4)
    assert op.fpr == pytest.approx(0.2) and op.fnr == 0.0  # a defect in REVIEW is not an escape
    verdicts = res.threshold.verdicts(s)
    assert verdicts.count(Verdict.REVIEW) == op.n_review
    with pytest.raises(CalibrationError, match="review band sets both thresholds"):
        calibrate(s, y, "youden", review_band=(0.3, 0.7))


def test_review_band_from_targets():
    low, high = review_band_from_targets(SCORES, LABELS, fnr_target=0.0, fpr_target=0.0)
    assert (low, high) == (GOOD[50], GOOD[99])
    op = operating_point(SCORES, LABELS, Threshold(high, low))
    assert op.fn == 0 and op.fp == 0 and op.n_review == 49 + 5
    # targets one threshold already meets: no band
    s, y = np.r_[np.zeros(5), np.ones(5)], np.r_[np.zeros(5, int), np.ones(5, int)]
    assert review_band_from_targets(s, y, 0.0, 0.0) == (0.0, 0.0)


def test_bootstrap_ci_contains_estimate_and_is_seeded():
    rng = np.random.default_rng(5)
    s = np.r_[rng.normal(0, 1, 200), rng.normal(2, 1, 30)]
    y = np.r_[np.zeros(200, int), np.ones(30, int)]
    a = operating_point(s, y, 1.0, bootstrap=1000, seed=3)
    b = operating_point(s, y, 1.0, bootstrap=1000, seed=3)
    c = operating_point(s, y, 1.0, bootstrap=1000, seed=4)
    assert a.fpr_ci == b.fpr_ci and a.fnr_ci == b.fnr_ci
    assert a.fpr_ci[0] <= a.fpr <= a.fpr_ci[1] and a.fpr_ci[0] < a.fpr_ci[1]
    assert a.fnr_ci[0] <= a.fnr <= a.fnr_ci[1] and a.fnr_ci[0] < a.fnr_ci[1]
    assert (a.fpr_ci, a.fnr_ci) != (c.fpr_ci, c.fnr_ci)
    # a smaller set gives a wider interval
    small = operating_point(s[::5], y[::5], 1.0, bootstrap=1000, seed=3)
    assert small.fpr_ci[1] - small.fpr_ci[0] > a.fpr_ci[1] - a.fpr_ci[0]
    assert operating_point(s, y, 1.0).fpr_ci is None  # only on request


def test_operating_point_metrics():
    op = operating_point(SCORES, LABELS, GOOD[50])
    assert (op.tp, op.fp, op.tn, op.fn) == (10, 49, 51, 0)
    assert op.precision == pytest.approx(10 / 59) and op.recall == 1.0
    assert op.f1 == pytest.approx(20 / 69)
    assert op.balanced_accuracy == pytest.approx(1 - 0.49 / 2)


def test_operating_point_fast_enough_for_dragging():
    rng = np.random.default_rng(0)
    s = np.r_[rng.normal(0, 1, 900), rng.normal(3, 1, 100)]
    y = np.r_[np.zeros(900, int), np.ones(100, int)]
    times = []
    for phi in np.linspace(-1, 4, 50):
        t0 = time.perf_counter()
        operating_point(s, y, Threshold(float(phi)))
        times.append(time.perf_counter() - t0)
    assert np.median(times) < 0.005


def test_roc_pr_and_missing_class():
    r, p = roc(SCORES, LABELS), pr(SCORES, LABELS)
    assert 0.5 < r.auroc <= 1.0 and 0 < p.ap <= 1.0 and r.reason == ""
    r1 = roc([0.1, 0.2], [1, 1])
    assert r1.auroc is None and "no good images" in r1.reason


def test_strategies_available_both():
    assert strategies_available(LABELS) == list(STRATEGIES)


def test_calibration_record_and_round_trip():
    res = calibrate(SCORES, LABELS, "fpr", 0.05, bootstrap=100)
    old = {"name": "m", "threshold": {"high": 0.3, "low": None, "strategy": "quantile", "target": 0.99,
                                      "provisional": True}, "inference": {"precision": "fp16"}}
    m = calibration_record(old, res, note="line 2", paths=[f"/data/x/{i}.png" for i in range(110)],
                           root="/data")
    assert m["threshold"] == {"high": GOOD[94], "low": None, "strategy": "fpr", "target": 0.05,
                              "provisional": False}
    cal = m["calibration"]
    assert cal["scores"] == [float(v) for v in SCORES] and cal["labels"] == LABELS.tolist()
    assert cal["paths"][0] == "x/0.png" and cal["precision_path"] == "fp16"
    assert cal["operating_point"]["fp"] == 5
    assert m["calibration_history"][-1]["old"] == {"high": 0.3, "low": None}
    assert m["calibration_history"][-1]["new"]["high"] == GOOD[94]
    assert old["threshold"]["high"] == 0.3 and "calibration" not in old  # input untouched
    m2 = calibration_record(m, calibrate(SCORES, LABELS, "youden", bootstrap=0))
    assert len(m2["calibration_history"]) == 2
    # scored with a bf16 Inspector: the bundle now says its threshold belongs to bf16 (and keeps its fidelity record)
    rec = {"precision": "bf16", "engine": "cpu-onednn-packed-bf16", "device": "cpu"}
    m3 = calibration_record({**m, "inference": {"precision": "fp32", "fidelity": {"bf16": {"ok": True}}}}, res,
                            inference=rec)
    assert m3["calibration"]["precision_path"] == "bf16"
    assert m3["inference"] == {**rec, "fidelity": {"bf16": {"ok": True}}}
    again = calibration_from_manifest(m2)
    assert again.threshold.high == GOOD[50] and again.point.fp == 49


# ----------------------------------------------------------------- CLI

def _cli(argv, capsys):
    from inspection_core.cli.main import main

    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture()
def bundle_copy(tiny_bundle, tmp_path):
    import shutil

    return Path(shutil.copy(tiny_bundle, tmp_path / "model.inspector"))


def test_cli_calibrate_writes_bundle(bundle_copy, demo_data, capsys):
    from inspection_core.bundle import load_bundle, read_manifest
    from inspection_core.data.dataset import scan_dataset
    from inspection_core.inference import Inspector

    weights_before = read_manifest(bundle_copy)["weights"]
    rc, out, err = _cli(["calibrate", "--bundle", str(bundle_copy), "--data", str(demo_data),
                         "--strategy", "fpr", "--target", "0.1", "--note", "line 3", "--bootstrap", "200"], capsys)
    assert rc == 0, err
    m = read_manifest(bundle_copy)
    n_test = len(scan_dataset(demo_data).test)
    cal = m["calibration"]
    assert len(cal["scores"]) == len(cal["labels"]) == len(cal["paths"]) == n_test
    assert cal["paths"][0].startswith("test/")  # relative to the data set
    phi = choose_threshold(cal["scores"], cal["labels"], "fpr", 0.1)
    assert m["threshold"] == {"high": phi, "low": None, "strategy": "fpr", "target": 0.1, "provisional": False}
    assert m["calibration_history"][-1]["note"] == "line 3"
    assert m["weights"] == weights_before and load_bundle(bundle_copy) is not None
    insp = Inspector(bundle_copy, device="cpu")
    assert insp.threshold.high == phi  # inspection uses it
    # the threshold belongs to the path the station scores with: bf16 where this CPU runs it natively
    # and the bundle's fidelity check held on these calibration images, else fp32
    assert m["inference"]["engine"] == insp.engine and cal["precision_path"] == insp.precision
    from inspection_core.acceleration import fast_precision

    rec = (m["inference"].get("fidelity") or {}).get("bf16")
    if fast_precision("cpu") == "bf16":
        assert rec is not None and rec["n"] == n_test and "verdicts differ from fp32" in out
        assert insp.precision == ("bf16" if rec["ok"] else "fp32")
    else:
        assert rec is None and insp.precision == "fp32"
    op = operating_point(cal["scores"], cal["labels"], phi)
    assert f"({op.fp} of {op.n_good} good)" in out and "95% CI" in out and "Written to" in out


def test_cli_calibrate_review_band(bundle_copy, demo_data, capsys):
    from inspection_core.bundle import read_manifest

    rc, out, err = _cli(["calibrate", "--bundle", str(bundle_copy), "--data", str(demo_data),
                         "--review-band", "0.0", "1e9", "--bootstrap", "0"], capsys)
    assert rc == 0, err
    m = read_manifest(bundle_copy)
    assert (m["threshold"]["low"], m["threshold"]["high"]) == (0.0, 1e9)
    n = len(m["calibration"]["scores"])
    assert re.search(rf"all\s+0\s+{n}\s+0", out)  # every part lands in REVIEW


@pytest.mark.parametrize("extra, message", [
    (["--strategy", "youden"], "only 'quantile'"),
    (["--strategy", "f1"], "only 'quantile'"),
    (["--strategy", "quantile", "--target", "0.9"], None),
])
def test_cli_calibrate_without_defects(bundle_copy, demo_data, tmp_path, capsys, extra, message):
    import shutil

    from inspection_core.bundle import read_manifest

    good = tmp_path / "line" / "good"
    good.mkdir(parents=True)
    for p in sorted((demo_data / "test" / "good").iterdir())[:6]:
        shutil.copy(p, good / p.name)
    before = read_manifest(bundle_copy)["threshold"]
    rc, out, err = _cli(["calibrate", "--bundle", str(bundle_copy), "--data", str(tmp_path / "line"),
                         "--bootstrap", "0", *extra], capsys)
    if message is None:
        assert rc == 0, err
        m = read_manifest(bundle_copy)
        assert m["threshold"]["strategy"] == "quantile" and len(m["calibration"]["scores"]) == 6
        return
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1  # README: errors exit with 2
    assert read_manifest(bundle_copy)["threshold"] == before  # nothing written


@pytest.mark.parametrize("extra, message", [
    (["--strategy", "youden"], "missing.inspector"),                       # no such bundle
    ([], "give --strategy"),
    (["--strategy", "manual"], "needs --target"),
    (["--strategy", "youden", "--review-band", "0", "1"], "leave out --strategy youden"),
    (["--strategy", "youden", "--batch-size", "0"], "--batch-size must be at least 1"),
])
def test_cli_calibrate_errors_are_one_line_with_status_2(tmp_path, demo_data, capsys, extra, message):
    rc, out, err = _cli(["calibrate", "--bundle", str(tmp_path / "missing.inspector"), "--data", str(demo_data),
                         *extra], capsys)
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("threshold, false_pass, false_reject", [
    (Threshold(0.5), [0, 5, 2], [4, 3]),            # ties at φ pass; escapes lowest first, rejects highest first
    (Threshold(0.5, low=0.2), [0], [4, 3]),         # REVIEW (0.3, 0.5) is neither an escape nor a reject
    (Threshold(0.05), [], [4, 3, 1]),               # everything fails: no escapes
])
def test_misjudged_is_the_one_rule_for_galleries(threshold, false_pass, false_reject):
    from inspection_core.calibration import misjudged

    scores = [0.1, 0.3, 0.5, 0.7, 0.9, 0.3]
    labels = [1, 0, 1, 0, 0, 1]
    assert misjudged(scores, labels, threshold) == (false_pass, false_reject)


def test_an_unsteady_youden_threshold_is_pointed_out() -> None:
    """On a weak detector J is flat near its best: the note names the range and
    how many images lie in it; on well-separated scores there is no note."""
    from inspection_core.calibration import objective_plateau, plateau_note

    rng = np.random.default_rng(0)
    # few good parts, many defects, weak separation (as magnetic_tile's GANs): each good part moves
    # FPR by 1/40, each defect TPR by 1/400, so J barely changes across many defects
    weak_s = np.r_[rng.normal(0, 1, 40), rng.normal(0.7, 1, 400)]
    y = np.r_[np.zeros(40, int), np.ones(400, int)]
    lo, hi, n = objective_plateau(weak_s, y, "youden")
    assert lo <= choose_threshold(weak_s, y, "youden") <= hi and n == int(((weak_s > lo) & (weak_s <= hi)).sum())
    note = plateau_note(weak_s, y, "youden")
    assert n > 22 and f"{n} of 440 images" in note and "fpr" in note
    strong = np.r_[rng.normal(0, 1, 40), rng.normal(8, 1, 400)]
    assert plateau_note(strong, y, "youden") == ""
    assert objective_plateau(weak_s, y, "fpr") is None and plateau_note(weak_s, y, "quantile") == ""
