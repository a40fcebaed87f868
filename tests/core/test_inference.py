"""Scoring: batch independence, one preprocessing path, verdicts."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from inspection_core.data.dataset import scan_dataset
from inspection_core.data.images import read_image
from inspection_core.inference import Inspector
from inspection_core.types import Threshold, Verdict


def test_prediction_has_everything_a_view_shows(tiny_bundle: Path, demo_data: Path) -> None:
    insp = Inspector(tiny_bundle, device="cpu")
    p = insp.predict(read_image(scan_dataset(demo_data).test[0].path))
    assert p.image.shape == (32, 32, 3) and p.image.dtype == np.uint8
    assert p.reconstruction is not None and p.reconstruction.shape == (32, 32, 3)
    assert p.anomaly_map.shape == (32, 32) and p.heat.shape == (32, 32)
    assert 0.0 <= p.heat.min() and p.heat.max() <= 1.0
    assert p.verdict in (Verdict.PASS, Verdict.FAIL)
    assert p.latency_ms > 0


def test_any_input_format_scores_like_the_file(tiny_bundle: Path, demo_data: Path) -> None:
    """16-bit, BGRA and a different size go through the same preprocessing."""
    insp = Inspector(tiny_bundle, device="cpu")
    img = read_image(scan_dataset(demo_data).test[0].path)
    ref = insp.predict(img).score
    as16 = img.astype(np.uint16) * 257
    bgra = cv2.cvtColor(img, cv2.COLOR_BGR2BGRA)
    assert insp.predict(as16).score == pytest.approx(ref, rel=1e-6)
    assert insp.predict(bgra).score == pytest.approx(ref, rel=1e-6)
    big = cv2.resize(img, (128, 128), interpolation=cv2.INTER_NEAREST)
    assert abs(insp.predict(big).score - ref) < 0.1 * abs(ref) + 1e-6


def test_two_threshold_verdicts(tiny_bundle: Path, demo_data: Path) -> None:
    insp = Inspector(tiny_bundle, device="cpu")
    img = read_image(scan_dataset(demo_data).test[0].path)
    s = insp.predict(img).score
    insp.threshold = Threshold(high=s + 1.0, low=s - 1.0)
    assert insp.predict(img).verdict == Verdict.REVIEW
    insp.threshold = Threshold(high=s - 1e-3)
    assert insp.predict(img).verdict == Verdict.FAIL
    insp.threshold = Threshold(high=s + 1e-3)
    assert insp.predict(img).verdict == Verdict.PASS


@pytest.mark.fault("inference", "2000 scorings in a row with one Inspector",
                   "memory flat: the resident size grows by less than 10 MB after the first 200")
def test_repeated_scoring_keeps_memory_flat(tiny_bundle) -> None:
    import numpy as np

    from _memory import MiB, _status_kb, can_measure
    from inspection_core.inference import Inspector

    if not can_measure():
        pytest.skip("needs Linux /proc")
    insp = Inspector(tiny_bundle, device="cpu")
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (120, 160, 3), dtype=np.uint8) for _ in range(8)]
    for i in range(200):
        insp.predict(frames[i % 8])
    before = _status_kb("VmRSS") * 1024
    for i in range(1800):
        insp.predict(frames[i % 8])
    grew = _status_kb("VmRSS") * 1024 - before
    assert grew < 10 * MiB, f"RSS grew by {grew / MiB:.1f} MiB over 1800 scorings"
