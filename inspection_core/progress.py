"""Progress reporting and cooperative cancellation for long jobs.

A long job (training, scoring a folder) is a plain function that receives a
callback and a :class:`CancelToken`. The GUI runs it on a worker thread; the CLI
draws a progress bar from the same events.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable


class Cancelled(Exception):
    """Raised inside a job when its CancelToken was set."""


class CancelToken:
    """Thread-safe flag a job checks at every step."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled("cancelled on request")


@dataclass
class ProgressEvent:
    """One step of a job.

    ``kind``: "step" (a training step), "epoch" (end of an epoch, with
    validation figures), "sample" (partial results such as reconstructions),
    "message" (free text), "done".
    """

    kind: str
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    steps: int = 0
    elapsed_s: float = 0.0
    eta_s: float | None = None
    losses: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    message: str = ""
    payload: Any = None

    @property
    def fraction(self) -> float:
        total = max(1, self.epochs * max(1, self.steps))
        done = max(0, self.epoch - 1) * max(1, self.steps) + self.step
        return min(1.0, done / total)


ProgressCallback = Callable[[ProgressEvent], None]


def null_progress(_: ProgressEvent) -> None:
    """A callback that ignores every event."""
