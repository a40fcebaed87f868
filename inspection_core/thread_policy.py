"""How PyTorch's OpenMP threads wait, set before torch is imported (no torch here).

By default the OpenMP runtime keeps a thread that finished its share of an
operation spinning until the others finish. On a station whose other software
takes one of two cores, the scoring thread that shares that core is descheduled
in the middle of its share while its partner spins, at every one of the
hundreds of operations of a forward: measured on the 2-core development
machine with a second process spinning on one core, one GANomaly image went
from 6.4 to 16.4 ms and one PatchCore image from 44 to 100 ms (p90 275 ms).
With the threads sleeping when they wait (``OMP_WAIT_POLICY=PASSIVE``) the
same runs took 8.4 and about 77 ms, at a cost on a quiet machine (GANomaly
6.4 -> 8.1 ms, PatchCore 44 -> 49 ms; benchmarks/predict_speed.py).

The runtime reads these variables once, when torch's libraries are loaded, so
:func:`configure` must run before the first ``import torch`` (the CLI's and
the app's start-up call it). A value the user has set is kept.
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
