"""Defect types: a bundle trained with labelled defect folders names the type
of a FAIL ("FAIL: scratch (0.82)"), or "unknown"; evaluation reports the
confusion matrix and each type's detection rate; the history records and
filters the type (ADR 0020). On the demo's four generated defect types."""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
import zipfile
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from _cli import run_cli
from inspection_core.bundle import load_manifest
from inspection_core.data.demo import DEFECT_TYPES
from inspection_core.defect_types import UNKNOWN, TypeClassifier
from inspection_core.defect_types.fit import fit_classifier

WEIGHTS = Path(__file__).resolve().parents[3] / "shared" / "weights" / "mobilenet_v2-b0353104.pth"


@pytest.fixture(scope="module")
def typed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(data, PatchCore bundle with a defect-type classifier) on ImageNet MobileNetV2 features at 64 px."""
    if not WEIGHTS.is_file():
        pytest.skip(f"pretrained weights not available: {WEIGHTS}")
    from inspection_core.bundle import save_bundle
    from inspection_core.config import ModelConfig, TrainConfig
    from inspection_core.data.demo import make_demo_dataset
    from inspection_core.training import train
    from inspection_core.usecases.defect_types import train_defect_types

    root = tmp_path_factory.mktemp("types")
    (root / "torch" / "hub" / "checkpoints").mkdir(parents=True)
    shutil.copy(WEIGHTS, root / "torch" / "hub" / "checkpoints" / WEIGHTS.name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(root / "torch"))
        data = make_demo_dataset(root / "washers", seed=1, size=64, n_train=32, n_test_good=8, n_test_defect_per_type=8)
        result = train(data, ModelConfig("patchcore", image_size=64), TrainConfig(batch_size=16, device="cpu", seed=0))
        bundle = save_bundle(root / "pc.inspector", result.model, result.manifest)
        outcome = train_defect_types(bundle, data, out=root / "typed", device="cpu")
        yield data, outcome.path


def test_the_classifier_is_trained_on_half_of_each_type_and_measured_on_the_rest(typed: tuple[Path, Path]) -> None:
    data, bundle = typed
    record = load_manifest(bundle).defect_types
    assert record is not None and record.classes == sorted(DEFECT_TYPES)
    assert record.trained_on == {t: 4 for t in sorted(DEFECT_TYPES)}
    held = record.held_out
    assert held is not None and held["n"] == 16
    assert held["macro_accuracy"] >= 0.5, held  # four types: chance is 0.25
    # plain numbers in the manifest, no other member in the bundle (nothing that loading could run)
    with zipfile.ZipFile(bundle) as zf:
        assert sorted(zf.namelist()) == ["manifest.json", "weights.pt"]
        assert json.loads(zf.read("manifest.json"))["defect_types"]["coef"][0][0] == pytest.approx(record.coef[0][0])


def test_a_fail_names_its_type_and_a_pass_does_not(typed: tuple[Path, Path]) -> None:
    from inspection_core.data.images import read_image
    from inspection_core.inference import Inspector

    data, bundle = typed
    insp = Inspector(bundle, device="cpu")
    named = []
    for p in sorted((data / "test").glob("*/*.png")):
        pred = insp.predict(read_image(p))
        if pred.verdict.value == "FAIL":
            assert pred.defect_type in (*DEFECT_TYPES, UNKNOWN) and 0 < pred.defect_confidence <= 1
            named.append((p.parent.name, pred.defect_type))
        else:
            assert pred.defect_type is None and pred.defect_confidence is None
    defects = [n for n in named if n[0] != "good"]
    assert len(defects) >= 24 and sum(t == n for t, n in defects) >= len(defects) // 2, named


def test_evaluate_reports_the_confusion_matrix_and_each_types_detection_rate(typed: tuple[Path, Path], tmp_path: Path,
                                                                              capsys: pytest.CaptureFixture) -> None:
    data, bundle = typed
    rc, out, err = run_cli(capsys, "evaluate", "--bundle", str(bundle), "--data", str(data), "--device", "cpu",
                           "--report", str(tmp_path / "report"))
    assert rc == 0, err
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert set(metrics["per_type"]) == set(DEFECT_TYPES) and all(r["n"] == 8 for r in metrics["per_type"].values())
    types = metrics["defect_types"]
    assert types["n"] == 16 and types["excluded_trained"] == 16  # only the defects it was not trained on
    assert sum(sum(row.values()) for row in types["matrix"].values()) == 16
    assert "detection rate per defect type" in out and "true \\ named" in out
    assert "Named types: confusion matrix on 16 defects" in (tmp_path / "report" / "index.html").read_text()


def test_predict_prints_and_records_the_type(typed: tuple[Path, Path], tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    from inspection_core.history import HistoryDB

    data, bundle = typed
    folder = data / "test" / "missing"
    rc, out, err = run_cli(capsys, "predict", "--bundle", str(bundle), str(folder), "--csv", str(tmp_path / "v.csv"),
                           "--record", str(tmp_path / "h.db"), "--device", "cpu")
    assert rc == 0, err
    fails = [line.split("\t") for line in out.splitlines() if "\tFAIL" in line]
    assert fails and all(len(f) == 4 and f[3].split(" (")[0] in (*DEFECT_TYPES, "unknown type") for f in fails)
    rows = list(csv.DictReader((tmp_path / "v.csv").open()))
    assert list(rows[0]) == ["path", "score", "verdict", "reason", "defect_type"]
    assert [r["defect_type"] for r in rows if r["verdict"] == "FAIL"] == [f[3] for f in fails]
    with HistoryDB(tmp_path / "h.db") as db:
        recorded = {r.image_ref: r.defect_type for r in db.query()}
        assert [recorded[r["path"]] for r in rows if r["verdict"] == "FAIL"] == [
            f[3].split(" (")[0].replace("unknown type", "unknown") for f in fails]
        name = next(t for t in recorded.values() if t)
        assert db.count(defect_type=name) == sum(t == name for t in recorded.values()) > 0
        assert name in db.defect_types()


def test_a_family_without_descriptors_uses_a_pretrained_backbone(typed: tuple[Path, Path], tiny_ganomaly_bundle: Path,
                                                                 tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from inspection_core.usecases.defect_types import train_defect_types

    data, _bundle = typed
    monkeypatch.setenv("TORCH_HOME", str(_bundle.parent / "torch"))
    outcome = train_defect_types(tiny_ganomaly_bundle, data, out=tmp_path / "gan_typed", device="cpu")
    record = load_manifest(outcome.path).defect_types
    assert record is not None and record.features["source"] == "backbone"
    assert record.features["backbone"] == "mobilenet_v2"
    assert load_manifest(outcome.path).bundle_id == load_manifest(tiny_ganomaly_bundle).bundle_id  # weights unchanged


def test_unknown_when_far_from_every_type_or_unsure() -> None:
    rng = np.random.default_rng(0)
    centres = {"crack": np.r_[5.0, 0, 0, 0], "scratch": np.r_[0, 5.0, 0, 0], "stain": np.r_[0, 0, 5.0, 0]}
    x = np.concatenate([c + rng.normal(0, 0.5, (20, 4)) for c in centres.values()])
    y = [t for t in centres for _ in range(20)]
    clf = TypeClassifier.from_record(json.loads(json.dumps(fit_classifier(x, y).to_record())))  # through JSON
    near = [c + rng.normal(0, 0.3, 4) for c in centres.values()]
    assert [a.label for a in clf.predict(np.stack(near))] == list(centres)
    far = np.r_[0, 0, 0, 40.0]                     # a kind of defect it never saw
    midway = (centres["crack"] + centres["scratch"]) / 2  # as much one as the other
    answers = clf.predict(np.stack([far, midway]))
    assert [a.label for a in answers] == [UNKNOWN, UNKNOWN]
    assert answers[1].confidence < 0.9


@pytest.mark.fault("bundle", "a defect-type classifier record with the wrong shapes, a negative scale or an unknown method",
                   "the bundle is refused at load, naming the classifier and the field")
def test_a_damaged_classifier_record_is_refused(typed: tuple[Path, Path], tmp_path: Path) -> None:
    from inspection_core.bundle import BundleError, update_manifest
    from inspection_core.inference import Inspector

    _data, bundle = typed
    copy = tmp_path / "damaged.inspector"
    shutil.copy(bundle, copy)

    def damage(m: dict) -> dict:
        m["defect_types"]["coef"] = m["defect_types"]["coef"][:1]
        return m
    update_manifest(copy, damage)
    with pytest.raises(BundleError, match="defect-type classifier.*coef"):
        Inspector(copy, device="cpu")


@pytest.mark.fault("cli", "defect-types on a folder whose defects are not sorted by type (good/ + defect/)",
                   "exit 2: it needs labelled defect folders test/<type>/ of at least two types, and says what it found")
def test_cli_defect_types_needs_two_labelled_types(tiny_patchcore_bundle: Path, good_defect_data: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    rc, _out, err = run_cli(capsys, "defect-types", "--bundle", str(tiny_patchcore_bundle), "--data",
                            str(good_defect_data), "--out", str(tmp_path / "x"), "--device", "cpu")
    assert rc == 2 and "no defect types to learn" in err and "at least two types" in err
    assert not list(tmp_path.iterdir())
    rc, _out, err = run_cli(capsys, "defect-types", "--bundle", str(tiny_patchcore_bundle), "--data",
                            str(good_defect_data), "--holdout", "1.5")
    assert rc == 2 and "--holdout" in err


@pytest.mark.fault("history", "a history database made before the defect-type column (schema 1)",
                   "opened and migrated in place: its rows kept, their type empty, new rows typed")
def test_a_schema_1_history_gains_the_column(tmp_path: Path) -> None:
    from inspection_core.history import HistoryDB
    from inspection_core.history.db import APPLICATION_ID
    from inspection_core.history.records import SCHEMA_V1

    path = tmp_path / "old.db"
    con = sqlite3.connect(path)
    for stmt in filter(str.strip, SCHEMA_V1.split(";")):
        con.execute(stmt)
    con.execute("INSERT INTO inspections (time, epoch, verdict) VALUES ('2026-01-01T00:00:00.000Z', 1767225600, 'FAIL')")
    con.execute(f"PRAGMA application_id={APPLICATION_ID}")
    con.execute("PRAGMA user_version=1")
    con.commit()
    con.close()
    with HistoryDB(path) as db:
        assert [r.defect_type for r in db.query()] == [None]
        db.record(score=2.0, verdict="FAIL", threshold_high=1.0, defect_type="scratch")
        assert db.count(defect_type="scratch") == 1 and db.count() == 2 and db.defect_types() == ["scratch"]
