"""PatchCore's parameters and presets."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..components.backbone_names import BACKBONE_NAMES
from ..schema import Param, Recipe, Schema

if TYPE_CHECKING:
    from ...config import ModelConfig

SCORES = ("map_max", "patch_max", "reweighted")
#: extra views of each training image that may go into the memory bank
BANK_AUGMENTS = ("bright", "dark", "brighter", "darker", "hflip", "vflip")
#: largest grid of the texture term's layout statistics (g x g cells)
MAX_GLOBAL_GRID = 8
#: PatchCore's layers where they differ from the backbone's defaults (measured
#: on ../shared/data, docs/quality.md)
DEFAULT_LAYERS = {"mobilenet_v2": ["features.3", "features.6", "features.10", "features.13"]}

SCHEMA = Schema((
    Param("backbone", "mobilenet_v2", "frozen ImageNet backbone the patch descriptors come from",
          choices=BACKBONE_NAMES),
    Param("layers", [], "its layers, brought to one patch grid (empty: the measured defaults)"),
    Param("weights", "imagenet", "imagenet (torch's cache), a local weights file, or random (tests)", weights=True),
    Param("neighbourhood", 3, "patches averaged around each patch (3: 3 x 3)", low=1),
    Param("grid_stride", 8, "patch grid step in input pixels", low=1),
    Param("coreset_ratio", 0.02, "share of the training patches kept in the memory bank",
          low=0.0, high=1.0, low_open=True),
    Param("max_bank", 20000, "most patches in the memory bank", low=1),
    Param("projection_dim", 32, "random projection the coreset is chosen on (speed only)", low=1),
    Param("local_keep", 0.25, "share of each image's patches that reach the global coreset",
          low=0.0, high=1.0, low_open=True),
    Param("bank_augment", ["bright", "dark"], "extra views of each training image in the bank "
          "(bright x1.25, dark x0.8, brighter x1.5, darker x0.67, mirror images)", choices=BANK_AUGMENTS),
    Param("score", "map_max", "image score: map_max (the heat map's maximum), patch_max, or reweighted (the paper's)",
          choices=SCORES),
    Param("neighbours", 9, "the re-weighted score's neighbourhood in the bank", low=1),
    Param("map_sigma", 4.0, "Gaussian smoothing of the heat map, px at 224 px", low=0.0),
    Param("global_weight", 0.5, "weight of the whole-part texture term in the image score (0: off)", low=0.0),
    Param("global_grid", 2, "that term also compares the part's layout on a g x g grid of cells (0: off)",
          low=0, high=MAX_GLOBAL_GRID),
    Param("position_weight", 0.0, "each patch's place on the part in its descriptor, for fixtured parts "
          "(0: off; in the descriptors' units, about 3 for mobilenet_v2)", low=0.0),
    Param("fit_memory_mb", 1024, "memory for the patches held while fitting (larger sets are thinned on the way)",
          low=16),
))

PRESETS = {
    # half the bank: the search (most of the scoring time) twice as fast, at a measured cost in
    # AUROC (screw 0.949 -> 0.937, magnetic_tile 0.934 -> 0.927, pill 0.953 -> 0.961; with the
    # OpenVINO export 78 images/s and 9.7 ms per frame against 41 and 16.5: docs/performance.md)
    "quick": Recipe(224, {"coreset_ratio": 0.01}, {"batch_size": 16}),
    "standard": Recipe(224, {}, {"batch_size": 16}),
    # the bank at its cap (20,000) and four exposures in it (docs/quality.md)
    "thorough": Recipe(256, {"coreset_ratio": 0.25, "bank_augment": ["bright", "dark", "brighter", "darker"]},
                       {"batch_size": 16}),
}


def check(cfg: ModelConfig) -> None:
    p = cfg.params
    if not all(isinstance(layer, str) for layer in p["layers"]):
        raise ValueError(f"{cfg.model}: layers must be a list of layer names, got {p['layers']!r}")
    if not p["weights"]:
        raise ValueError(f"{cfg.model}: weights must be 'imagenet', 'random' or a file path, got {p['weights']!r}")
