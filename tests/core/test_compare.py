"""Compare: real tiny trainings of several families on the generated data
set, each saved, loaded back and evaluated on the same held-out images;
the table's figures, the recommendation, the classifier's inclusion rule,
cancel, the written files and the command line's errors."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from _cli import run_cli
from inspection_core.comparison import FamilyResult, OperatingRates, recommend, table_rows
from inspection_core.progress import CancelToken, Cancelled, ProgressEvent
from inspection_core.usecases.compare import (
    CompareError, bundle_file, compare, plan_comparison, read_comparison, write_comparison,
)  # fmt: skip
from inspection_core.usecases.evaluate import evaluate_bundle
from inspection_core.usecases.train_settings import TrainSettings

# the quick GAN preset needs no pretrained weights; PatchCore on a random resnet18 (no download)
GAN = dict(preset="quick", image_size=32, device="cpu")
PATCHCORE = TrainSettings("patchcore", image_size=64, device="cpu", params={"weights": "random", "backbone": "resnet18"})
VGG16 = TrainSettings("vgg16", image_size=32, device="cpu", epochs=1, batch_size=16,
                      params={"base_width": 8, "init": "scratch", "freeze_epochs": 0})


def tiny(*names: str) -> list[TrainSettings]:
    out = []
    for n in names:
        out.append(PATCHCORE if n == "patchcore" else VGG16 if n == "vgg16" else TrainSettings(n, **GAN))
    return [dataclasses.replace(s) for s in out]


@pytest.fixture(scope="module")
def compared(demo_data: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("compare")
    events: list[ProgressEvent] = []
    comparison = compare(demo_data, out, settings=tiny("patchcore", "ganomaly"), progress=events.append)
    return comparison, out, events


def test_every_figure_comes_from_the_saved_bundle_on_the_same_held_out_images(compared, demo_data: Path) -> None:
    comparison, out, _events = compared
    held = comparison.held_out
    assert [r.family for r in comparison.results] == ["patchcore", "ganomaly"]
    assert held["n_good"] == 12 and held["n_defect"] == 16  # the whole test split: no classifier here
    for r in comparison.results:
        path = bundle_file(out, r.family)
        assert Path(r.bundle) == path and path.is_file()
        assert r.bundle_bytes == path.stat().st_size
        again = evaluate_bundle(path, demo_data, device="cpu")  # the saved bundle, scored on its own
        assert len(r.scores) == held["n_good"] + held["n_defect"]
        assert r.image_auroc == pytest.approx(again.metrics["image_auroc"])
        assert r.image_auroc == pytest.approx(roc_auc_score(r.labels, r.scores))
        assert r.pixel_auroc == pytest.approx(again.metrics["pixel_auroc"])  # the demo has masks
        assert r.train_s > 0 and r.ms_per_image > 0
        # at the escape target: at most 1 % of the defects pass, and the false rejects are counted right
        s, y = np.array(r.scores), np.array(r.labels)
        t = r.at_target
        assert t.escape_rate is not None and t.escape_rate <= 0.01
        assert t.false_reject_rate == pytest.approx(np.mean(s[y == 0] > t.threshold))
        assert r.at_bundle_threshold.threshold == pytest.approx(again.inspector.threshold.high)
        assert r.roc_fpr[0] == 0 and r.roc_tpr[-1] == 1
        assert "good images" in r.trained_on


def test_the_recommendation_is_the_best_held_out_auroc(compared) -> None:
    comparison, _out, _events = compared
    best = max(comparison.results, key=lambda r: round(r.image_auroc, 3))
    top = [r for r in comparison.results if round(r.image_auroc, 3) == round(best.image_auroc, 3)]
    assert comparison.recommendation.family in {r.family for r in top}
    assert f"{best.image_auroc:.3f}" in comparison.recommendation.reason


def _row(name: str, auroc: float, fr: float, ms: float = 5.0) -> FamilyResult:
    return FamilyResult(name, f"{name}.inspector", "", 1.0, ms, 1000, 10, 10, auroc, auroc, None, None,
                        OperatingRates(1.0, fr, 0.0), OperatingRates(1.0, fr, 0.0))


def test_a_tie_at_three_decimals_goes_to_fewer_false_rejects_then_speed() -> None:
    rec = recommend([_row("a", 0.9312, 0.40), _row("b", 0.9309, 0.10), _row("c", 0.80, 0.0)])
    assert rec.family == "b" and "tied with a" in rec.reason and "fewer false rejects" in rec.reason
    rec = recommend([_row("a", 0.95, 0.2, ms=9.0), _row("b", 0.95, 0.2, ms=3.0)])
    assert rec.family == "b" and "faster" in rec.reason
    assert recommend([_row("a", 0.70, 0.0), _row("b", 0.71, 0.9)]).family == "b"  # AUROC first, whatever the rest


def test_one_progress_bar_over_every_family(compared) -> None:
    _comparison, _out, events = compared
    steps = [ev for ev in events if ev.kind == "step"]
    fractions = [ev.fraction for ev in steps]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert {ev.epochs for ev in steps} == {2}  # two families, one bar
    done = [ev.payload["result"].family for ev in events if isinstance(ev.payload, dict) and "result" in ev.payload]
    assert done == ["patchcore", "ganomaly"]  # each family's row as soon as it is measured


def test_the_files_written_hold_the_table_curves_and_recommendation(compared) -> None:
    comparison, out, _events = compared
    paths = write_comparison(out, comparison)
    back = read_comparison(paths["json"])
    assert back.recommendation == comparison.recommendation
    assert [r.image_auroc for r in back.results] == [r.image_auroc for r in comparison.results]
    with open(paths["csv"], newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["family"] for r in rows] == ["patchcore", "ganomaly"]
    assert [r["recommended"] for r in rows].count("yes") == 1
    assert float(rows[0]["image_auroc"]) == pytest.approx(comparison.results[0].image_auroc, abs=1e-5)
    page = paths["html"].read_text(encoding="utf-8")
    assert "Recommendation" in page and comparison.recommendation.family in page
    for name in ("roc.png", "pr.png"):
        assert (paths["html"].parent / name).stat().st_size > 5000  # a drawn figure, not an empty file


def _good_only(demo_data: Path, out: Path) -> Path:
    """The demo's good images alone, as good/ (a seeded 30 % of them is held out, all good)."""
    (out / "good").mkdir(parents=True)
    for i, p in enumerate(sorted(demo_data.glob("*/good/*.png"))):
        shutil.copy(p, out / "good" / f"{i:03d}.png")
    return out


