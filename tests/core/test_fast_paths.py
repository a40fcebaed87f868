"""The fast scoring paths give the same verdicts as the plain fp32 model.

Default-run tests use tiny bundles; the fidelity check on real images
(``data``) trains short 128 px models on ``../shared/data`` unless
``INSPECTOR_FIDELITY_BUNDLES`` names a folder of trained bundles.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from inspection_core import acceleration
from inspection_core.acceleration import PackedConv, choose_precision, cpu_can_pack, cpu_has_native_bf16, pack_model
from inspection_core.types import Threshold
from inspection_core.usecases.fidelity import compare_paths, measure_fidelity, record_fidelity
from inspection_core.bundle import read_manifest
from inspection_core.config import ModelConfig
from inspection_core.data.dataset import load_images, scan_dataset
from inspection_core.inference import Inspector
from inspection_core.models import build_model

from _datasets import shared_data

needs_onednn = pytest.mark.skipif(not cpu_can_pack(), reason="this torch build has no oneDNN (mkldnn) convolutions")
needs_bf16 = pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no native bf16 (AVX512-BF16/AMX)")


def _test_images(data: Path, insp: Inspector) -> tuple[np.ndarray, np.ndarray]:
    loaded = load_images(list(scan_dataset(data).test), insp.preprocessing)
    return loaded.images, np.array([s.label for s in loaded.samples])


def _scores(insp: Inspector, images: np.ndarray, batch: int = 32) -> np.ndarray:
    return np.concatenate([insp.score_images(images[i : i + batch])[0] for i in range(0, len(images), batch)])


# --------------------------------------------------------------------------- choice of path
def test_auto_uses_bf16_only_for_verified_families(monkeypatch: pytest.MonkeyPatch) -> None:
    """"auto" is bf16 only where fidelity was shown (a verified family, or the
    bundle's own fidelity record) and the CPU runs bf16 natively."""
    monkeypatch.delenv(acceleration.ENV_VAR, raising=False)
    monkeypatch.setattr(acceleration, "BF16_VERIFIED", frozenset({"ganomaly"}))
    monkeypatch.setattr(acceleration, "cpu_can_pack", lambda: True)
    cpu = torch.device("cpu")
    checked = {"inference": {"precision": "fp32", "fidelity": {"bf16": {"ok": True}}}}
    failed = {"inference": {"precision": "fp32", "fidelity": {"bf16": {"ok": False}}}}
    for native in (True, False):
        monkeypatch.setattr(acceleration, "cpu_has_native_bf16", lambda n=native: n)
        fast = "bf16" if native else "fp32"
        assert choose_precision("auto", "ganomaly", cpu) == fast          # verified family
        assert choose_precision("auto", "patchcore", cpu) == "fp32"       # not verified, no record
        assert choose_precision("auto", "patchcore", cpu, checked) == fast  # its bundle's check passed
        assert choose_precision("auto", "patchcore", cpu, failed) == "fp32"
        assert choose_precision("fp32", "ganomaly", cpu) == "fp32"       # an explicit request wins
    monkeypatch.setattr(acceleration, "cpu_can_pack", lambda: False)
    assert choose_precision("auto", "ganomaly", cpu) == "eager"            # no oneDNN: the plain model


def test_bf16_training_is_the_default_only_where_bf16_is_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """Native bf16 is not always faster (a Xeon VM with AVX512-BF16 and no
    AMX ran bf16 convolutions at 0.53x fp32's speed): there the GAN families
    do not train in bf16 by default; the bf16 path is still checked and can
    still be chosen (the Inspector then times it, below)."""
    monkeypatch.delenv(acceleration.ENV_VAR, raising=False)
    monkeypatch.setattr(acceleration, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(acceleration, "cpu_can_pack", lambda: True)
    monkeypatch.setattr(acceleration, "BF16_VERIFIED", frozenset({"ganomaly"}))
    cpu = torch.device("cpu")
    for speedup, fast in ((3.0, True), (1.3, True), (1.1, False), (0.53, False)):
        monkeypatch.setattr(acceleration, "cpu_bf16_speedup", lambda s=speedup: s)
        assert acceleration.cpu_bf16_is_fast() is fast
        assert acceleration.default_cpu_bf16("ganomaly") is fast
        assert choose_precision("auto", "ganomaly", cpu) == "bf16"
        assert acceleration.fast_precision(cpu) == "bf16"


@needs_onednn
@needs_bf16
def test_where_bf16_is_not_fast_the_station_scores_with_the_faster_path(
        tiny_ganomaly_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bundle whose default is bf16, on a CPU whose bf16 convolutions are
    not faster: the Inspector times both paths at load and scores with fp32
    (at the fp32 threshold) where fp32 is clearly faster, with bf16 where it
    is not; on a CPU whose bf16 is fast, or when a path is asked for, nothing
    is timed."""
    monkeypatch.delenv(acceleration.ENV_VAR, raising=False)
    bundle = tmp_path / "b.inspector"
    shutil.copy(tiny_ganomaly_bundle, bundle)
    record_fidelity(bundle, compare_paths(np.arange(200.0), np.arange(200.0) * 1.01, None, Threshold(150.0),
                                          Threshold(151.5), precision="bf16", engine="test"))
    times = {"cpu-onednn-packed-fp32": 0.010}
    monkeypatch.setattr(acceleration, "paths_seconds", lambda paths, example: [times[p.engine] for p in paths])
    monkeypatch.setattr(acceleration, "cpu_bf16_is_fast", lambda: False)
    for t_bf16, expected, high in ((0.0120, "fp32", 150.0), (0.0110, "bf16", 151.5)):
        times["cpu-onednn-packed-bf16"] = t_bf16
        insp = Inspector(bundle, device="cpu")
        assert (insp.precision, insp.threshold.high) == (expected, high), t_bf16
    times["cpu-onednn-packed-bf16"] = 1.0
    assert Inspector(bundle, device="cpu", precision="bf16").precision == "bf16"  # asked for: not timed
    monkeypatch.setattr(acceleration, "cpu_bf16_is_fast", lambda: True)
    assert Inspector(bundle, device="cpu").precision == "bf16"                      # fast bf16: not timed


def test_the_load_time_timing_ranks_a_slower_path_slower() -> None:
    """Both paths are timed in turn; a path that takes 3x as long measures
    longer, and each is timed on the example it is given."""
    import time

    seen: list[tuple[str, int]] = []

    def fake(name: str, seconds: float):  # noqa: ANN202 - a stand-in for a ScoringPath
        def run(x: torch.Tensor) -> None:
            seen.append((name, x.shape[0]))
            time.sleep(seconds)
        return run

    fast_s, slow_s = acceleration.paths_seconds([fake("a", 0.002), fake("b", 0.006)], torch.zeros(3, 1))
    assert 0.002 <= fast_s < slow_s
    assert {n for n, _ in seen} == {"a", "b"} and all(b == 3 for _, b in seen)
    assert [n for n, _ in seen][2:6] == ["a", "a", "b", "b"]  # after one warm-up call each: in turn


def test_the_bf16_speed_probe_measures_once() -> None:
    acceleration.cpu_bf16_speedup.cache_clear()
    first = acceleration.cpu_bf16_speedup()
    assert first > 0.0
    assert acceleration.cpu_bf16_speedup() == first  # measured once per process: the choice does not flip


def test_station_override_and_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    monkeypatch.setenv(acceleration.ENV_VAR, "eager")
    assert choose_precision(None, "ganomaly", cpu) == "eager"
    assert choose_precision("fp32", "ganomaly", cpu) in ("fp32", "eager")  # the argument wins
    monkeypatch.setenv(acceleration.ENV_VAR, "fast")
    with pytest.raises(ValueError, match="unknown precision 'fast'"):
        choose_precision(None, "ganomaly", cpu)
    with pytest.raises(ValueError, match="only available on a CUDA GPU"):
        choose_precision("fp16", "ganomaly", cpu)


@needs_onednn
def test_a_bundle_verified_for_bf16_defaults_to_it(tiny_ganomaly_bundle: Path, demo_data: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(acceleration.ENV_VAR, raising=False)
    bundle = tmp_path / "b.inspector"
    shutil.copy(tiny_ganomaly_bundle, bundle)
    images, labels = _test_images(demo_data, Inspector(bundle, device="cpu", precision="eager"))
    fid = measure_fidelity(bundle, images, labels, precision="fp32")
    assert fid.ok and fid.changed == 0 and fid.max_rel < 1e-4
    assert fid.auroc_delta is not None and abs(fid.auroc_delta) < 1e-9
    old_high = read_manifest(bundle)["threshold"]["high"]
    failing = compare_paths(np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.5, 3.0]), np.array([0, 0, 1]),
                            Threshold(2.5), Threshold(2.5), precision="bf16", engine="test")
    assert not failing.ok and failing.changed == 1
    record_fidelity(bundle, failing)
    m = read_manifest(bundle)
    assert m["inference"]["fidelity"]["bf16"]["ok"] is False and m["threshold"]["high"] == old_high
    assert Inspector(bundle, device="cpu").precision == "fp32"  # not shown to hold: stays fp32
    passing = compare_paths(np.arange(200.0), np.arange(200.0) * 1.01, None, Threshold(150.0), Threshold(151.5),
                            precision="bf16", engine="test")
    assert passing.ok and passing.changed == 0
    record_fidelity(bundle, passing)
    m = read_manifest(bundle)
    # the threshold now belongs to the bf16 path; fp32's own is kept for stations without native bf16
    assert m["inference"]["precision"] == "bf16" and m["threshold"]["high"] == 151.5
    monkeypatch.setattr(acceleration, "cpu_bf16_is_fast", lambda: True)  # no timing at load (tested above)
    auto = Inspector(bundle, device="cpu")
    assert auto.precision == ("bf16" if cpu_has_native_bf16() else "fp32")
    assert auto.threshold.high == (151.5 if cpu_has_native_bf16() else 150.0)
    assert Inspector(bundle, device="cpu", precision="fp32").threshold.high == 150.0


# --------------------------------------------------------------------------- fp32 fast path
@needs_onednn
@pytest.mark.parametrize("bundle_fixture", ["tiny_bundle", "tiny_ganomaly_bundle"])
def test_packed_fp32_scores_like_the_plain_model(bundle_fixture: str, demo_data: Path, request: pytest.FixtureRequest) -> None:
    bundle = request.getfixturevalue(bundle_fixture)
    ref = Inspector(bundle, device="cpu", precision="eager")
    fast = Inspector(bundle, device="cpu", precision="fp32")
    assert fast.engine == "cpu-onednn-packed-fp32" and ref.engine == "cpu-eager-fp32"
    assert any(isinstance(m, PackedConv) for m in fast.path.module.modules())
    images, _ = _test_images(demo_data, ref)
    s0, m0, r0 = ref.score_images(images)
    s1, m1, r1 = fast.score_images(images)
    np.testing.assert_allclose(s1, s0, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(m1, m0, rtol=1e-3, atol=1e-5)
    assert r0 is not None and r1 is not None and np.abs(r1.astype(int) - r0.astype(int)).max() <= 1
    # same verdicts, part by part, through the public API
    preds0 = ref.predict_batch(list(images[:8]))
    preds1 = fast.predict_batch(list(images[:8]))
    assert [p.verdict for p in preds0] == [p.verdict for p in preds1]


@needs_onednn
@pytest.mark.parametrize("bundle_fixture", ["tiny_ganomaly_bundle", "tiny_patchcore_bundle"])
def test_a_large_batch_scored_in_chunks_gives_every_image_the_same_result(
        bundle_fixture: str, demo_data: Path, request: pytest.FixtureRequest) -> None:
    bundle = request.getfixturevalue(bundle_fixture)
    insp = Inspector(bundle, device="cpu", precision="fp32")
    # the chunk size follows the family's pixel budget: a few images of the bundle's size per forward
    assert insp.path.chunk == acceleration.cpu_chunk(insp.model, insp.preprocessing.image_size) >= 1
    images, _ = _test_images(demo_data, insp)
    whole = Inspector(bundle, device="cpu", precision="fp32")
    whole.path.chunk = None
    insp.path.chunk = 3  # 3, 3, ..., and a last, shorter chunk
    s0, m0, r0 = whole.score_images(images)
    s1, m1, r1 = insp.score_images(images)
    assert len(images) % 3 and s1.shape == s0.shape and m1.shape == m0.shape
    np.testing.assert_allclose(s1, s0, rtol=1e-5)
    np.testing.assert_allclose(m1, m0, rtol=1e-4, atol=1e-6)
    assert (r0 is None) == (r1 is None)
    if r0 is not None:
        assert np.abs(r1.astype(int) - r0.astype(int)).max() <= 1


def test_the_classifier_is_never_chunked_and_a_gan_is_chunked_by_pixels() -> None:
    gan = build_model(ModelConfig(model="ganomaly", image_size=128, params={"latent_dim": 16, "base_width": 8}))
    clf = build_model(ModelConfig(model="vgg16", image_size=64, params={"init": "scratch", "base_width": 8}))
    assert acceleration.cpu_chunk(gan, 128) == 8 and acceleration.cpu_chunk(gan, 512) == 1
    assert acceleration.cpu_chunk(clf, 64) is None


@needs_onednn
def test_packing_leaves_the_loaded_model_untouched(tiny_ganomaly_bundle: Path) -> None:
    insp = Inspector(tiny_ganomaly_bundle, device="cpu", precision="fp32")
    plain = Inspector(tiny_ganomaly_bundle, device="cpu", precision="eager")
    a, b = insp.model.state_dict(), plain.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not any(isinstance(m, PackedConv) for m in insp.model.modules())
    assert insp.precision == "fp32" and insp.inference_record()["engine"] == insp.engine


@needs_onednn
@pytest.mark.parametrize("family,params", [("bigan", {}), ("vgg16", {"init": "scratch"}), ("skip-ganomaly", {})])
def test_every_family_packs_to_the_same_scores(family: str, params: dict) -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(family, image_size=32, channels=3, params={**({} if family == "vgg16" else {"latent_dim": 16}), "base_width": 8, **params})).eval()
    for m in model.modules():  # non-trivial BatchNorm statistics, as after training
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    packed, n = pack_model(model, x[:1])
    assert n > 0
    with torch.inference_mode():
        ref, got = model(x), packed(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got.scores, ref.scores, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(got.anomaly_map, ref.anomaly_map, rtol=1e-3, atol=1e-5)


@needs_onednn
def test_unpackable_convolutions_stay_plain() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"), nn.ReLU(), nn.Conv2d(4, 2, 3), nn.Tanh()).eval()
    x = torch.randn(2, 3, 16, 16)
    packed, n = pack_model(net, x[:1])
    assert n == 1 and isinstance(packed[0], nn.Conv2d) and isinstance(packed[2], PackedConv)
    with torch.inference_mode():
        torch.testing.assert_close(packed(x), net(x), rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------- bf16
@needs_onednn
@needs_bf16
def test_bf16_path_runs_and_ranks_like_fp32(tiny_ganomaly_bundle: Path, demo_data: Path) -> None:
    ref = Inspector(tiny_ganomaly_bundle, device="cpu", precision="eager")
    fast = Inspector(tiny_ganomaly_bundle, device="cpu", precision="bf16")
    assert fast.precision == "bf16" and fast.engine == "cpu-onednn-packed-bf16"
    images, _ = _test_images(demo_data, ref)
    s0, s1 = _scores(ref, images), _scores(fast, images)
    assert s1.dtype == np.float64 and np.all(np.isfinite(s1))
    assert np.corrcoef(s0, s1)[0, 1] > 0.99
    _, maps, recon = fast.score_images(images[:2])
    assert maps.dtype == np.float32 and recon is not None and recon.dtype == np.uint8


# --------------------------------------------------------------------------- CUDA
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_cuda_paths_score_like_the_cpu(tiny_ganomaly_bundle: Path, demo_data: Path, precision: str) -> None:
    ref = Inspector(tiny_ganomaly_bundle, device="cpu", precision="eager")
    gpu = Inspector(tiny_ganomaly_bundle, device="cuda", precision=precision)
    assert gpu.engine.startswith("cuda")
    images, _ = _test_images(demo_data, ref)
    s0, s1 = _scores(ref, images), _scores(gpu, images)
    tol = 1e-3 if precision == "fp32" else 0.05
    np.testing.assert_allclose(s1, s0, rtol=tol, atol=1e-6)


# --------------------------------------------------------------------------- fidelity on real data
def _fidelity_bundles(family: str, tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, Path]]:
    """(bundle, data set) pairs for ``family``: every trained bundle in
    ``$INSPECTOR_FIDELITY_BUNDLES`` whose training data is at hand, else one
    short training on magnetic_tile."""
    from inspection_core.bundle import read_manifest

    folder = os.environ.get("INSPECTOR_FIDELITY_BUNDLES")
    found = []
    if folder:
        for p in sorted(Path(folder).glob("*.inspector")):
            m = read_manifest(p)
            root = Path(m["training"]["data"].get("root", ""))
            if m["model"]["model"] == family and (root / "test").is_dir():
                found.append((p, root))
    if found:
        return found
    data = shared_data("magnetic_tile")
    from inspection_core.bundle import save_bundle
    from inspection_core.config import TrainConfig
    from inspection_core.training.trainer import train

    res = train(data, ModelConfig(family, image_size=128),
                TrainConfig(epochs=2, max_steps_per_epoch=4, device="cpu", samples_per_epoch=0, seed=0))
    return [(save_bundle(tmp_path_factory.mktemp("fidelity") / f"{family}.inspector", res.model, res.manifest), data)]


@pytest.mark.data
@pytest.mark.slow
@needs_onednn
@pytest.mark.parametrize("family", ["ganomaly", "skip-ganomaly"])
def test_fast_paths_keep_auroc_and_scores_on_real_data(family: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The packed fp32 path keeps every per-image score within 1 % of plain
    fp32 and every verdict; the bf16 path (perceptual backbone in fp32) keeps
    image AUROC within 0.005, and its changed verdicts at each path's own
    Youden threshold are printed (whether bf16 becomes a bundle's default is
    that bundle's own check, at training and calibration)."""
    from inspection_core import calibration as cal
    from inspection_core.fidelity_rule import check_rule
    from inspection_core.types import Threshold

    shared_data("magnetic_tile")  # skip with a clear message without ../shared/data
    youden = lambda s, y: Threshold(cal.choose_threshold(s, y, "youden"))  # noqa: E731
    for bundle, data in _fidelity_bundles(family, tmp_path_factory):
        ref = Inspector(bundle, device="cpu", precision="eager")
        images, labels = _test_images(data, ref)
        s0 = _scores(ref, images)
        for p in ["fp32"] + (["bf16"] if cpu_has_native_bf16() else []):
            insp = Inspector(bundle, device="cpu", precision=p)
            s = _scores(insp, images)
            fid = check_rule(s0, s, labels, youden, precision=insp.precision, engine=insp.engine)
            msg = (f"{bundle.name} on {data.name}, {p} -> {insp.engine}: AUROC {fid.auroc:.4f} vs {fid.auroc_fp32:.4f}, "
                   f"{fid.changed} of {fid.n} verdicts differ, worst score {fid.max_rel:.3%}, median {fid.median_rel:.3%}")
            print(msg)
            if p == "fp32":
                assert fid.max_rel <= 0.01 and fid.changed == 0, msg
            else:  # whether bf16 becomes the default is each bundle's own check; its ranking must hold
                assert abs(fid.auroc_delta) <= 0.005, msg


def test_what_a_family_keeps_in_fp32_stays_fp32_under_autocast() -> None:
    """The CUDA path runs a model under autocast; the parts the bundle's
    check measured in fp32 (here a GAN family's perceptual backbone, called
    from the map rather than from a forward) must stay fp32 inside it. Checked
    with the CPU's bf16 autocast, the same mechanism."""
    from inspection_core.acceleration import keep_fp32_under_autocast

    model = build_model(ModelConfig("ganomaly", 64, 3, params={"residual": "perceptual", "score": "map",
                                                                "perceptual_backbone": "mobilenet_v2",
                                                                "perceptual_weights": "random", "base_width": 8}))
    model.eval()
    seen: list[torch.dtype] = []
    model.residual.features.register_forward_hook(lambda m, i, o: seen.extend(v.dtype for v in o.values()))
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    keys = set(model.state_dict())
    with torch.inference_mode():
        ref = model(x).scores
        with torch.autocast("cpu", dtype=torch.bfloat16):
            model(x)
        assert torch.bfloat16 in seen  # without the wrapper the backbone runs in bf16
        assert keep_fp32_under_autocast(model, model.fp32_on_fast_path) >= 2
        assert keep_fp32_under_autocast(model, model.fp32_on_fast_path) == 0  # idempotent
        seen.clear()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast = model(x).scores
        assert seen and all(d == torch.float32 for d in seen)
        torch.testing.assert_close(model(x).scores, ref)  # outside autocast: the same model
    assert set(model.state_dict()) == keys
    assert torch.isfinite(fast).all()
