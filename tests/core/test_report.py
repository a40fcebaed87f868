"""Evaluation report: pixel metrics on constructed maps, and the HTML/PNG output."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from inspection_core.report import pixel_auroc, pro_score, write_report
from inspection_core.types import Threshold

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _masks(n_good: int = 4, n_bad: int = 4, size: int = 32) -> np.ndarray:
    m = np.zeros((n_good + n_bad, size, size), bool)
    for k in range(n_bad):
        m[n_good + k, 4 + k:12 + k, 6:14] = True
    return m


def test_pixel_metrics_perfect_inverted_random():
    masks = _masks()
    perfect = masks.astype(np.float32)
    assert pixel_auroc(perfect, masks) == pytest.approx(1.0)
    assert pro_score(perfect, masks) == pytest.approx(1.0)
    assert pixel_auroc(1.0 - perfect, masks) == pytest.approx(0.0)
    assert pro_score(1.0 - perfect, masks) == pytest.approx(0.0, abs=1e-9)
    rnd = np.random.default_rng(0).random(masks.shape).astype(np.float32)
    assert pixel_auroc(rnd, masks) == pytest.approx(0.5, abs=0.05)
    # random map: PRO(fpr) ~ fpr, so the normalised area up to 0.3 is ~0.3/2
    assert pro_score(rnd, masks) == pytest.approx(0.15, abs=0.03)


def test_pro_weighs_every_region_equally():
    """A large region found and a small one missed give PRO 0.5 at low FPR, not the pixel share."""
    mask = np.zeros((1, 40, 40), bool)
    mask[0, 2:12, 2:12] = True     # 100 px, detected
    mask[0, 30:32, 30:32] = True   # 4 px, missed
    amap = np.zeros((1, 40, 40), np.float32)
    amap[0, 2:12, 2:12] = 1.0
    # curve: (0, 0) -> (0, 0.5) -> (1, 1); area to 0.3 = 0.3*0.5 + 0.3^2/2*0.5 -> /0.3
    assert pro_score(amap, mask) == pytest.approx((0.15 + 0.0225) / 0.3)
    assert pixel_auroc(amap, mask) > 0.98  # pixel-wise it looks almost perfect


def test_pixel_metrics_need_masks():
    maps = np.zeros((2, 8, 8), np.float32)
    assert pixel_auroc(maps, None) is None and pro_score(maps, None) is None
    assert pixel_auroc(maps, [None, None]) is None
    assert pixel_auroc(maps, np.zeros((2, 8, 8), bool)) is None  # no defect pixel at all


def _scored(seed: int = 0, n_good: int = 12, n_bad: int = 6, size: int = 32):
    rng = np.random.default_rng(seed)
    scores = np.r_[rng.normal(0, 1, n_good), rng.normal(1.5, 1, n_bad)]
    labels = np.r_[np.zeros(n_good, int), np.ones(n_bad, int)]
    images = rng.integers(0, 255, (n_good + n_bad, size, size, 3), dtype=np.uint8)
    masks = _masks(n_good, n_bad, size)
    maps = (masks * 0.7 + rng.random(masks.shape) * 0.5).astype(np.float32)
    paths = [f"/data/test/{'good' if y == 0 else 'crack'}/img_{i:03d}.png" for i, y in enumerate(labels)]
    return scores, labels, images, maps, masks, paths


def _referenced_images(index: Path) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', index.read_text(encoding="utf-8"))


def test_report_writes_html_and_figures(tmp_path):
    scores, labels, images, maps, masks, paths = _scored()
    th = Threshold(float(np.median(scores)))
    manifest = {"name": "washers-v1", "model": {"model": "ganomaly", "image_size": 32, "channels": 3},
                "threshold": {"high": 0.5, "low": None, "strategy": "quantile", "target": 0.99}}
    index = write_report(tmp_path / "rep", scores, labels, th, paths=paths, defect_types=["good"] * 12 + ["crack"] * 6,
                         images=lambda i: images[i], maps=maps, masks=masks, manifest=manifest,
                         metrics={"latency_ms": 3.5}, bootstrap=200)
    assert index == tmp_path / "rep" / "index.html"
    text = index.read_text(encoding="utf-8")
    refs = _referenced_images(index)
    for name in ("roc.png", "pr.png", "histogram.png", "confusion.png",
                 "misses_false_pass.png", "misses_false_reject.png"):
        assert name in refs
    for ref in refs:
        png = index.parent / ref
        assert png.stat().st_size > 1000 and png.read_bytes()[:8] == PNG_MAGIC
    assert "washers-v1" in text and "ganomaly" in text and "latency (ms)" in text
    assert "pixel AUROC" in text and "PRO" in text and "no masks" not in text
    for name in ("Youden&#x27;s J", "best F1", "false-reject target 1%"):
        assert f"<td>{name}</td>" in text
    assert "<script" not in text and "http" not in text  # self-contained, opens from disk
    # the worst false reject is named in the list of misses
    fr = [i for i in range(12) if scores[i] > th.high]
    worst = max(fr, key=lambda i: scores[i])
    assert f"img_{worst:03d}.png" in text


def test_report_two_thresholds_and_no_images(tmp_path):
    scores, labels, *_ = _scored(1)
    index = write_report(tmp_path, scores, labels, Threshold(1.0, low=0.0), bootstrap=0)
    text = index.read_text(encoding="utf-8")
    refs = _referenced_images(index)
    assert not any(r.startswith("misses") for r in refs)  # no images given: no miss grid
    assert "REVIEW" in text and "no masks" in text
    n_review = int(np.sum((scores > 0.0) & (scores <= 1.0)))
    assert re.search(rf"all: PASS / REVIEW / FAIL</th><td class=n>\d+ / {n_review} / \d+", text)


def test_report_without_defects_explains_missing_curves(tmp_path):
    scores = np.linspace(0, 1, 20)
    index = write_report(tmp_path, scores, np.zeros(20, int), 0.9, bootstrap=0)
    text = index.read_text(encoding="utf-8")
    assert "no defective images" in text
    assert "roc.png" not in _referenced_images(index)
    assert "histogram.png" in _referenced_images(index)
    assert "only &#x27;quantile&#x27;" in text or "only 'quantile'" in text


def test_report_rejects_nan_scores(tmp_path):
    from inspection_core.calibration import CalibrationError

    with pytest.raises(CalibrationError, match="b.png"):
        write_report(tmp_path, [0.1, np.nan], [0, 1], 0.5, paths=["a.png", "b.png"])


def test_report_from_a_real_evaluation(tiny_bundle, demo_data, tmp_path):
    """The evaluate path: ScoredSet + Inspector in, masks loaded, pixel metrics and heat maps out."""
    from inspection_core.evaluation import evaluate
    from inspection_core.inference import Inspector

    insp = Inspector(tiny_bundle, device="cpu")
    metrics, scored = evaluate(insp, demo_data, keep=True)
    index = write_report(tmp_path / "rep", scored=scored, inspector=insp, metrics=metrics, bootstrap=100)
    text = index.read_text(encoding="utf-8")
    assert re.search(r"pixel AUROC</th><td class=n>0\.\d+", text)
    assert re.search(r"PRO \(FPR ≤ 0\.3\)</th><td class=n>0\.\d+", text)
    assert insp.name in text
    refs = _referenced_images(index)
    assert {"roc.png", "pr.png", "histogram.png", "confusion.png"} <= set(refs)
    th = insp.threshold.high
    if np.any((scored.labels == 1) & (scored.scores <= th)):
        assert "misses_false_pass.png" in refs
    if np.any((scored.labels == 0) & (scored.scores > th)):
        assert "misses_false_reject.png" in refs
    for ref in refs:
        assert (index.parent / ref).read_bytes()[:8] == PNG_MAGIC


# ---------------------------------------------------------------- a report is written as a whole (issue 13)


@pytest.fixture(scope="module")
def evaluated(tiny_bundle, demo_data):
    from inspection_core.evaluation import evaluate
    from inspection_core.inference import Inspector

    insp = Inspector(tiny_bundle, device="cpu")
    metrics, scored = evaluate(insp, demo_data, keep=True)
    return insp, metrics, scored


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.fault("report", "evaluate --report over an existing report (the old index.html stayed, mixing two runs)",
                   "the new report replaces the old one in one step: exactly the new run's files, same permissions")
def test_a_new_report_replaces_the_old_one_whole(evaluated, tmp_path):
    import stat

    from inspection_core.fileio import SHARED_DIR_MODE, SHARED_MODE
    from inspection_core.types import Threshold
    from inspection_core.usecases.evaluate import write_report_folder

    insp, metrics, scored = evaluated
    out = tmp_path / "report"
    insp.threshold = Threshold(float(scored.scores.min()) - 1.0)  # everything FAILs: false rejects, no escapes
    write_report_folder(out, metrics, scored, insp)
    first = _snapshot(out)
    assert "misses_false_reject.png" in first and "misses_false_pass.png" not in first
    insp.threshold = Threshold(float(scored.scores.max()) + 1.0)  # everything PASSes: escapes, no false rejects
    html = write_report_folder(out, metrics, scored, insp)
    second = _snapshot(out)
    assert html == out / "index.html" and "misses_false_reject.png" not in second, "a file of the old run stayed"
    assert "misses_false_pass.png" in second and second["index.html"] != first["index.html"]
    assert [p.name for p in tmp_path.iterdir()] == ["report"], "no staging folder left"
    if os.name == "posix":
        assert stat.S_IMODE(out.stat().st_mode) == SHARED_DIR_MODE
        assert {stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == {SHARED_MODE}, "metrics.json was 0600"


@pytest.mark.fault("report", "evaluate --report on a full disk (it left a 0-byte PNG and no index.html)",
                   "WriteError naming the report; the previous report stays whole, no partial files")
def test_a_full_disk_leaves_the_previous_report_whole(evaluated, tmp_path):
    from _disk import fill, small_disk
    from inspection_core.fileio import WriteError
    from inspection_core.usecases.evaluate import write_report_folder

    insp, metrics, scored = evaluated
    with small_disk(tmp_path / "disk", size_kb=2048) as disk:
        out = disk / "report"
        write_report_folder(out, metrics, scored, insp)
        before = _snapshot(out)
        fill(disk, leave=60_000)  # room for some files of a report, not all
        with pytest.raises(WriteError, match="no space left on the disk") as info:
            write_report_folder(out, metrics, scored, insp)
        assert str(out) in str(info.value)
        assert _snapshot(out) == before
        assert sorted(p.name for p in disk.iterdir()) == [".filler", "report"]


def test_a_folder_of_other_files_is_never_replaced_by_a_report(evaluated, tmp_path):
    from inspection_core.fileio import WriteError
    from inspection_core.usecases.evaluate import write_report_folder

    insp, metrics, scored = evaluated
    (tmp_path / "thesis.docx").write_bytes(b"months of work")
    with pytest.raises(WriteError, match="holds other files"):
        write_report_folder(tmp_path, metrics, scored, insp)
    assert (tmp_path / "thesis.docx").read_bytes() == b"months of work"


def test_the_report_reads_as_words_and_lists_many_misses_in_a_capped_table(tmp_path):
    """Issue 36: no 'low None (youden, target None)', no raw keys (f1, balanced_accuracy, n_skipped), no
    'epochs (best) 1 (1)' for a one-pass family, and 91 false passes as a table of 20 and 'and 71 more'."""
    rng = np.random.default_rng(3)
    n_good, n_bad = 20, 100
    scores = np.r_[rng.uniform(0, 1, n_good), rng.uniform(0, 0.5, 91), rng.uniform(2, 3, 9)]
    labels = np.r_[np.zeros(n_good, int), np.ones(n_bad, int)]
    paths = [f"/data/test/{'good' if y == 0 else 'crack'}/img_{i:03d}.png" for i, y in enumerate(labels)]
    manifest = {"name": "parts", "model": {"model": "patchcore", "image_size": 64, "channels": 3},
                "training": {"fit_mode": "one_pass", "epochs_run": 1, "best_epoch": 1, "device": "cpu"},
                "threshold": {"high": 3.6625219535827633, "low": None, "strategy": "youden", "target": None,
                              "provisional": False}}
    index = write_report(tmp_path / "rep", scores, labels, Threshold(1.5), paths=paths, manifest=manifest,
                         metrics={"f1": 0.2, "balanced_accuracy": 0.5, "n_skipped": 0, "flag": True}, bootstrap=0)
    text = index.read_text(encoding="utf-8")
    cells = re.findall(r"<t[hd][^>]*>([^<]*)</t[hd]>", text)
    for leak in ("None", "True", "False", "f1", "balanced_accuracy", "n_skipped"):
        assert leak not in cells, leak
    assert "3.6625219535827633" not in text and "3.663 (Youden" in text
    assert "epochs (best)" not in text and "one pass" in text
    assert "False passes (91)" in text and "and 71 more" in text
    assert len(re.findall(r"<tr><td>[^<]*img_\d+\.png</td>", text)) == 20  # the table is capped
