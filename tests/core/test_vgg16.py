"""VGG16 classifier: shapes, CAM localisation after a tiny training on planted
defects, start weights (local file, missing ImageNet weights), and the
training hooks (class balance, freezing, augmentation)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torchvision.models import VGG16_Weights, vgg16

from inspection_core.config import ModelConfig, TrainConfig
from inspection_core.models import available_models, build_model
from inspection_core.backbones import WeightsUnavailableError
from inspection_core.models.vgg16.model import VGG16Classifier



def parts(n: int, size: int = 32, channels: int = 1, seed: int = 0):
    """Striped good parts; odd indices get a bright 8x8 square (the defect).
    Returns (images in [-1, 1], labels, top-left corners of the squares)."""
    g = torch.Generator().manual_seed(seed)
    xx = torch.arange(size, dtype=torch.float32).view(1, 1, size)
    phase = torch.rand(n, 1, 1, generator=g) * 2 * math.pi
    x = (0.3 * torch.sin(xx * 2 * math.pi / 8 + phase) - 0.3).expand(n, size, size).clone()
    y = torch.arange(n) % 2
    corners = []
    for i in range(n):
        r, c = torch.randint(0, size - 8, (2,), generator=g).tolist()
        corners.append((r, c))
        if y[i]:
            x[i, r : r + 8, c : c + 8] = 0.9
    return x.unsqueeze(1).repeat(1, channels, 1, 1).contiguous(), y, corners


def make(size: int = 32, channels: int = 1, width: int = 8, **params) -> VGG16Classifier:
    torch.manual_seed(0)
    params.setdefault("init", "scratch")
    cfg = ModelConfig("vgg16", image_size=size, channels=channels, params={"base_width": width, **params})
    model = build_model(cfg)
    assert isinstance(model, VGG16Classifier)
    return model


def test_registered_as_supervised_classifier():
    assert "vgg16" in available_models()
    assert VGG16Classifier.supervised and not VGG16Classifier.can_generate
    model = make()
    assert model.generate(2) is None
    assert model.init_source == "scratch"


@pytest.mark.parametrize("channels", [1, 3])
def test_score_output_shapes(channels):
    model = make(channels=channels).eval()
    x, _, _ = parts(4, channels=channels)
    with torch.no_grad():
        out = model(x)
    assert out.scores.shape == (4,)
    assert ((out.scores >= 0) & (out.scores <= 1)).all()  # a probability
    assert out.anomaly_map.shape == (4, 32, 32) and (out.anomaly_map >= 0).all()
    assert out.reconstruction is None


def test_learns_planted_defects_and_cam_points_at_them():
    # 64 px so that the CAM (1/16 resolution) is 4x4 rather than 2x2
    model = make(size=64, lr=1e-3)
    model.configure_optimizers(TrainConfig())
    model.set_class_balance(32, 32)
    x, y, _ = parts(64, size=64, seed=1)
    g = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(60):
        idx = torch.randint(0, 64, (16,), generator=g)
        losses = model.training_step(x[idx], y[idx])
        assert math.isfinite(losses["loss"])

    xt, yt, corners = parts(64, size=64, seed=2)  # unseen images
    model.eval()
    with torch.no_grad():
        out = model(xt)
    accuracy = ((out.scores > 0.5).long() == yt).float().mean().item()
    assert accuracy >= 0.9, accuracy
    hits = 0
    for i in torch.nonzero(yt).flatten().tolist():
        r, c = corners[i]
        cam = out.anomaly_map[i]
        inside = torch.zeros_like(cam, dtype=torch.bool)
        inside[r : r + 8, c : c + 8] = True
        hits += int(cam[inside].mean() > cam[~inside].mean())
    assert hits >= 0.8 * int(yt.sum()), hits


def test_local_weights_file_is_loaded(tmp_path):
    ref = vgg16(weights=None)
    full = ref.state_dict()
    features = {k: v for k, v in full.items() if k.startswith("features.")}
    # a full torchvision state dict: features plus a classifier (kept small here)
    path = tmp_path / "vgg16 full.pth"
    torch.save({**features, "classifier.6.weight": torch.zeros(2, 4)}, path)
    model = make(width=64, init=str(path))
    assert "not loaded" in model.init_source
    model.configure_optimizers(TrainConfig())  # loads the start weights
    torch.testing.assert_close(model.features[0].weight, full["features.0.weight"])
    torch.testing.assert_close(model.features[28].bias, full["features.28.bias"])
    assert str(path.resolve()) in model.init_source and "sha256" in model.init_source
    assert model.normalise_imagenet

    # features-only files are accepted too
    only = tmp_path / "features.pth"
    torch.save(features, only)
    model2 = make(width=64, init=str(only))
    model2.load_start_weights()
    torch.testing.assert_close(model2.features[26].weight, full["features.26.weight"])


def test_bad_weights_files_give_clear_errors(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(WeightsUnavailableError, match="does not exist"):
        make(width=64, init=str(missing)).load_start_weights()
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(WeightsUnavailableError, match="cannot read"):
        make(width=64, init=str(junk)).load_start_weights()
    other = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(3)}, other)
    with pytest.raises(WeightsUnavailableError, match="features"):
        make(width=64, init=str(other)).load_start_weights()


def test_pretrained_weights_need_the_real_width():
    with pytest.raises(ValueError, match="base_width 64"):
        make(width=8, init="imagenet")


def test_missing_imagenet_weights_explain_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    # no network: point only the URL at a closed local port (fails at once)
    url = "http://127.0.0.1:9/" + Path(VGG16_Weights.IMAGENET1K_V1.url).name
    monkeypatch.setattr(VGG16_Weights.IMAGENET1K_V1.value, "url", url)
    model = make(width=64, init="imagenet")
    with pytest.raises(WeightsUnavailableError) as info:
        model.configure_optimizers(TrainConfig())
    msg = str(info.value)
    assert isinstance(info.value, RuntimeError)
    for text in ("not available", "empty-torch-home", url, "internet", "--weights FILE", "--from-scratch"):
        assert text in msg, text
    assert "not loaded" in model.init_source  # no silent fallback to random weights
    assert not model.optimizers


def test_a_saved_model_rebuilds_without_start_weights():
    """A bundle asks for init='imagenet'; rebuilding it must not fetch them."""
    trained = make(width=64, init="imagenet")  # no download at construction
    state = {k: v.clone() for k, v in trained.state_dict().items()}
    rebuilt = make(width=64, init="imagenet")
    rebuilt.load_state_dict(state)
    assert "restored" in rebuilt.init_source
    rebuilt.load_start_weights()  # a no-op now: saved weights win
    torch.testing.assert_close(rebuilt.features[0].weight, state["features.0.weight"])


def test_class_balance_and_freezing(tmp_path):
    model = make()
    model.set_class_balance(90, 10)
    torch.testing.assert_close(model.class_weight, torch.tensor([100 / 180, 100 / 20]))
    with pytest.raises(ValueError, match="good AND defective"):
        model.set_class_balance(10, 0)

    features = {k: v for k, v in vgg16(weights=None).state_dict().items() if k.startswith("features.")}
    path = tmp_path / "f.pth"
    torch.save(features, path)
    pre = make(width=64, init=str(path), freeze_epochs=2)
    pre.on_epoch_start(0)
    assert not any(p.requires_grad for p in pre.features.parameters())
    assert all(p.requires_grad for p in pre.head.parameters())
    pre.on_epoch_start(2)
    assert all(p.requires_grad for p in pre.features.parameters())
    scratch = make(freeze_epochs=2)
    scratch.on_epoch_start(0)  # a random base is never frozen
    assert all(p.requires_grad for p in scratch.features.parameters())


def test_augment_keeps_range_and_shape_and_varies():
    model = make()
    x, _, _ = parts(8, channels=1)
    torch.manual_seed(1)
    a = model.augment(x)
    assert a.shape == x.shape and a.min() >= -1 and a.max() <= 1
    assert not torch.allclose(a, x)
    assert not torch.allclose(model.augment(x), a)


def test_training_step_requires_labels():
    model = make()
    model.configure_optimizers(TrainConfig())
    with pytest.raises(ValueError, match="labels"):
        model.training_step(parts(2)[0])


# ------------------------------------------------------------ supervised split


def _write_pngs(folder: Path, n: int) -> None:
    import cv2
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        assert cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((8, 8), i * 7 % 255, np.uint8))


def test_supervised_split_mvtec_is_stratified_and_deterministic(tmp_path):
    from inspection_core.data.dataset import scan_dataset
    from inspection_core.data.splits import supervised_split

    root = tmp_path / "bottle"
    _write_pngs(root / "train" / "good", 12)
    _write_pngs(root / "test" / "good", 10)
    _write_pngs(root / "test" / "scratch", 10)
    _write_pngs(root / "test" / "dent", 5)
    _write_pngs(root / "test" / "rare", 2)
    index = scan_dataset(root)
    split = supervised_split(index, seed=0)
    parts_ = (split.train, split.val, split.test)

    paths = [s.path for p in parts_ for s in p]
    assert len(paths) == len(set(paths)) == 12 + 10 + 10 + 5 + 2  # a partition
    assert {s.path for s in index.train} <= {s.path for s in split.train}  # all train/good in train
    summary = split.summary()
    assert summary["train"]["defect_types"] == {"dent": 3, "rare": 1, "scratch": 6}
    assert summary["val"]["defect_types"] == {"dent": 1, "scratch": 2}
    assert summary["test"]["defect_types"] == {"dent": 1, "rare": 1, "scratch": 2}
    assert (summary["val"]["n_good"], summary["test"]["n_good"]) == (2, 2)

    again = supervised_split(scan_dataset(root), seed=0)
    assert [s.path for s in again.test] == [s.path for s in split.test]
    other = supervised_split(index, seed=1)
    assert {s.path for s in other.test} != {s.path for s in split.test}


def test_supervised_split_good_defect_layout_uses_all_images(tmp_path):
    from inspection_core.data.dataset import scan_dataset
    from inspection_core.data.splits import supervised_split

    _write_pngs(tmp_path / "good", 20)
    _write_pngs(tmp_path / "defect", 10)
    split = supervised_split(scan_dataset(tmp_path), seed=3, fractions=(0.5, 0.2, 0.3))
    summary = split.summary()
    assert [(summary[k]["n_good"], summary[k]["n_defect"]) for k in ("train", "val", "test")] == [
        (10, 5), (4, 2), (6, 3)
    ]


def test_supervised_split_refuses_bad_input(tmp_path):
    from inspection_core.data.dataset import scan_dataset
    from inspection_core.data.splits import supervised_split

    _write_pngs(tmp_path / "good", 6)
    index = scan_dataset(tmp_path)
    with pytest.raises(ValueError, match="no defective images"):
        supervised_split(index)
    with pytest.raises(ValueError, match="summing to 1"):
        supervised_split(index, fractions=(0.5, 0.2, 0.2))


# ------------------------------------------------------------ the recipe's parts


def test_balanced_passes_draw_half_good_half_defective_and_reach_every_rare_image():
    import numpy as np

    from inspection_core.training.loops import balanced_order

    labels = np.array([0] * 90 + [1] * 10)
    gen = torch.Generator().manual_seed(0)
    order = balanced_order(labels, gen)
    assert len(order) == 100
    assert (labels[order] == 1).sum() == 50  # half of every pass is defective, not one in ten
    assert set(order[labels[order] == 1]) == set(range(90, 100))  # every defective image is used
    counts = np.bincount(order[labels[order] == 1], minlength=100)[90:]
    assert counts.max() - counts.min() <= 1  # repeated evenly, none favoured
    assert len(set(order[labels[order] == 0])) == 50  # the good half: distinct images
    again = balanced_order(labels, torch.Generator().manual_seed(0))
    assert (again == order).all()
    assert (balanced_order(np.zeros(7, np.int64), gen) < 7).all()  # one class only: a plain shuffle


def test_the_head_learns_faster_than_the_pretrained_base():
    model = make(head_lr=1e-3, lr=1e-5)
    model.configure_optimizers(TrainConfig())
    groups = model.optimizers["clf"].param_groups
    head = {id(p) for p in model.head.parameters()}
    by_lr = {g["lr"]: {id(p) for p in g["params"]} for g in groups}
    assert by_lr[1e-3] == head
    assert by_lr[1e-5] and not (by_lr[1e-5] & head)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_max_pooling_sees_a_small_defect_that_averaging_dilutes():
    model = make(pooling="max")
    feats = torch.zeros(2, model.feature_channels, 8, 8)
    feats[1, :, 3, 3] = 1.0  # one hot cell in 64
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
        model.head.weight[1] = 1.0
        diff_max = (model.logits(feats)[1, 1] - model.logits(feats)[0, 1]).item()
        avg = make(pooling="avg")
        avg.head.weight.zero_()
        avg.head.bias.zero_()
        avg.head.weight[1] = 1.0
        diff_avg = (avg.logits(feats)[1, 1] - avg.logits(feats)[0, 1]).item()
    assert diff_max == pytest.approx(64 * diff_avg)


def test_held_out_split_takes_good_training_images_too(tmp_path):
    from inspection_core.data.dataset import scan_dataset
    from inspection_core.data.splits import supervised_split

    root = tmp_path / "bottle"
    _write_pngs(root / "train" / "good", 40)
    _write_pngs(root / "test" / "good", 5)
    _write_pngs(root / "test" / "scratch", 10)
    index = scan_dataset(root)
    old = supervised_split(index, seed=0)
    new = supervised_split(index, seed=0, hold_out_train_good=True)
    paths = [s.path for p in (new.train, new.val, new.test) for s in p]
    assert len(paths) == len(set(paths)) == 55  # still a partition
    s_old, s_new = old.summary(), new.summary()
    assert s_old["test"]["n_good"] == 1  # the test folder's 5 good images alone: one image decides the rate
    assert s_new["test"]["n_good"] == 1 + 8 and s_new["val"]["n_good"] == 1 + 8
    assert {s.path for s in new.test if s.label == 1} == {s.path for s in old.test if s.label == 1}  # same defects


def test_the_split_plan_says_what_trains_and_warns_when_the_held_out_split_is_small(demo_data):
    from inspection_core.data.dataset import scan_dataset
    from inspection_core.usecases.supervised_plan import plan_supervised

    plan = plan_supervised(scan_dataset(demo_data))
    assert plan is not None
    assert plan.train_defect > 0 and plan.test_defect > 0
    assert plan.train_good + plan.val_good + plan.test_good == 48 + 12
    text = "\n".join(plan.lines())
    assert f"{plan.test_good} good and {plan.test_defect} defective held out" in text
    assert not plan.trusted and "held-out split is small" in text  # 4 defects per type: too few to trust
    big = type(plan)(200, 80, 60, 25, 60, 25)
    assert big.trusted and len(big.lines()) == 1


def test_cli_train_says_how_many_labelled_images_the_classifier_uses(demo_data, tmp_path, capsys):
    from _cli import run_cli

    rc, out, err = run_cli(capsys, "train", "--data", str(demo_data), "--model", "vgg16", "--from-scratch",
                           "--image-size", "32", "--width", "8", "--epochs", "1", "--out", str(tmp_path / "c"))
    assert rc == 0, err
    assert "the classifier learns from labelled images" in err and "held out to test it" in err
    assert "warning: the held-out split is small" in err


def test_cli_help_says_the_classifier_needs_labelled_defects(capsys):
    from _cli import run_cli

    rc, out, _ = run_cli(capsys, "train", "--help")
    assert rc == 0
    assert "needs labelled defective images" in " ".join(out.split())


def test_the_classifiers_provisional_threshold_is_its_best_balanced_accuracy_on_validation(tiny_vgg16_bundle):
    from inspection_core.bundle import read_manifest

    m = read_manifest(tiny_vgg16_bundle)
    th = m["threshold"]
    assert th["strategy"] == "youden" and th["provisional"]  # not a quantile of a handful of good scores
    sizes = m["training"]["split"]["sizes"]
    assert sizes["val"]["n_defect"] > 0 and sizes["test"]["n_defect"] > 0
    assert sum(sizes[k]["n_good"] + sizes[k]["n_defect"] for k in sizes) == 48 + 12 + 16


def test_fine_tuning_only_the_top_stages_leaves_the_early_ones_frozen_and_untouched():
    model = make(fine_tune=0.5, freeze_epochs=0)
    model.on_epoch_start(0)
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    flags = [m.weight.requires_grad for m in convs]
    assert flags == sorted(flags) and 0 < sum(flags) < len(flags)  # a frozen bottom, a trainable top
    assert sum(flags) == math.ceil(0.5 * len(convs))
    model.configure_optimizers(TrainConfig())
    x, y, _ = parts(4)
    first = convs[0].weight.detach().clone()
    model.train()
    model.training_step(x, y)
    assert torch.equal(convs[0].weight, first)  # no gradient reached it
    assert convs[0].weight.grad is None
