"""PatchCore's parts: exact nearest neighbours in chunks, a coreset that
covers rare patches, a bounded memory bank that loads at any size, and (with
the real MobileNetV2 weights and ../shared/data) the quality it reaches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from _datasets import shared_data
from inspection_core.config import ModelConfig, TrainConfig
from inspection_core.models import build_model
from inspection_core.models.components import nearest
from inspection_core.models.patchcore import model as patchcore
from inspection_core.models.components.coreset import greedy_coreset, local_coresets
from inspection_core.models.components.nearest import nearest_distances



def test_nearest_distances_are_exact_in_any_chunking(monkeypatch: pytest.MonkeyPatch) -> None:
    g = torch.Generator().manual_seed(0)
    q, m = torch.randn(50, 16, generator=g), torch.randn(300, 16, generator=g)
    ref = torch.cdist(q, m)
    ref_d, ref_i = ref.topk(3, dim=1, largest=False)
    for chunk in (1 << 24, 64, 7):  # one chunk, several, a chunk smaller than the bank row count
        monkeypatch.setattr(nearest, "_CHUNK_ELEMENTS", chunk)
        d, i = nearest_distances(q, m, k=3)
        torch.testing.assert_close(d, ref_d, rtol=1e-4, atol=1e-4)
        assert torch.equal(i, ref_i)


@pytest.mark.skipif(not nearest.onednn_linear_available(), reason="this torch build has no oneDNN linear")
def test_the_exact_search_finds_the_same_rows_and_distances_with_onednn_in_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    g = torch.Generator().manual_seed(1)
    q, m = torch.randn(200, 24, generator=g), torch.randn(1000, 24, generator=g) * 2.0 + 1.0
    ref = torch.cdist(q.double(), m.double()).min(dim=1)
    for block in (1 << 20, 128, 77):  # one block, several, a block that does not divide the bank
        monkeypatch.setattr(nearest, "_ONEDNN_BLOCK", block)
        search = nearest.ExactSearch(m)
        assert search._use_onednn(q, 1)
        with torch.inference_mode():
            d, i = search.search(q)
        assert d.shape == i.shape == (200, 1)
        assert torch.equal(i[:, 0], ref.indices)
        torch.testing.assert_close(d[:, 0].double(), ref.values, rtol=1e-5, atol=1e-5)
    # more than one neighbour, or a query that needs its gradient: the BLAS search, the same answer
    d3, i3 = nearest.ExactSearch(m).search(q, k=3)
    assert torch.equal(i3[:, 0], ref.indices)


def test_where_onednn_cannot_run_the_exact_search_falls_back_once_and_says_so(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    g = torch.Generator().manual_seed(2)
    q, m = torch.randn(30, 8, generator=g), torch.randn(100, 8, generator=g)
    ref = torch.cdist(q, m).min(dim=1)
    monkeypatch.setattr(nearest, "_ONEDNN_FAILED", [])
    monkeypatch.setattr(nearest, "onednn_linear_available", lambda: not nearest._ONEDNN_FAILED)

    def broken(self: nearest.ExactSearch, queries: torch.Tensor) -> None:
        raise RuntimeError("could not create a primitive descriptor")

    monkeypatch.setattr(nearest.ExactSearch, "_search_onednn", broken)
    with caplog.at_level("WARNING"), torch.inference_mode():
        d, i = nearest.ExactSearch(m).search(q)
        d2, i2 = nearest.ExactSearch(m).search(q)  # no second try
    assert torch.equal(i[:, 0], ref.indices) and torch.equal(i2[:, 0], ref.indices)
    torch.testing.assert_close(d[:, 0], ref.values, rtol=1e-4, atol=1e-4)
    assert nearest._ONEDNN_FAILED == ["could not create a primitive descriptor"]
    assert sum("oneDNN's linear failed" in r.getMessage() for r in caplog.records) == 1


def test_a_changed_bank_is_searched_afresh_not_through_the_old_blocks() -> None:
    from inspection_core.models.base import FitInfo

    model = _model(max_bank=40, coreset_ratio=1.0)
    model.setup_training(FitInfo(8, 8, 0, 64, 0, TrainConfig()))
    x = torch.rand(8, 3, 64, 64) * 2 - 1
    model.fit_batch(x)
    model.fit_finish(lambda done, total: None)
    model.eval()
    with torch.inference_mode():
        before = model(x).scores
        first = model._searcher("cpu")
        assert model._searcher("cpu") is first  # prepared once for its bank
        model.memory_bank[:] = model.memory_bank.flip(0) + 5.0  # the bank changed in place
        after = model(x).scores
    assert model._searcher("cpu") is not first
    assert not torch.allclose(before, after)
    fresh = _model(max_bank=40)  # the same bank loaded into a new model: the same scores
    fresh.load_state_dict(model.state_dict())
    with torch.inference_mode():
        torch.testing.assert_close(fresh.eval()(x).scores, after)


def test_the_low_precision_search_returns_exact_distances_to_the_nearest_rows() -> None:
    # ReLU-like features with a large common offset (what centring the bank is for)
    g = torch.Generator().manual_seed(1)
    m = torch.randn(2000, 64, generator=g).relu() * 2 + 5
    q = torch.randn(500, 64, generator=g).relu() * 2 + 5
    ref_d, ref_i = nearest_distances(q, m)
    d, i = nearest_distances(q, m, coarse=nearest.coarse_bank(m, torch.bfloat16))
    assert (i == ref_i).float().mean() >= 0.998  # bf16 only proposes candidates
    torch.testing.assert_close(d, ref_d, rtol=1e-3, atol=1e-5)
    # tight clusters (many near-ties): bf16 cannot rank inside a cluster, yet every distance returned
    # is the fp32 distance to the row returned, never below the true nearest one
    centres = torch.randn(40, 64, generator=g) * 3
    m = centres.repeat_interleave(50, 0) + torch.randn(2000, 64, generator=g) * 0.3
    q = centres[torch.randint(0, 40, (500,), generator=g)] + torch.randn(500, 64, generator=g) * 0.3
    ref_d, _ = nearest_distances(q, m)
    d, i = nearest_distances(q, m, coarse=nearest.coarse_bank(m, torch.bfloat16))
    torch.testing.assert_close(d[:, 0], torch.linalg.vector_norm(m[i[:, 0]] - q, dim=1), rtol=1e-5, atol=1e-5)
    assert bool((d >= ref_d - 1e-4).all())


def test_block_maxima_are_the_maxima_of_each_block_of_any_size() -> None:
    for rows in (128, 100, 7, 1):
        s = torch.randn(5, rows, 9).bfloat16()
        assert torch.equal(nearest._block_max(s), s.amax(1)), rows


def test_the_candidate_search_keeps_the_banks_main_axes_and_any_bank_size_works() -> None:
    g = torch.Generator().manual_seed(2)
    # patch features that vary mostly along a few directions (as CNN features do)
    basis = torch.randn(12, 200, generator=g)
    m = torch.randn(3000, 12, generator=g) @ basis + 0.05 * torch.randn(3000, 200, generator=g)
    q = torch.randn(400, 12, generator=g) @ basis + 0.05 * torch.randn(400, 200, generator=g)
    coarse = nearest.coarse_bank(m, torch.bfloat16)
    assert coarse.rotation.shape[1] < 200 / 4  # the candidate product runs on a few axes, not all 200
    torch.testing.assert_close(coarse.rotation.t() @ coarse.rotation, torch.eye(coarse.rotation.shape[1]),
                               rtol=0, atol=1e-4)
    ref_d, ref_i = nearest_distances(q, m)
    d, i = nearest_distances(q, m, coarse=coarse)
    assert (i == ref_i).float().mean() >= 0.99
    assert bool((d >= ref_d - 1e-4).all())
    # banks smaller than a block, or one row past a block: the padding rows are never returned
    for n in (5, 129):
        small = m[:n]
        d, i = nearest_distances(q, small, coarse=nearest.coarse_bank(small, torch.bfloat16))
        assert int(i.max()) < n
        torch.testing.assert_close(d[:, 0], torch.linalg.vector_norm(small[i[:, 0]] - q, dim=1), rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="this torch build has no oneDNN")
def test_the_bf16_path_keeps_fp32_features_and_scores(tiny_patchcore_bundle: Path, demo_data: Path) -> None:
    from inspection_core.data.dataset import load_images, scan_dataset
    from inspection_core.inference import Inspector

    ref = Inspector(tiny_patchcore_bundle, device="cpu", precision="eager")
    fast = Inspector(tiny_patchcore_bundle, device="cpu", precision="bf16")
    assert fast.engine == "cpu-onednn-packed-bf16"
    images = load_images(list(scan_dataset(demo_data).test), ref.preprocessing).images
    s0, m0, _ = ref.score_images(images)
    s1, m1, _ = fast.score_images(images)
    # the backbone stays fp32 on this path; only the neighbour candidates come from bf16
    np.testing.assert_allclose(s1, s0, rtol=1e-4)
    np.testing.assert_allclose(m1, m0, rtol=1e-3, atol=1e-5)


def test_coreset_keeps_the_rare_patches_a_random_sample_misses() -> None:
    g = torch.Generator().manual_seed(0)
    common = torch.randn(5000, 8, generator=g) * 0.1
    rare = torch.randn(5, 8, generator=g) * 0.1 + 5.0  # five patches far from the rest
    feats = torch.cat([common, rare])
    idx = greedy_coreset(feats, 50, torch.Generator().manual_seed(1))
    assert len(set(idx.tolist())) == 50
    assert (idx >= 5000).any(), "the coreset must keep a rare patch"
    # coverage: every patch is closer to the coreset than to a random subset of the same size
    rand = torch.randperm(len(feats), generator=g)[:50]
    cover = lambda sel: torch.cdist(feats, feats[sel]).min(1).values.max()  # noqa: E731
    assert cover(idx) < cover(rand)


def test_local_coresets_pick_distinct_patches_per_image() -> None:
    f = torch.randn(3, 40, 6, generator=torch.Generator().manual_seed(0))
    f[1, 10:] = f[1, 0]  # an image that is one repeated patch after the first ten
    idx = local_coresets(f, 12)
    assert idx.shape == (3, 12)
    assert len(set(idx[0].tolist())) == len(set(idx[2].tolist())) == 12
    assert set(idx[1].tolist()) == set(range(10)), "every distinct patch survives the thinning, no repeat of one"


def _model(**params) -> patchcore.PatchCore:
    """A PatchCore on a randomly initialised resnet18, the same one in every
    call and every run (this torch seeds its generator at random in each
    process), so that two variants are compared on one backbone. Unseeded,
    the exposure-view test failed for about half of the processes; seeded
    like this it passed with 9 of 10 seeds (0-9; seed 0 was the exception)."""
    torch.manual_seed(1)
    return build_model(ModelConfig("patchcore", 64, 3, params={"weights": "random", "backbone": "resnet18", **params}))


def test_memory_bank_is_bounded_and_loads_at_any_size() -> None:
    from inspection_core.models.base import FitInfo

    model = _model(max_bank=30, coreset_ratio=1.0)
    model.setup_training(FitInfo(8, 8, 0, 64, 0, TrainConfig()))
    x = torch.rand(8, 3, 64, 64) * 2 - 1
    model.fit_batch(x)
    info = model.fit_finish(lambda done, total: None)
    assert model.memory_bank.shape[0] == info["memory_bank"] == 30
    other = _model()
    other.load_state_dict(model.state_dict())  # a bank of another size than a fresh model's (0)
    assert other.memory_bank.shape == model.memory_bank.shape
    with torch.inference_mode():
        torch.testing.assert_close(other.eval()(x).scores, model.eval()(x).scores)


def test_fit_memory_budget_subsamples_on_the_way() -> None:
    from inspection_core.models.base import FitInfo

    model = _model(fit_memory_mb=16, coreset_ratio=1.0, local_keep=1.0, bank_augment=[], max_bank=10**6)
    n = 4000  # 4000 images x 64 patches x 640 floats (resnet18 layer2+3) is 650 MB: far over 16 MB
    model.setup_training(FitInfo(n, n, 0, 64, 0, TrainConfig()))
    for _ in range(2):
        model.fit_batch(torch.rand(8, 3, 64, 64) * 2 - 1)
    held = sum(p.numel() for p in model._fit_parts) * 4
    assert 0 < held < 1.5 * 16 * 2**20 * (2 * 8) / n  # the budget's share for 2 batches of 8 (rounded per batch)


def _textures(n: int, seed: int, contrast: float = 1.0, size: int = 64) -> torch.Tensor:
    """Grainy surfaces (a smooth background and fine grain), in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    grain = torch.nn.functional.avg_pool2d(torch.randn(n, 1, size, size, generator=g), 3, stride=1, padding=1)
    x = 0.2 * torch.randn(n, 1, 1, 1, generator=g) + contrast * 0.6 * grain
    return x.expand(n, 3, size, size).clamp(-1, 1).contiguous()


