"""Teach: good parts a PatchCore bundle rejected join its memory bank; the
taught bundle is a new version, re-checked on its calibration images; other
families queue the images for their next training (ADR 0020)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from _cli import run_cli
from inspection_core.bundle import load_manifest
from inspection_core.config import ModelConfig, TrainConfig
from inspection_core.data.images import read_image
from inspection_core.inference import Inspector
from inspection_core.usecases.teach import TeachError, TeachRefused, prepare_teach, queue_folder
from inspection_core.usecases.teach_check import MAX_ESCAPE_RISE, Rates, TeachCheck


def _scores(bundle: Path, files: list[Path]) -> np.ndarray:
    insp = Inspector(bundle, device="cpu")
    return np.array([insp.predict(read_image(f)).score for f in files])


def _worst_good(bundle: Path, data: Path, n: int) -> list[Path]:
    goods = sorted((data / "test" / "good").glob("*.png"))
    return [goods[i] for i in np.argsort(-_scores(bundle, goods))[:n]]


def test_taught_good_parts_score_lower_and_the_new_version_records_its_parent(
        tiny_patchcore_bundle: Path, demo_data: Path, tmp_path: Path) -> None:
    taught = _worst_good(tiny_patchcore_bundle, demo_data, 3)
    before = _scores(tiny_patchcore_bundle, taught)
    parent_bytes = tiny_patchcore_bundle.read_bytes()
    plan = prepare_teach(tiny_patchcore_bundle, taught, by="ana", device="cpu")
    assert plan.kind == "memory_bank" and plan.check is not None
    assert plan.detail["bank_after"] == plan.detail["bank_before"] + plan.detail["added"] > plan.detail["bank_before"]
    assert plan.check.excluded == 3  # the taught images are in the check set: left out of it
    out = plan.save(tmp_path / "taught", force=not plan.check.passed)
    after = _scores(out, taught)
    assert (after < before).all(), (before, after)
    assert tiny_patchcore_bundle.read_bytes() == parent_bytes  # the parent is not changed
    parent, child = load_manifest(tiny_patchcore_bundle), load_manifest(out)
    assert child.bundle_id != parent.bundle_id and child.name == "taught"
    lin = child.lineage
    assert lin is not None and lin.parent == parent.bundle_id and lin.by == "ana" and lin.action == "memory_bank"
    assert [(a["file"], a["sha256"]) for a in lin.added or []] == [
        (f.name, hashlib.sha256(f.read_bytes()).hexdigest()) for f in taught]
    assert lin.check is not None and lin.check["before"]["n_good"] == lin.check["after"]["n_good"] == 12 - 3


def test_every_patch_of_a_taught_part_that_the_bank_lacks_joins_it(tiny_patchcore_bundle: Path, demo_data: Path) -> None:
    # not only the patches that made the part FAIL: every patch farther from the bank than half
    # its own spacing, so that a neighbouring good part gains from the whole taught region
    from inspection_core.data.preprocess import to_tensor
    from inspection_core.models.components.nearest import nearest_distances
    from inspection_core.models.patchcore.teach import REACH_SHARE, bank_reach, candidate_patches

    insp = Inspector(tiny_patchcore_bundle, device="cpu")
    model = insp.model
    x = to_tensor(insp.prepare(read_image(_worst_good(tiny_patchcore_bundle, demo_data, 1)[0]))[None])
    patches = candidate_patches(model.embed, [x])
    reach = REACH_SHARE * bank_reach(model.memory_bank.float())
    lacking = int((nearest_distances(patches, model.memory_bank)[0][:, 0] > reach).sum())
    record = model.learn_good([x])
    assert not record["coreset_rerun"] and record["reach"] == pytest.approx(reach, rel=1e-4)
    assert 0 < record["added"] <= lacking
    assert (nearest_distances(patches, model.memory_bank)[0][:, 0] <= reach + 1e-4).all()


def test_teaching_a_taught_bundle_keeps_its_ancestry(tiny_patchcore_bundle: Path, demo_data: Path, tmp_path: Path) -> None:
    goods = sorted((demo_data / "test" / "good").glob("*.png"))
    first = prepare_teach(tiny_patchcore_bundle, goods[:1], by="a", device="cpu").save(tmp_path / "v2", force=True)
    second = prepare_teach(first, goods[1:2], by="b", device="cpu").save(tmp_path / "v3", force=True)
    lin = load_manifest(second).lineage
    assert lin is not None and lin.parent == load_manifest(first).bundle_id and lin.by == "b"
    assert [a["parent"] for a in lin.ancestors or []] == [load_manifest(tiny_patchcore_bundle).bundle_id]


def test_past_the_cap_the_coreset_is_chosen_again(demo_data: Path, tmp_path: Path) -> None:
    from inspection_core.bundle import save_bundle
    from inspection_core.training import train

    result = train(demo_data, ModelConfig("patchcore", image_size=32, params={
        "weights": "random", "backbone": "resnet18", "max_bank": 40, "coreset_ratio": 1.0, "bank_augment": []}),
        TrainConfig(batch_size=16, device="cpu", seed=0))
    bundle = save_bundle(tmp_path / "capped", result.model, result.manifest)
    assert load_manifest(bundle).training.fit["memory_bank"] == 40  # type: ignore[union-attr]
    plan = prepare_teach(bundle, sorted((demo_data / "test" / "good").glob("*.png"))[:6], device="cpu")
    assert plan.detail["coreset_rerun"] and plan.detail["bank_after"] == 40
    out = plan.save(tmp_path / "capped2", force=True)
    assert Inspector(out, device="cpu").model.memory_bank.shape[0] == 40


@pytest.mark.fault("bundle", "teach defective parts as good (a wrong override): the taught bundle lets defects pass",
                   "refused with the false-reject and escape rates before and after; --force saves it, recorded as forced")
def test_a_taught_bundle_whose_escapes_rise_is_refused(tiny_patchcore_bundle: Path, demo_data: Path,
                                                      tmp_path: Path) -> None:
    # copies of the check set's own defects under other names: taught "good", they pass afterwards
    wrong = tmp_path / "overridden"
    wrong.mkdir()
    for p in sorted((demo_data / "test").glob("[!g]*/*.png")):
        shutil.copy(p, wrong / f"{p.parent.name}_{p.name}")
    plan = prepare_teach(tiny_patchcore_bundle, sorted(wrong.iterdir()), device="cpu")
    assert plan.check is not None and not plan.check.passed
    assert plan.check.after.escapes > plan.check.before.escapes
    with pytest.raises(TeachRefused, match=r"escapes .* -> .*of 16 defective"):
        plan.save(tmp_path / "refused")
    assert not (tmp_path / "refused.inspector").exists()
    out = plan.save(tmp_path / "forced", force=True)
    check = load_manifest(out).lineage.check  # type: ignore[union-attr]
    assert check["forced"] is True and check["passed"] is False


@pytest.mark.parametrize("n_defect, before, after, passed", [
    (100, 3, 4, True),     # one more escape in 100: allowed (the rise is not beyond 1 in 100)
    (100, 3, 5, False),    # two more in 100: refused
    (50, 0, 1, False),     # one more in 50 is two in 100: refused
    (40, 2, 1, True),      # fewer escapes
    (0, 0, 0, False),      # no defective image: escapes cannot be checked
])
def test_the_escape_rule(n_defect: int, before: int, after: int, passed: bool) -> None:
    check = TeachCheck(Rates(10, n_defect, 2, before), Rates(10, n_defect, 1, after), "t")
    assert check.passed is passed
    assert MAX_ESCAPE_RISE == 0.01


def test_a_family_that_must_train_queues_the_images(tiny_ganomaly_bundle: Path, demo_data: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    bundle = tmp_path / "gan.inspector"
    shutil.copy(tiny_ganomaly_bundle, bundle)
    goods = sorted((demo_data / "test" / "good").glob("*.png"))[:2]
    rc, out, err = run_cli(capsys, "teach", "--bundle", str(bundle), "--good", *map(str, goods), "--by", "ana",
                           "--device", "cpu")
    assert rc == 0, err
    assert "learns only by training" in out and "queued" in out
    queue = queue_folder(bundle)
    entries = json.loads((queue / "queue.json").read_text())
    assert [e["sha256"] for e in entries] == [hashlib.sha256(g.read_bytes()).hexdigest() for g in goods]
    assert all((queue / e["file"]).read_bytes() == g.read_bytes() for e, g in zip(entries, goods))
    assert entries[0]["by"] == "ana"
    rc, _out, _err = run_cli(capsys, "teach", "--bundle", str(bundle), "--good", str(goods[0]), "--device", "cpu")
    assert rc == 0 and len(json.loads((queue / "queue.json").read_text())) == 2  # queued once
    assert bundle.read_bytes() == tiny_ganomaly_bundle.read_bytes()


def test_cli_teach_saves_the_new_version(tiny_patchcore_bundle: Path, demo_data: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture) -> None:
    good = sorted((demo_data / "test" / "good").glob("*.png"))[:2]
    rc, out, err = run_cli(capsys, "teach", "--bundle", str(tiny_patchcore_bundle), "--good", *map(str, good),
                           "--out", str(tmp_path / "v2"), "--force", "--device", "cpu")
    assert rc == 0, err
    assert "false rejects" in out and "escapes" in out
    assert f"parent {load_manifest(tiny_patchcore_bundle).bundle_id}" in out
    assert (tmp_path / "v2.inspector").is_file()


@pytest.mark.fault("cli", "teach with a missing image, a folder, an unreadable image, an existing --out or no --out",
                   "exit 2 with one line naming the file and the problem; nothing written")
def test_cli_teach_errors(tiny_patchcore_bundle: Path, demo_data: Path, tmp_path: Path,
                          capsys: pytest.CaptureFixture) -> None:
    good = str(sorted((demo_data / "test" / "good").glob("*.png"))[0])
    bundle = str(tiny_patchcore_bundle)
    rc, _o, err = run_cli(capsys, "teach", "--bundle", bundle, "--good", str(tmp_path / "nope.png"), "--out", "x")
    assert rc == 2 and "nope.png' does not exist" in err
    rc, _o, err = run_cli(capsys, "teach", "--bundle", bundle, "--good", str(tmp_path), "--out", "x")
    assert rc == 2 and "is a folder" in err
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    rc, _o, err = run_cli(capsys, "teach", "--bundle", bundle, "--good", str(tmp_path / "broken.png"),
                          "--out", str(tmp_path / "o"), "--device", "cpu")
    assert rc == 2 and "broken.png" in err
    (tmp_path / "there.inspector").write_bytes(b"")
    rc, _o, err = run_cli(capsys, "teach", "--bundle", bundle, "--good", good, "--out", str(tmp_path / "there"))
    assert rc == 2 and "exists" in err
    rc, _o, err = run_cli(capsys, "teach", "--bundle", bundle, "--good", good, "--device", "cpu")
    assert rc == 2 and "--out" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.png", "there.inspector"]


@pytest.mark.fault("bundle", "teach a bundle whose calibration images and training folder are not on this machine",
                   "refused: it names what is missing and asks for --data")
def test_no_images_to_recheck_on(tiny_patchcore_bundle: Path, demo_data: Path, tmp_path: Path) -> None:
    from inspection_core.bundle import update_manifest

    bundle = tmp_path / "moved.inspector"
    shutil.copy(tiny_patchcore_bundle, bundle)

    def elsewhere(m: dict) -> dict:
        m["training"]["data"]["root"] = str(tmp_path / "gone")
        m["training"]["data"]["fingerprint"] = "0"
        return m
    update_manifest(bundle, elsewhere)
    good = sorted((demo_data / "test" / "good").glob("*.png"))[:1]
    with pytest.raises(TeachError, match="--data"):
        prepare_teach(bundle, good, device="cpu")
    plan = prepare_teach(bundle, good, data=demo_data, device="cpu")
    assert plan.check is not None and plan.check.before.n_defect == 16
