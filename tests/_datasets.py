"""Where the real data sets live (../shared/data), for tests marked ``data``.

A plain module (not a conftest) so that test files can import it by name.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_data(category: str) -> Path:
    """Path of a real data set in ../shared/data, or skip with a clear reason."""
    root = Path(os.environ.get("INSPECTOR_SHARED_DATA", SHARED_DATA)) / category
    if not (root / "train" / "good").is_dir():
        pytest.skip(f"real data set not available: {root} (tests marked 'data' need ../shared/data)")
    return root