def _fit(model: patchcore.PatchCore, x: torch.Tensor) -> dict:
    from inspection_core.models.base import FitInfo

    model.setup_training(FitInfo(x.shape[0], x.shape[0], 0, 64, 0, TrainConfig()))
    for i in range(0, x.shape[0], 8):
        model.fit_batch(x[i : i + 8])
    return model.fit_finish(lambda done, total: None)


def test_the_global_texture_term_raises_a_part_whose_whole_surface_differs() -> None:
    """A surface that is coarser all over (each patch still close to some
    good patch) gets the global term; good parts get little or none, and the
    term only ever adds to the map's maximum."""
    model = _model(bank_augment=[])
    record = _fit(model, _textures(32, 0))
    term = record["global_term"]
    assert term["images"] == 32 and term["loo_images"] >= 4 and "off" not in term, term
    good, coarse = _textures(12, 1), _textures(12, 2, contrast=1.6)
    with torch.inference_mode():
        out_good, out_coarse = model.eval()(good), model.eval()(coarse)
        add_good = out_good.scores - out_good.anomaly_map.flatten(1).max(1).values
        add_coarse = out_coarse.scores - out_coarse.anomaly_map.flatten(1).max(1).values
    assert bool((add_good >= 0).all()) and bool((add_coarse >= 0).all())
    assert float(add_coarse.min()) > float(add_good.max()), (add_good, add_coarse)
    torch.testing.assert_close(out_coarse.texture, add_coarse)  # what an operator is told came from the texture
    off = _model(bank_augment=[], global_weight=0.0)
    assert _fit(off, _textures(32, 0))["global_term"] == {"weight": 0.0}
    with torch.inference_mode():
        out = off.eval()(coarse)
    torch.testing.assert_close(out.scores, out.anomaly_map.flatten(1).max(1).values)


