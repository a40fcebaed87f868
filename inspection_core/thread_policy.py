"""How PyTorch's OpenMP threads wait, set before torch is imported (no torch here).

By default the OpenMP runtime keeps a thread that finished its share of an
operation spinning until the others finish. On a station whose other software
takes one of two cores, the scoring thread that shares that core is descheduled
in the middle of its share while its partner spins, at every one of the
hundreds of operations of a forward. Measured on the 2-core development
machine (benchmarks/predict_speed.py, the two policies in turn, median ms of
one image quiet -> with a second process spinning on one core): GANomaly
(128 px) 5.5 -> 13.4 spinning, 7.8 -> 8.2 with the threads sleeping when they
wait (``OMP_WAIT_POLICY=PASSIVE``); PatchCore (224 px) 39.7 -> 88.5 spinning,
46.0 -> 69.4 sleeping. Sleeping costs a quiet machine the wake-ups (about
15 % on PatchCore; on a small model's one image more, which is why such an
image is scored on one thread: :func:`inspection_core.acceleration.one_image_threads`).

The runtime reads these variables once, when torch's libraries are loaded, so
:func:`configure` must run before the first ``import torch``: ``inspector
predict`` calls it before it imports torch. A value the user has set is kept.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

#: what a station's scoring runs with unless the environment says otherwise:
#: GNU OpenMP (Linux torch builds) and LLVM/Intel OpenMP read the first; Intel
#: OpenMP (Windows builds) takes the second as its time to spin before sleeping
DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}


def configure(environ: MutableMapping[str, str] | None = None) -> bool:
    """Set :data:`DEFAULTS` in ``environ`` (the process's environment) where
    not set already. Returns False, changing nothing, once torch is imported:
    its OpenMP runtime has read them already."""
    if "torch" in sys.modules:
        return False
    env = os.environ if environ is None else environ
    for key, value in DEFAULTS.items():
        env.setdefault(key, value)
    return True


__all__ = ["DEFAULTS", "configure"]
