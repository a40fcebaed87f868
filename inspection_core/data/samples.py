"""What the data-set readers share: one image of a data set and the layout error.

A module of its own so that the MVTec reader (:mod:`.dataset`) and the
BTAD/VisA readers (:mod:`.layouts`) both build on it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: share of the good images that train in the good/ + defect/ layout (and a seeded VisA split)
TRAIN_FRACTION_GOOD_DEFECT = 0.7


class DatasetLayoutError(ValueError):
    """A data set folder is missing, empty or not laid out as expected."""


@dataclass(frozen=True)
class Sample:
    """One image of a data set. ``label``: 0 good, 1 defective;
    ``defect_type``: "good" or the defect folder name; ``mask_path``: ground
    truth for a defect, when there is one."""

    path: Path
    label: int
    defect_type: str
    mask_path: Path | None = None


__all__ = ["DatasetLayoutError", "Sample", "TRAIN_FRACTION_GOOD_DEFECT"]