def test_the_classifier_is_left_out_without_labelled_defects(demo_data: Path, tmp_path: Path) -> None:
    data = _good_only(demo_data, tmp_path / "parts")
    plan = plan_comparison(data, ["patchcore", "vgg16"])
    assert plan.families == ["patchcore"] and "labelled defective images" in plan.skipped["vgg16"]
    assert "no defective held-out images" in plan.warning()
    comparison = compare(data, tmp_path / "out", settings=tiny("patchcore", "vgg16"))
    assert [r.family for r in comparison.results] == ["patchcore"]
    assert "vgg16" in comparison.skipped and not bundle_file(tmp_path / "out", "vgg16").exists()
    r = comparison.result("patchcore")
    assert r.image_auroc is None and r.at_bundle_threshold.false_reject_rate is not None
    assert comparison.recommendation.family is None and "no family" in comparison.recommendation.reason


def test_the_classifier_is_compared_on_its_held_out_split_with_labelled_defects(demo_data: Path, tmp_path: Path) -> None:
    from inspection_core.bundle import read_manifest

    comparison = compare(demo_data, tmp_path / "out", settings=tiny("ganomaly", "vgg16"))
    assert [r.family for r in comparison.results] == ["ganomaly", "vgg16"]
    manifest = read_manifest(bundle_file(tmp_path / "out", "vgg16"))
    never_seen = set(manifest["training"]["split"]["test_paths"])  # what the classifier never trained on
    # less the good training images its recipe may hold out: the unsupervised family trained on those
    assert set(comparison.held_out["paths"]) == {p for p in never_seen if not p.startswith("train/")}
    assert comparison.held_out["n_good"] > 0 and comparison.held_out["n_defect"] > 0
    assert {(r.n_good, r.n_defect) for r in comparison.results} == {(comparison.held_out["n_good"],
                                                                     comparison.held_out["n_defect"])}
    assert "defective images" in comparison.result("vgg16").trained_on
    assert "defective" not in comparison.result("ganomaly").trained_on


@pytest.mark.fault("training", "one family of a comparison fails to train (its pretrained weights file is not a "
                   "torch file)", "that family is left out with the error in the table; the others are compared "
                   "and one of them recommended")
def test_a_family_that_fails_is_left_out_and_the_others_compared(demo_data: Path, tmp_path: Path) -> None:
    garbage = tmp_path / "resnet18.pth"
    garbage.write_bytes(b"not a torch file")
    broken = dataclasses.replace(PATCHCORE, params={"backbone": "resnet18"}, weights=str(garbage))
    comparison = compare(demo_data, tmp_path / "out", settings=[broken, *tiny("ganomaly")])
    assert [r.family for r in comparison.results] == ["ganomaly"]
    assert "failed" in comparison.skipped["patchcore"] and str(garbage) in comparison.skipped["patchcore"]
    assert comparison.recommendation.family == "ganomaly"
    assert not bundle_file(tmp_path / "out", "patchcore").exists()
    row = next(r for r in table_rows(comparison) if r["family"] == "patchcore")
    assert row["trained_on"].startswith("left out: failed") and row["image_auroc"] == "–"


