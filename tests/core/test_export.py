"""``inspector export``: every family's scoring graph to ONNX and OpenVINO,
reloaded by the station's own runtime and checked against PyTorch.

Real parts throughout: bundles trained on generated images, real ONNX
Runtime and OpenVINO sessions, real files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from _cli import run_cli

ROOT = Path(__file__).resolve().parents[2]

#: each family's tiny trained bundle (conftest's fixtures; bigan's is below)
FAMILY_BUNDLES = {"patchcore": "tiny_patchcore_bundle", "ganomaly": "tiny_ganomaly_bundle",
                  "skip-ganomaly": "tiny_bundle", "bigan": "tiny_bigan_bundle", "vgg16": "tiny_vgg16_bundle"}


@pytest.fixture(scope="module")
def tiny_bigan_bundle(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from inspection_core.bundle import save_bundle
    from inspection_core.config import ModelConfig, TrainConfig
    from inspection_core.training import train

    result = train(demo_data, ModelConfig(model="bigan", image_size=32, params={"latent_dim": 16, "base_width": 8}),
                   TrainConfig(epochs=2, batch_size=16, device="cpu", seed=0, samples_per_epoch=4))
    return save_bundle(tmp_path_factory.mktemp("bundles") / "tiny_bigan.inspector", result.model, result.manifest)


def _leftovers(folder: Path, keep: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != keep)


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
@pytest.mark.parametrize("family", list(FAMILY_BUNDLES))
def test_every_family_exports_reloads_and_scores_as_pytorch(family: str, fmt: str, request: pytest.FixtureRequest,
                                                            tmp_path: Path) -> None:
    from inspection_core.inference import Inspector
    from inspection_core.station import ExportedModel, read_export
    from inspection_core.station.model import to_image, to_input
    from inspection_core.usecases.export import export

    bundle = Path(request.getfixturevalue(FAMILY_BUNDLES[family]))
    out = tmp_path / "station"
    result, chosen = export(bundle, fmt, out)

    # the check ran on the bundle's own held-out images, and held
    fid = result.fidelity
    assert fid.ok and fid.n == len(chosen.labels) > 0 and "training folder" in chosen.source
    assert (chosen.labels == 1).any() and (chosen.labels == 0).any()
    assert fid.auroc is not None and abs(fid.auroc - fid.auroc_fp32) <= 0.005
    assert fid.changed <= 0.005 * fid.n

    # the folder is the station's contract, and nothing else was left beside it
    assert _leftovers(tmp_path, "station") == []
    m = json.loads((out / "manifest.json").read_text())
    ex = m["export"]
    assert m["format"] == "inspector-export" and m["format_version"] == 1
    from inspection_core.bundle import read_manifest

    assert m["bundle"] == json.loads(json.dumps(read_manifest(bundle)))
    assert ex["format"] == fmt and ex["file"] == ("model.onnx" if fmt == "onnx" else "model.xml")
    assert sorted(p.name for p in out.iterdir()) == (["manifest.json", "model.onnx"] if fmt == "onnx"
                                                     else ["manifest.json", "model.bin", "model.xml"])
    assert ex["input"] == "image" and ex["precision"] == "fp32"
    expected_outputs = {"patchcore": ["score", "anomaly_map", "texture"], "vgg16": ["score", "anomaly_map"]}
    assert ex["outputs"] == expected_outputs.get(family, ["score", "anomaly_map", "reconstruction"])
    assert ex["parity"]["ok"] is True and ex["parity"]["n"] == fid.n and ex["parity"]["images"]["source"]
    assert ex["source"]["bundle_id"] and len(ex["source"]["sha256"]) == 64 and ex["source"]["file"] == bundle.name
    assert ex["versions"]["torch"] and ex["versions"]["onnxruntime" if fmt == "onnx" else "openvino"]
    ref_thr = Inspector(bundle, device="cpu", precision="eager").threshold.high
    assert ex["threshold"]["high"] == pytest.approx(ref_thr, rel=1e-3)  # the bundle's, as this graph sees it

    if fmt == "onnx":  # the graph's own names, exactly
        import onnx

        graph = onnx.load(str(out / "model.onnx")).graph
        assert [i.name for i in graph.input] == ["image"]
        assert [o.name for o in graph.output] == ex["outputs"]

    # the station's runtime scores a single image and a batch as PyTorch does
    record = read_export(out)
    station = ExportedModel(record)
    assert station.runtime == ("onnxruntime" if fmt == "onnx" else "openvino")
    images = chosen.images[:5]
    ref = Inspector(bundle, device="cpu", precision="eager")
    scores, maps, recon = ref.score_images(images)
    got = station.score(to_input(images))
    np.testing.assert_allclose(got["score"], scores, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(got["anomaly_map"], maps, rtol=1e-3, atol=1e-4 * float(np.abs(maps).max()))
    one = station.score(to_input(images[:1]))
    np.testing.assert_allclose(one["score"], got["score"][:1], rtol=1e-5, atol=1e-8)
    # the graph's chunk (images per call) is recorded, and a batch scored in chunks scores as in one call
    from dataclasses import replace

    size = int(chosen.images.shape[1])
    assert ex["chunk"] == record.chunk
    assert ex["chunk"] == (max(1, (1 << 16) // size**2) if family == "patchcore" else
                           None if family == "vgg16" else max(1, (1 << 17) // size**2))
    in_twos = ExportedModel(replace(record, chunk=2)).score(to_input(images))
    for name in got:
        np.testing.assert_allclose(in_twos[name], got[name], rtol=1e-5, atol=1e-6 * max(1.0, float(np.abs(got[name]).max())))
    if recon is not None:
        assert np.abs(to_image(got["reconstruction"]).astype(int) - recon.astype(int)).max() <= 1


def _train(demo_data: Path, model: str, size: int, params: dict) -> object:
    from inspection_core.config import ModelConfig, TrainConfig
    from inspection_core.training import train

    return train(demo_data, ModelConfig(model=model, image_size=size, params=params),
                 TrainConfig(epochs=1, batch_size=16, device="cpu", seed=0, samples_per_epoch=2)).model


_GAN = {"latent_dim": 16, "base_width": 8}
_PC = {"weights": "random", "backbone": "resnet18"}


@pytest.mark.parametrize("model,size,params", [
    ("patchcore", 64, {**_PC, "score": "reweighted"}),
    ("patchcore", 64, {**_PC, "score": "patch_max", "global_grid": 3, "position_weight": 2.0, "neighbourhood": 1}),
    ("ganomaly", 32, {**_GAN, "residual": "ssim", "score": "map"}),
    ("skip-ganomaly", 64, {**_GAN, "window": 32, "score": "map"}),
    ("bigan", 32, {**_GAN, "residual": "perceptual+ssim", "perceptual_backbone": "resnet18",
                   "perceptual_weights": "random", "score": "map"}),
], ids=["patchcore-reweighted", "patchcore-grid3-position", "ganomaly-ssim", "skip-windowed", "bigan-perceptual"])
def test_each_variant_of_a_scoring_graph_runs_in_onnx_runtime_as_in_pytorch(
        model: str, size: int, params: dict, demo_data: Path, tmp_path: Path) -> None:
    """The parts of the graphs the default bundles above do not reach: the
    re-weighted score's bank neighbours, a texture grid that does not divide
    the patch grid, position channels, SSIM, sliding windows, a perceptual
    backbone; a batch of 5 and of 1 against the model's own forward."""
    import onnxruntime as ort
    import torch

    from inspection_core.export.writer import write_graph

    detector = _train(demo_data, model, size, params)
    channels = 3
    file, names, exporter = write_graph(detector, channels, size, "onnx", tmp_path)
    assert "opset" in exporter
    session = ort.InferenceSession(str(tmp_path / file), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == list(names)
    x = torch.rand(5, channels, size, size, generator=torch.Generator().manual_seed(3)) * 2 - 1
    with torch.inference_mode():
        ref = detector(x)
    got = session.run(None, {"image": x.numpy()})
    np.testing.assert_allclose(got[0], ref.scores.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got[1], ref.anomaly_map.numpy(), rtol=1e-3, atol=1e-4 * float(ref.anomaly_map.abs().max()))
    one = session.run(None, {"image": x[:1].numpy()})
    np.testing.assert_allclose(one[0], got[0][:1], rtol=1e-5, atol=1e-8)


def test_an_export_that_fails_its_check_writes_nothing_and_keeps_the_earlier_one(
        tiny_ganomaly_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A graph whose scores no longer match PyTorch's (the exported scores
    reversed: the same values on the wrong images) is refused with its
    figures; the earlier export in the folder stays, and nothing is left beside it."""
    from inspection_core.export import writer
    from inspection_core.export.writer import ExportFailure
    from inspection_core.usecases.export import export

    out = tmp_path / "station"
    export(tiny_ganomaly_bundle, "onnx", out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real = writer.exported_scores

    def reversed_scores(folder, images, batch_size=16, runtime="auto"):
        scores, engine = real(folder, images, batch_size, runtime)
        return scores[::-1].copy(), engine

    monkeypatch.setattr(writer, "exported_scores", reversed_scores)
    with pytest.raises(ExportFailure, match=r"does not hold its parity check, nothing was written: .*verdicts differ") as err:
        export(tiny_ganomaly_bundle, "onnx", out)
    assert err.value.fidelity is not None and not err.value.fidelity.ok
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert _leftovers(tmp_path, "station") == []
    with pytest.raises(ExportFailure):
        export(tiny_ganomaly_bundle, "openvino", tmp_path / "new")
    assert _leftovers(tmp_path, "station") == []


def test_a_folder_holding_other_files_is_not_overwritten(tiny_ganomaly_bundle: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    rc, _out, err = run_cli(capsys, "export", "--bundle", str(tiny_ganomaly_bundle), "--format", "onnx", "--out", str(out))
    assert rc == 2 and "other files in it" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_the_cli_exports_and_prints_the_parity_figures(tiny_ganomaly_bundle: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    rc, out, err = run_cli(capsys, "export", "--bundle", str(tiny_ganomaly_bundle), "--format", "openvino",
                           "--out", str(tmp_path / "ov"))
    assert rc == 0, err
    assert "parity: image AUROC" in out and "verdicts differ" in out and "threshold of the exported graph" in out
    assert (tmp_path / "ov" / "model.xml").is_file()


def test_cli_unknown_format(tiny_ganomaly_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rc, _out, err = run_cli(capsys, "export", "--bundle", str(tiny_ganomaly_bundle), "--format", "tflite",
                            "--out", str(tmp_path / "x"))
    assert rc == 2 and "tflite" in err and "onnx" in err and "openvino" in err
    assert not (tmp_path / "x").exists()


def test_cli_missing_runtime_is_one_clear_line(tiny_ganomaly_bundle: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino now raises ImportError
    rc, _out, err = run_cli(capsys, "export", "--bundle", str(tiny_ganomaly_bundle), "--format", "openvino",
                            "--out", str(tmp_path / "x"))
    assert rc == 2
    assert err.count("\n") == 1 and "'openvino'" in err and "pip install openvino" in err
    assert not (tmp_path / "x").exists() and _leftovers(tmp_path, "x") == []


def test_cli_missing_bundle_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "nowhere.inspector"
    rc, _out, err = run_cli(capsys, "export", "--bundle", str(missing), "--format", "onnx", "--out", str(tmp_path / "x"))
    assert rc == 2 and str(missing) in err and "not found" in err
    assert not (tmp_path / "x").exists()


def test_cli_without_images_says_to_pass_them(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The shipped demo bundle was calibrated and trained on folders that are
    gone: its images cannot be found, and --images is the way out."""
    demo = ROOT / "models" / "demo.inspector"
    rc, _out, err = run_cli(capsys, "export", "--bundle", str(demo), "--format", "onnx", "--out", str(tmp_path / "x"))
    assert rc == 2 and "pass --images DIR" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    rc, _out, err = run_cli(capsys, "export", "--bundle", str(demo), "--format", "onnx", "--out", str(tmp_path / "x"),
                            "--images", str(empty))
    assert rc == 2 and "holds no image that can be read" in err


def test_the_demo_bundle_exports_on_the_demo_data(demo_data: Path, tmp_path: Path) -> None:
    """--images with a labelled folder: its test split, the calibration's rule (youden) on each path."""
    from inspection_core.usecases.export import export

    result, chosen = export(ROOT / "models" / "demo.inspector", "onnx", tmp_path / "demo", demo_data)
    assert result.fidelity.ok and "youden" in result.fidelity.checked_on
    assert "test split" in chosen.source and (chosen.labels == 1).any()


def test_a_calibrated_bundle_is_checked_on_its_calibration_images_by_its_calibration_rule(
        tiny_ganomaly_bundle: Path, demo_data: Path, tmp_path: Path) -> None:
    """The calibration's own images (read back from the paths the manifest
    records) and its strategy; the threshold written is the calibrated one."""
    import shutil

    from inspection_core.bundle import read_manifest
    from inspection_core.usecases.calibrate import calibrate_bundle
    from inspection_core.usecases.export import export

    bundle = tmp_path / "calibrated.inspector"
    shutil.copy(tiny_ganomaly_bundle, bundle)
    calibrate_bundle(bundle, demo_data, "youden", batch_size=16, device="cpu", bootstrap=0, check_fast=False)
    calibrated = read_manifest(bundle)
    result, chosen = export(bundle, "onnx", tmp_path / "station")
    assert "calibration images" in chosen.source and len(chosen.labels) == len(calibrated["calibration"]["paths"])
    assert list(chosen.labels) == calibrated["calibration"]["labels"]
    assert result.fidelity.ok and "the calibration's rule (youden)" in result.fidelity.checked_on
    written = result.manifest["export"]["threshold"]["high"]
    assert written == pytest.approx(calibrated["threshold"]["high"], rel=1e-4)
    assert result.fidelity.threshold_fp32["high"] == pytest.approx(calibrated["threshold"]["high"], rel=1e-6)