def test_exposure_views_in_the_bank_accept_a_brighter_good_part() -> None:
    """Good parts lit 1.5x brighter than every training image stand out
    from the good parts at the usual exposure; with that exposure of the
    training images in the bank, by less than half as much."""
    train_x, good = _textures(24, 0), _textures(6, 5)
    brighter = ((good + 1.0) * 1.5 - 1.0).clamp(-1, 1)
    res = {}
    for views in ([], ["brighter"]):
        model = _model(bank_augment=views, global_weight=0.0, coreset_ratio=0.5)
        _fit(model, train_x)
        with torch.inference_mode():
            res[bool(views)] = (model.eval()(good).scores, model(brighter).scores)
    (good_without, bright_without), (good_with, bright_with) = res[False], res[True]
    assert float(bright_without.min()) > float(good_without.max()), res  # without: every brighter part stands out
    excess_without = float(bright_without.median() - good_without.median())
    excess_with = float(bright_with.median() - good_with.median())
    assert excess_with < 0.5 * excess_without, res


def test_a_bundle_from_before_the_global_term_loads_and_scores_as_before() -> None:
    model = _model(bank_augment=[])
    _fit(model, _textures(16, 0))
    old = {k: v for k, v in model.state_dict().items() if not k.startswith("global_")}
    again = _model(bank_augment=[])
    again.load_state_dict(old, strict=True)
    x = _textures(4, 3, contrast=1.6)
    with torch.inference_mode():
        out = again.eval()(x)
    assert not again.global_active
    torch.testing.assert_close(out.scores, out.anomaly_map.flatten(1).max(1).values)