def test_cancel_stops_after_the_family_being_trained(demo_data: Path, tmp_path: Path) -> None:
    token = CancelToken()

    def progress(ev: ProgressEvent) -> None:
        if isinstance(ev.payload, dict) and ev.payload.get("family") == "skip-ganomaly" and ev.kind == "message":
            token.cancel()  # while the second family trains

    with pytest.raises(Cancelled):
        compare(demo_data, tmp_path / "out", settings=tiny("ganomaly", "skip-ganomaly"), progress=progress,
                cancel=token)
    assert bundle_file(tmp_path / "out", "ganomaly").is_file()  # the first was done and stays
    assert not bundle_file(tmp_path / "out", "skip-ganomaly").exists()  # the second wrote nothing
    assert not (tmp_path / "out" / "comparison.json").exists()


@pytest.mark.fault("cli", "compare with a misspelt family, a missing data folder, a folder with no held-out images, "
                   "or bundles of an earlier comparison in --out", "one line naming the problem (the closest family "
                   "name; the folder), exit 2, nothing trained")
def test_cli_errors_are_one_clear_line(capsys, demo_data: Path, tmp_path: Path) -> None:
    rc, _out, err = run_cli(capsys, "compare", "--data", str(demo_data), "--models", "patchcor", "--out", str(tmp_path / "o"))
    assert rc == 2 and "unknown model family 'patchcor' (did you mean patchcore?)" in err
    missing = tmp_path / "nowhere"
    rc, _out, err = run_cli(capsys, "compare", "--data", str(missing), "--out", str(tmp_path / "o"))
    assert rc == 2 and f"data folder '{missing}' does not exist" in err
    train_only = tmp_path / "train_only"
    shutil.copytree(demo_data / "train", train_only / "train")
    rc, _out, err = run_cli(capsys, "compare", "--data", str(train_only), "--out", str(tmp_path / "o"))
    assert rc == 2 and "no held-out images" in err and str(train_only) in err
    bundle_file(tmp_path / "o", "ganomaly").parent.mkdir(parents=True)
    bundle_file(tmp_path / "o", "ganomaly").write_bytes(b"an earlier bundle")
    rc, _out, err = run_cli(capsys, "compare", "--data", str(demo_data), "--models", "ganomaly", "--out",
                            str(tmp_path / "o"), "--preset", "quick", "--image-size", "32")
    assert rc == 2 and "already exists" in err and "--overwrite" in err
    assert bundle_file(tmp_path / "o", "ganomaly").read_bytes() == b"an earlier bundle"
    with pytest.raises(CompareError, match="did you mean skip-ganomaly"):
        plan_comparison(demo_data, ["skip-ganomly"])


def test_cli_prints_the_table_and_recommendation_and_writes_the_report(capsys, demo_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    rc, text, _err = run_cli(capsys, "compare", "--data", str(demo_data), "--models", "skip_ganomaly", "--out", str(out), "--preset", "quick", "--image-size", "32", "--device", "cpu")
    assert rc == 0
    saved = json.loads((out / "comparison.json").read_text(encoding="utf-8"))
    lines = text.splitlines()
    for r in saved["results"]:
        row = next(line for line in lines if line.startswith(r["family"] + " "))
        assert f"{r['image_auroc']:.3f}" in row and f"{r['ms_per_image']:.1f}" in row
    assert f"recommendation: {saved['recommendation']['family']}: best held-out image AUROC" in text
    assert (out / "report" / "index.html").is_file() and (out / "comparison.csv").is_file()
    assert (out / "skip-ganomaly" / "skip-ganomaly.inspector").is_file()  # skip_ganomaly is skip-ganomaly


@pytest.mark.slow  # a second interpreter that imports torch and trains twice: 15-20 s on 2 cores
@pytest.mark.skipif(sys.platform.startswith("win"), reason="POSIX signals")
@pytest.mark.fault("cli", "Ctrl-C (SIGINT) while 'inspector compare' trains its second family",
                   "one line naming the bundles finished before the stop (kept, whole), exit 130; the family in "
                   "training wrote nothing and no comparison is written")
def test_ctrl_c_during_compare_keeps_the_finished_bundles(demo_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    proc = subprocess.Popen([sys.executable, "-m", "inspection_core.cli.main", "compare", "--data", str(demo_data),
                             "--models", "ganomaly", "skip-ganomaly", "--out", str(out), "--preset", "quick",
                             "--image-size", "32", "--device", "cpu"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith("skip-ganomaly: training skip-ganomaly"):  # the first family is done and saved
            break
    else:
        pytest.fail("compare ended before its second family: " + "".join(seen))
    proc.send_signal(signal.SIGINT)
    err = proc.stderr.read()
    assert proc.wait(60) == 130, err
    notice = [line for line in err.splitlines() if "interrupted" in line]
    assert notice == [f"inspector: interrupted (SIGINT) during compare; bundles finished before the stop kept in "
                      f"'{out}': ganomaly; the family in training wrote nothing, no comparison written"], err
    assert "Traceback" not in err
    assert bundle_file(out, "ganomaly").is_file() and not bundle_file(out, "skip-ganomaly").exists()
    assert not (out / "comparison.json").exists()
    assert [p.name for p in (out / "skip-ganomaly").iterdir()] == []  # no temporary file or lock left
