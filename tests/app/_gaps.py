"""Measuring whether the GUI's event loop stays responsive.

A 10 ms timer ticks on the GUI thread. For every interval between two ticks
we record the wall-clock gap and the CPU time the GUI thread itself used in
it. "Blocked by the application" means the GUI thread was busy (CPU) for
more than 100 ms in one stretch; a wall-clock gap while the thread was not
busy is the OS giving the cores to other processes (CI machines are shared),
which no application code can prevent, so for that only a coarse bound
(waits of a second or more, e.g. a join on the GUI thread) is asserted.
"""

from __future__ import annotations

import time

BUSY_LIMIT_MS = 100
WAIT_LIMIT_MS = 1000


class GapMeter:
    def __init__(self) -> None:
        from PySide6.QtCore import QElapsedTimer, QTimer

        self.timer = QTimer(interval=10)
        self.clock = QElapsedTimer()
        self.max_gap_ms = 0
        self.max_busy_ms = 0.0
        self.ticks = 0
        self.long_gaps: list[tuple[float, int, float]] = []  # (s since start, wall ms, busy ms)
        self.timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        self.ticks += 1
        gap = self.clock.restart()
        now_cpu = time.thread_time()
        busy = (now_cpu - self._cpu) * 1000.0
        self._cpu = now_cpu
        self.max_gap_ms = max(self.max_gap_ms, gap)
        self.max_busy_ms = max(self.max_busy_ms, busy)
        if gap > 50:
            self.long_gaps.append((round(time.monotonic() - self.t0, 2), gap, round(busy, 1)))

    def start(self) -> "GapMeter":
        self.t0 = time.monotonic()
        self._cpu = time.thread_time()
        self.clock.start()
        self.timer.start()
        return self

    def stop(self) -> None:
        self.timer.stop()

    def __enter__(self) -> "GapMeter":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def assert_responsive(self) -> None:
        detail = f"longest gaps (s, wall ms, GUI-thread busy ms): {self.long_gaps[-8:]}"
        assert self.ticks > 0, "the event loop never ran"
        assert self.max_busy_ms < BUSY_LIMIT_MS, f"GUI thread busy for {self.max_busy_ms:.0f} ms in one stretch; {detail}"
        assert self.max_gap_ms < WAIT_LIMIT_MS, f"event loop stalled for {self.max_gap_ms} ms; {detail}"