def test_a_bundle_from_before_the_layout_statistics_loads_and_scores_as_before() -> None:
    """A bundle whose texture term holds the channel spreads only (global_grid 0,
    as bundles written before the layout statistics hold) loads into today's default model, which takes
    the statistics' size from the bundle and scores exactly as it did."""
    model = _model(bank_augment=[], global_grid=0)
    _fit(model, _textures(16, 0))
    assert model.global_mean.shape[0] == model.appearance_dim and model.global_active
    again = _model(bank_augment=[])
    assert again.params["global_grid"] == 2
    # resnet18's 384 channels: the layout on 256 channel groups, so that a wide backbone's Gaussian stays small
    assert again.layout_dim == 256 < again.appearance_dim
    assert again.global_mean.shape[0] == again.appearance_dim + 4 * again.layout_dim
    again.load_state_dict(model.state_dict(), strict=True)
    assert again.params["global_grid"] == 0 and again.global_active
    x = _textures(4, 3, contrast=1.6)
    with torch.inference_mode():
        torch.testing.assert_close(again.eval()(x).scores, model.eval()(x).scores, rtol=0, atol=0)
    with pytest.raises(ValueError, match="global_grid"):
        _model(global_grid=-1)
    bad = dict(model.state_dict(), global_mean=torch.zeros(model.appearance_dim + 3))
    with pytest.raises(ValueError, match="texture statistics"):
        _model(bank_augment=[]).load_state_dict(bad)


