"""Data layer: reading images, the one preprocessing path, folder data sets, demo data."""

from .dataset import (
    EXPECTED_LAYOUT,
    DatasetIndex,
    DatasetLayoutError,
    LoadedImages,
    Sample,
    load_images,
    load_masks,
    scan_dataset,
)
from .demo import DEFECT_TYPES, make_demo_dataset
from .images import IMAGE_EXTENSIONS, ImageReadError, list_images, read_image, write_image
from .preprocess import Preprocessing, from_tensor, prepare_mask, to_model_image, to_tensor, to_uint8

__all__ = [
    "DEFECT_TYPES",
    "EXPECTED_LAYOUT",
    "IMAGE_EXTENSIONS",
    "DatasetIndex",
    "DatasetLayoutError",
    "ImageReadError",
    "LoadedImages",
    "Preprocessing",
    "Sample",
    "from_tensor",
    "list_images",
    "load_images",
    "load_masks",
    "make_demo_dataset",
    "prepare_mask",
    "read_image",
    "scan_dataset",
    "to_model_image",
    "to_tensor",
    "to_uint8",
    "write_image",
]