def _streaks(n: int, seed: int, horizontal: bool, size: int) -> torch.Tensor:
    """A ground surface: grain drawn out along the grinding direction."""
    g = torch.Generator().manual_seed(seed)
    k = (1, 15) if horizontal else (15, 1)
    grain = torch.nn.functional.avg_pool2d(torch.randn(n, 1, size, size, generator=g), k, stride=1,
                                           padding=(k[0] // 2, k[1] // 2))
    return (0.2 * torch.randn(n, 1, 1, 1, generator=g) + 2.0 * grain).expand(n, 3, size, size).clamp(-1, 1).contiguous()


def test_the_layout_statistics_see_a_part_whose_two_zones_are_swapped(torch_home: Path) -> None:
    """Good parts are ground one way on their upper half and the other way on
    their lower half; a part with the two zones swapped has the same patches
    and the same spread of every channel. The texture term with the layout
    statistics (the default 2 x 2 cells; real ImageNet features) adds several
    times what the channel spreads alone add, and far more than to any good
    part."""
    from inspection_core.models.base import FitInfo

    size = 128

    def part(n: int, seed: int, swapped: bool = False) -> torch.Tensor:
        x = _streaks(n, seed, not swapped, size)
        x[..., size // 2 :, :] = _streaks(n, seed + 50, swapped, size)[..., size // 2 :, :]
        return x

    train_x, good, swapped = part(24, 0), part(8, 1), part(8, 2, swapped=True)
    added = {}
    for g in (0, 2):
        model = build_model(ModelConfig("patchcore", size, 3, params={"bank_augment": [], "global_grid": g}))
        model.setup_training(FitInfo(24, 24, 0, size, 0, TrainConfig()))
        for i in range(0, 24, 8):
            model.fit_batch(train_x[i : i + 8])
        model.fit_finish(lambda done, total: None)
        with torch.inference_mode():
            added[g] = (model.eval()(good).texture, model(swapped).texture)
    (_good_spread, swapped_spread), (good_layout, swapped_layout) = added[0], added[2]
    # measured: spreads alone add 0.47-0.50 to the swapped parts, with the layout 3.8
    assert float(swapped_layout.median()) > 4 * float(swapped_spread.median()), added
    assert float(swapped_layout.min()) > float(good_layout.max()) + 1.0, added


def test_a_prediction_says_which_part_of_its_score_is_the_whole_texture(tiny_patchcore_bundle: Path,
                                                                       tiny_ganomaly_bundle: Path) -> None:
    from inspection_core.inference import Inspector

    insp = Inspector(tiny_patchcore_bundle, device="cpu", precision="fp32")
    assert insp.model.global_active
    image = (np.random.default_rng(0).random((80, 80, 3)) * 255).astype(np.uint8)
    p = insp.predict(image)
    assert p.texture_part > 0  # noise is nothing like the demo's parts, all over
    assert p.score - p.texture_part == pytest.approx(float(p.anomaly_map.max()), rel=1e-5)
    assert Inspector(tiny_ganomaly_bundle, device="cpu").predict(image).texture_part == 0.0


def test_too_few_training_images_leave_the_global_term_off_saying_why() -> None:
    model = _model(bank_augment=[])
    term = _fit(model, _textures(6, 0))["global_term"]
    assert "fewer than" in term["off"]
    assert not model.global_active
    with pytest.raises(ValueError, match="global_weight"):
        _model(global_weight=-1.0)


def test_an_unfitted_model_says_so() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        _model().eval()(torch.zeros(1, 3, 64, 64))


def test_imagenet_weights_load_through_torchvisions_api(torch_home: Path) -> None:
    from torchvision.models import MobileNet_V2_Weights, mobilenet_v2

    from inspection_core.backbones import FeatureExtractor

    fe = FeatureExtractor("mobilenet_v2", ["features.6"], "imagenet")
    ref = mobilenet_v2(weights=MobileNet_V2_Weights.IMAGENET1K_V1)
    torch.testing.assert_close(fe.stages[0][0].weight, ref.features[0][0].weight)
    assert "IMAGENET1K_V1" in fe.source


def test_missing_weights_say_which_file_and_where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchvision.models import MobileNet_V2_Weights

    from inspection_core.backbones import WeightsUnavailableError
    from inspection_core.models.base import FitInfo

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    url = "http://127.0.0.1:9/" + Path(MobileNet_V2_Weights.IMAGENET1K_V1.url).name  # no network: fails at once
    monkeypatch.setattr(MobileNet_V2_Weights.IMAGENET1K_V1.value, "url", url)
    model = build_model(ModelConfig("patchcore", 64, 3, params={}))
    with pytest.raises(WeightsUnavailableError) as info:
        model.setup_training(FitInfo(4, 4, 0, 64, 0, TrainConfig()))
    msg = str(info.value)
    for text in ("mobilenet_v2", "mobilenet_v2-b0353104.pth", str(tmp_path / "empty"), "--weights FILE"):
        assert text in msg, text


@pytest.mark.data
def test_defaults_find_real_defects(torch_home: Path) -> None:
    """magnetic_tile with the defaults: the benchmark's figure (docs/quality.md), within a margin."""
    from inspection_core.evaluation import evaluate
    from inspection_core.inference import Inspector
    from inspection_core.recipes import resolve
    from inspection_core.training.trainer import in_memory_bundle, train

    root = shared_data("magnetic_tile")
    mcfg, tcfg = resolve("patchcore", channels=1, train={"device": "cpu"})
    torch.set_num_threads(2)
    res = train(root, mcfg, tcfg)
    metrics, _ = evaluate(Inspector(in_memory_bundle(res), device="cpu"), root)
    assert metrics["image_auroc"] >= 0.91, metrics["image_auroc"]  # 0.934 (0.930 with global_grid=0, 0.917 without the global term)
    assert metrics["pixel_auroc"] >= 0.74, metrics["pixel_auroc"]


def test_the_training_summary_says_whether_the_global_term_is_on() -> None:
    from inspection_core.usecases.training import describe_fit

    model = _model(bank_augment=[])
    on = describe_fit(_fit(model, _textures(16, 0)))
    assert on.startswith(", memory bank of ") and on.endswith("global texture term on")
    few = describe_fit(_fit(_model(bank_augment=[]), _textures(6, 0)))
    assert "global texture term off (fewer than 10 training images)" in few
    assert "global" not in describe_fit(_fit(_model(bank_augment=[], global_weight=0.0), _textures(16, 0)))
    assert describe_fit({}) == ""


def _with_hole(x: torch.Tensor, cy: int, cx: int, r: int) -> torch.Tensor:
    """The same surfaces with a dark round hole centred at (cy, cx)."""
    yy, xx = torch.meshgrid(torch.arange(x.shape[-2]), torch.arange(x.shape[-1]), indexing="ij")
    hole = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).to(x.dtype)
    return x * (1 - hole) - 0.9 * hole


def test_position_weight_fails_a_feature_in_the_wrong_place(torch_home: Path) -> None:
    """A fixtured part: every good part has its hole at one place. A part
    with the hole 64 px to the right holds only patches that good parts have
    too (a hole, plain surface): plain PatchCore scores it barely above the
    good parts; with the patches' positions in the descriptors (real
    ImageNet features) it stands out by a wide margin."""
    from inspection_core.models.base import FitInfo

    size = 192
    surfaces = lambda n, seed: _textures(n, seed, contrast=2 / 3, size=size)  # noqa: E731 - finer grain than the default
    train_x = _with_hole(surfaces(24, 0), 96, 64, 8)
    good, moved = _with_hole(surfaces(8, 5), 96, 64, 8), _with_hole(surfaces(8, 6), 96, 128, 8)
    res = {}
    for w in (0.0, 12.0):
        model = build_model(ModelConfig("patchcore", size, 3, params={"bank_augment": [], "global_weight": 0.0,
                                                                      "position_weight": w}))
        model.setup_training(FitInfo(24, 24, 0, size, 0, TrainConfig()))
        for i in range(0, 24, 8):
            model.fit_batch(train_x[i : i + 8])
        model.fit_finish(lambda done, total: None)
        assert model.memory_bank.shape[1] == model.appearance_dim + (2 if w else 0)
        with torch.inference_mode():
            res[w] = (model.eval()(good).scores, model(moved).scores)
    (good_plain, moved_plain), (good_pos, moved_pos) = res[0.0], res[12.0]
    excess_plain = float(moved_plain.median() - good_plain.median())
    excess_pos = float(moved_pos.median() - good_pos.median())
    assert excess_pos > 4 * excess_plain, res                 # measured: 0.24 without, 2.0 with
    assert float(moved_pos.min()) > float(good_pos.max()) + 1.0, res


def test_position_weight_round_trips_and_is_checked() -> None:
    model = _model(bank_augment=[], position_weight=4.0)
    _fit(model, _with_hole(_textures(16, 0), 16, 16, 5))
    assert model.global_mean.shape[0] == model.appearance_dim + 4 * model.layout_dim  # the texture term leaves the positions out
    again = _model(bank_augment=[], position_weight=4.0)
    again.load_state_dict(model.state_dict(), strict=True)
    x = _with_hole(_textures(3, 2), 40, 20, 5)
    with torch.inference_mode():
        torch.testing.assert_close(again.eval()(x).scores, model.eval()(x).scores)
    for bad in (-1.0, "far", True):
        with pytest.raises(ValueError, match="position_weight"):
            _model(position_weight=bad)
